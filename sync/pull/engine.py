"""The pull: read each mapping's window from the CRM and store it, page by page.

Per page, in ONE transaction: the converted rows are upserted (unchanged rows are not
written), records that failed to convert are recorded, and the watermark moves to the
newest SystemModstamp of the page. A process killed at any instant therefore leaves the
rows and the watermark consistent, and the next pass re-reads from the watermark (minus
the lookback) without losing or duplicating anything. The next page is fetched while the
current one is stored (:class:`~sync.pull.pages.Prefetcher`); a page is converted by the
fetching thread when the writer is busy, else by the writer.

Records that failed to convert are read again by Id on later passes (with a backoff,
see :func:`sync.pull.window.retry_due`), and by the normal window whenever they change
in the CRM.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from sync.bulk.choice import LoadMethod, LoadReport, count_soql, threshold, use_bulk
from sync.bulk.records import record_maker
from sync.context import SyncContext
from sync.crm.bulk import BulkJob, BulkJobFailed, BulkQueries
from sync.crm.errors import (
    CrmConfigurationError,
    CrmError,
    CrmRequestError,
    MalformedResponseError,
    RequestLimitExceededError,
)
from sync.crm.soql import and_, id_in, modstamp_window, select
from sync.db import repo
from sync.mapping.spec import Mapping
from sync.mapping.transform import parse_sf_datetime, record_id
from sync.pull.history import PageHistory, history_for, tombstone
from sync.pull.idle import NO_HINTS, RETRY_BASE, RETRY_CAP, PassHints
from sync.pull.pages import Prefetcher
from sync.pull.result import Outcome, PassResult, Progress
from sync.pull.rows import RowBuilder, row_builder
from sync.pull.window import Window, advance_watermark, plan_window, retry_due
from sync.telemetry import logs

logger = logging.getLogger("sync.pull")

ProgressCallback = Callable[[Progress], None]

# Ids per query when records are fetched again by Id (keeps the SOQL under 5,000 chars).
_IDS_PER_QUERY = 200
# Pages waiting in memory while the current one is stored.
_PREFETCH_DEPTH = 2
# Records of a Bulk results page converted and stored as one unit.
_BULK_SLICE = 10_000
# Seconds between updates of a running pass's counters in the pass history.
_PROGRESS_EVERY = 1.0


@dataclass
class ConvertedPage:
    """One page of CRM records, converted.

    Attributes:
        values: the rows to upsert, as tuples of values in ``columns`` order (in the
            forms of the :class:`~sync.pull.rows.RowBuilder` that made them).
        columns: the columns of ``values``.
        failed: sfid -> reason, for records that could not be converted.
        newest: the newest SystemModstamp among all the page's records.
        unreadable: records without a usable Id (logged, cannot be recorded).
        records: how many records the page had.
    """

    values: list[tuple[Any, ...]] = field(default_factory=list)
    columns: tuple[str, ...] = ()
    failed: dict[str, str] = field(default_factory=dict)
    newest: dt.datetime | None = None
    unreadable: int = 0
    records: int = 0

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The rows as column -> value dicts."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.values]

    def sfids(self) -> list[str]:
        """The sfid of each row, in order."""
        index = self.columns.index("sfid")
        return [row[index] for row in self.values]


def convert_page(
    mapping: Mapping,
    records: Iterable[dict[str, Any]],
    synced_at: dt.datetime,
    builder: RowBuilder | None = None,
) -> ConvertedPage:
    """Convert a page of records; a record that fails is set aside, the rest proceed.

    ``records`` may be a generator (Bulk CSV rows made into records one at a time).
    """
    builder = builder or row_builder(mapping)
    rows, failures = builder.convert(records, builder.bind_synced(synced_at))
    page = ConvertedPage(values=rows, columns=builder.columns, records=len(rows) + len(failures))
    newest_failed: dt.datetime | None = None
    for record, exc in failures:
        stamp = record.get("SystemModstamp")
        try:
            modstamp = parse_sf_datetime(stamp) if isinstance(stamp, str) else None
        except ValueError:
            modstamp = None
        if modstamp is not None and (newest_failed is None or modstamp > newest_failed):
            newest_failed = modstamp
        sfid = record_id(record)
        if sfid is None:
            page.unreadable += 1
            logger.error("%s: a record without an Id: %s", mapping.name, exc)
        else:
            page.failed[sfid] = str(exc)
    newest = builder.newest(rows)
    if newest_failed is not None and (newest is None or newest_failed > newest):
        newest = newest_failed
    page.newest = newest
    return page


@dataclass
class _Run:
    mapping: Mapping
    table: Table
    pass_id: int
    window: Window
    watermark: dt.datetime | None
    started: float
    api_calls_at_start: int
    error_sfids: set[str]
    plan: repo.UpsertPlan
    builder: RowBuilder
    records: int = 0
    failed: int = 0
    seen: set[str] = field(default_factory=set)  # failing records read by this pass
    progress_saved: float = -_PROGRESS_EVERY  # monotonic time of the last pass_progress
    counted_ahead: int | None = None  # the full window's records, counted by the check
    reloaded: bool = False  # the full window was read: the fingerprint may be stored
    method: LoadMethod = LoadMethod.REST
    counted: int | None = None  # the window's records, when counted before choosing
    job_id: str | None = None  # the Bulk job of the pass
    fallback: str | None = None  # why a Bulk load was given up for REST
    history: PageHistory | None = None  # the table's history hook, if it keeps one


def _write_rows_one_by_one(
    conn: Connection, run: _Run, rows: list[tuple[Any, ...]]
) -> dict[str, str]:
    """Upsert rows each in its own savepoint; returns the ones the database refused."""
    refused: dict[str, str] = {}
    sfid = run.plan.sfid_index
    for row in rows:
        try:
            with conn.begin_nested():
                repo.upsert_values(conn, run.plan, [row])
        except (DataError, IntegrityError) as exc:
            reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            refused[row[sfid]] = f"refused by the database: {reason}"
    return refused


def _store_page(ctx: SyncContext, run: _Run, page: ConvertedPage, *, advance: bool) -> None:
    """Write one converted page, its record errors and the watermark, atomically.

    If the database refuses the page (a value the conversion let through but the
    column rejects), the page is written again row by row and the refused rows become
    record errors like conversion failures, so one record cannot stall its mapping.
    """
    try:
        _write_page(ctx, run, page, advance=advance, one_by_one=False)
    except (DataError, IntegrityError) as exc:
        logger.warning(
            "%s: the database refused a page (%s); writing it row by row",
            run.mapping.name,
            type(exc).__name__,
        )
        _write_page(ctx, run, page, advance=advance, one_by_one=True)


def _write_page(
    ctx: SyncContext, run: _Run, page: ConvertedPage, *, advance: bool, one_by_one: bool
) -> None:
    now = ctx.now()
    failed = dict(page.failed)
    watermark = run.watermark
    with ctx.engine.begin() as conn:
        repo.relax_commit_wait(conn)
        history = run.history
        before = (
            history.before_page(conn, page.columns, page.values) if history is not None else None
        )
        if one_by_one:
            refused = _write_rows_one_by_one(conn, run, page.values)
            failed.update(refused)
            sfids = [sfid for sfid in page.sfids() if sfid not in refused]
        else:
            repo.upsert_values(conn, run.plan, page.values)
            sfids = page.sfids() if run.error_sfids else []
        if failed:
            repo.save_record_errors(conn, run.mapping.name, failed, now=now)
        fixed = [sfid for sfid in sfids if sfid in run.error_sfids]
        if fixed:
            repo.clear_record_errors(conn, run.mapping.name, fixed)
        if history is not None:
            history.after(conn, before, now)
        if advance:
            watermark = advance_watermark(run.watermark, page.newest, run.window)
            if watermark != run.watermark:
                repo.save_state(conn, run.mapping.name, now, watermark=watermark)
        clock = time.monotonic()
        if clock - run.progress_saved >= _PROGRESS_EVERY:
            # The running pass's counters, for `status`: once a second is enough.
            repo.pass_progress(
                conn, run.pass_id, run.records, ctx.crm.api_calls - run.api_calls_at_start
            )
            run.progress_saved = clock
    # Only once committed does the pass's own view move on.
    run.error_sfids.difference_update(fixed)
    run.error_sfids.update(failed)
    run.failed += len(failed) - len(page.failed)
    run.watermark = watermark


def window_soql(mapping: Mapping, window: Window) -> str:
    """The query of a pass: the mapping's fields over the window, oldest first."""
    return select(
        mapping.crm_object,
        mapping.crm_fields,
        where=and_(mapping.filter, modstamp_window(window.since, window.until)),
        order_by=["SystemModstamp", "Id"],
    )


@dataclass
class _Fetched:
    """A page as read (``records``), converted by either thread (``converted``)."""

    total_size: int
    records: list[dict[str, Any]]
    converted: ConvertedPage | None = None
    source: Iterator[dict[str, Any]] | None = None  # records made as they are read (Bulk)


def _read(ctx: SyncContext, run: _Run, progress: ProgressCallback | None) -> None:
    """Read the pass's window through REST or, for a large one, a Bulk API 2.0 job.

    A full window is counted first (the change check may have counted it already); at or
    above the mapping's bulk threshold it is read through Bulk. An incremental window
    starts on REST and moves to Bulk when its first page says it holds at least the
    threshold (a mass update in the CRM). Whatever Bulk refuses or fails falls back to
    REST for the pass.
    """
    limit = threshold(run.mapping, ctx.settings)
    if limit > 0 and run.window.full:
        counted = run.counted_ahead
        if counted is None:
            counted = ctx.crm.query_count(count_soql(run.mapping), include_deleted=True)
        run.counted = counted
        if use_bulk(counted, limit) and _read_bulk(ctx, run, progress):
            return
        _read_window(ctx, run, progress, switch_at=None)
        return
    switch_at = limit if limit > 0 else None
    if _read_window(ctx, run, progress, switch_at=switch_at) and not _read_bulk(ctx, run, progress):
        _read_window(ctx, run, progress, switch_at=None)


def _read_bulk(ctx: SyncContext, run: _Run, progress: ProgressCallback | None) -> bool:
    """Read the window through one Bulk API 2.0 queryAll job, page by page.

    The job runs the pass's own query (ordered by SystemModstamp, Id), so the watermark
    moves with each stored page exactly as with REST pages, and a pass killed midway
    resumes from there.

    Returns:
        False when Bulk refused or failed the job (the reason is logged once and kept in
        the pass's load report): the caller reads the window through REST instead.
    """
    settings = ctx.settings
    bulk = BulkQueries(ctx.crm, page_size=settings.bulk_page_size, give_up=settings.bulk_give_up)
    soql = window_soql(run.mapping, run.window)
    job: BulkJob | None = None
    try:
        job = bulk.create(soql, include_deleted=True)
        run.method, run.job_id = LoadMethod.BULK, job.id
        job = bulk.wait(job)
        completed = job

        def pages() -> Iterator[_Fetched]:
            # A results page (up to 100,000 records) is stored in slices of a REST
            # page's size or more: memory holds the page's bytes and a few slices.
            for page in bulk.pages(completed):
                make = record_maker(run.mapping, page.header)
                while True:
                    try:
                        chunk = list(islice(page.rows, _BULK_SLICE))
                    except ValueError as exc:  # a malformed row, or bytes that are not UTF-8
                        raise MalformedResponseError(
                            f"bulk results of job {completed.id} unreadable: {exc}"
                        ) from None
                    if not chunk:
                        break
                    yield _Fetched(completed.records_processed, [], source=map(make, chunk))

        _store_pages(ctx, run, progress, pages, depth=1)
    except (BulkJobFailed, CrmRequestError, MalformedResponseError) as exc:
        if isinstance(exc, BulkJobFailed) and exc.job is not None:
            job = exc.job
        run.method = LoadMethod.REST
        run.fallback = str(exc)
        logger.warning(
            "%s: bulk load not possible, reading through REST for this pass: %s",
            run.mapping.name,
            exc,
        )
        return False
    finally:
        if job is not None:
            bulk.finish(job)
    return True


def _read_window(
    ctx: SyncContext, run: _Run, progress: ProgressCallback | None, *, switch_at: int | None
) -> bool:
    """Read the window through REST pages.

    Returns:
        True when the first page reported at least ``switch_at`` records: only that
        page was stored, and the caller reads the window through Bulk.
    """
    soql = window_soql(run.mapping, run.window)
    batch = ctx.settings.pull_batch_size
    switched = False

    def pages() -> Iterator[_Fetched]:
        nonlocal switched
        for page in ctx.crm.query_pages(soql, include_deleted=True, batch_size=batch):
            yield _Fetched(page.total_size, page.records)
            if switch_at is not None and not page.done and page.total_size >= switch_at:
                switched = True
                return

    _store_pages(ctx, run, progress, pages, depth=_PREFETCH_DEPTH)
    return switched


def _store_pages(
    ctx: SyncContext,
    run: _Run,
    progress: ProgressCallback | None,
    pages: Callable[[], Iterator[_Fetched]],
    *,
    depth: int,
) -> None:
    """Convert and store the pages of ``pages()``, fetching ahead in a second thread."""
    total: int | None = None

    def convert(fetched: _Fetched) -> _Fetched:
        if fetched.converted is None:
            source = fetched.source if fetched.source is not None else fetched.records
            fetched.converted = convert_page(run.mapping, source, ctx.now(), run.builder)
            fetched.records, fetched.source = [], None  # memory: the page is held once
        return fetched

    with Prefetcher(pages, depth=depth, name=run.mapping.name, prepare=convert) as prefetched:
        for fetched in prefetched:
            if total is None:
                total = fetched.total_size
            converted = convert(fetched).converted
            assert converted is not None
            run.records += converted.records
            run.failed += len(converted.failed)
            if run.error_sfids:
                # Only failing records are remembered (memory stays bounded by pages):
                # those read here need no fetch by Id at the end of the pass.
                run.seen.update(s for s in converted.sfids() if s in run.error_sfids)
                run.seen.update(s for s in converted.failed if s in run.error_sfids)
            _store_page(ctx, run, converted, advance=True)
            if progress is not None:
                progress(
                    Progress(run.mapping.name, run.records, total, time.monotonic() - run.started)
                )


def _retry_failed_records(ctx: SyncContext, run: _Run, now: dt.datetime) -> None:
    """Fetch records that failed before (and were not read by this pass) by Id."""
    with ctx.engine.connect() as conn:
        errors = repo.record_errors(conn, run.mapping.name)
    due = [
        e.sfid
        for e in errors
        if e.sfid not in run.seen
        and retry_due(e.last_seen, e.attempts, now=now, base=RETRY_BASE, cap=RETRY_CAP)
    ]
    for start in range(0, len(due), _IDS_PER_QUERY):
        chunk = due[start : start + _IDS_PER_QUERY]
        soql = select(
            run.mapping.crm_object,
            run.mapping.crm_fields,
            where=and_(run.mapping.filter, id_in(chunk)),
        )
        records = ctx.crm.query_all(soql, include_deleted=True)
        converted = convert_page(run.mapping, records, ctx.now(), run.builder)
        run.records += len(records)
        run.failed += len(converted.failed)
        returned = {record_id(r) for r in records}
        gone = [sfid for sfid in chunk if sfid not in returned]
        # Not advancing the watermark: these records are older than the window.
        _store_page(ctx, run, converted, advance=False)
        if gone:
            # Purged from the CRM (or no longer matching the filter): nothing to retry.
            with ctx.engine.begin() as conn:
                repo.clear_record_errors(conn, run.mapping.name, gone)
                tombstone(conn, run.table, gone, run.history, now=ctx.now())
            run.error_sfids.difference_update(gone)


def result_of(
    run: _Run | None,
    name: str,
    outcome: Outcome,
    *,
    started_at: dt.datetime,
    finished_at: dt.datetime,
    api_calls: int,
    error: str | None = None,
    watermark: dt.datetime | None = None,
) -> PassResult:
    """The :class:`PassResult` of a pass (``run``) or of a mapping not attempted (None)."""
    return PassResult(
        mapping=name,
        outcome=outcome,
        records=run.records if run else 0,
        api_calls=api_calls,
        error=error,
        watermark=run.watermark if run else watermark,
        started_at=started_at,
        finished_at=finished_at,
        record_errors=run.failed if run else 0,
        full=run.window.full if run else False,
        load=_load_report(run, api_calls) if run else None,
    )


def _load_report(run: _Run, api_calls: int) -> LoadReport:
    return LoadReport(
        method=run.method,
        counted=run.counted,
        job_id=run.job_id,
        api_calls=api_calls,
        fallback=run.fallback,
    )


def pull_mapping(
    ctx: SyncContext,
    name: str,
    *,
    full: bool = False,
    now: dt.datetime | None = None,
    progress: ProgressCallback | None = None,
    hints: PassHints = NO_HINTS,
) -> PassResult:
    """One pass of one mapping: read its window and store it.

    Args:
        ctx: the context.
        name: the mapping.
        full: read everything instead of the window after the watermark.
        now: the pass's start (default: the context's clock).
        progress: called after each stored page.
        hints: what the change check before it learned (its
            :meth:`~sync.pull.idle.ChangeCheck.hint` for ``name``).

    Returns:
        The pass's result. CRM and database failures end the pass with outcome FAILED
        (or LIMIT_EXCEEDED) rather than raising; what was committed before stays.

    Raises:
        KeyError: no such mapping.
    """
    return pull_with_failure(ctx, name, full=full, now=now, progress=progress, hints=hints)[0]


def pull_with_failure(
    ctx: SyncContext,
    name: str,
    *,
    full: bool,
    now: dt.datetime | None,
    progress: ProgressCallback | None,
    hints: PassHints = NO_HINTS,
) -> tuple[PassResult, BaseException | None]:
    """:func:`pull_mapping`, also returning the exception that ended the pass, if any.

    Records logged during the pass carry its mapping and pass id.
    """
    with logs.log_context(mapping=name):
        return _pull_with_failure(ctx, name, full=full, now=now, progress=progress, hints=hints)


def _pull_with_failure(
    ctx: SyncContext,
    name: str,
    *,
    full: bool,
    now: dt.datetime | None,
    progress: ProgressCallback | None,
    hints: PassHints,
) -> tuple[PassResult, BaseException | None]:
    mapping = ctx.mapping(name)
    table = repo.mirrored_table(mapping.table)
    started_at = now or ctx.now()
    calls_at_start = ctx.crm.api_calls
    with ctx.engine.begin() as conn:
        state = repo.get_state(conn, name)
        if state.paused:
            paused = result_of(
                None,
                name,
                Outcome.PAUSED,
                started_at=started_at,
                finished_at=started_at,
                api_calls=0,
                watermark=state.watermark,
            )
            return paused, None
        if state.fingerprint != mapping.fingerprint and state.watermark is not None:
            # Rows stored under another definition of the mapping: reload them all.
            logger.info("mapping %s changed since its rows were loaded: full reload", name)
            full = True
        window = plan_window(
            state.watermark,
            now=started_at,
            lookback=dt.timedelta(seconds=ctx.settings.lookback_seconds),
            full=full,
            crm_time=hints.crm_time,
        )
        pass_id = repo.begin_pass(conn, name, "full" if window.full else "incremental", started_at)
        logs.bind(pass_id=pass_id)
        error_sfids = {e.sfid for e in repo.record_errors(conn, name)}
    plan = repo.upsert_plan(ctx.engine.dialect, table, tuple(mapping.columns))
    run = _Run(
        mapping=mapping,
        table=table,
        pass_id=pass_id,
        window=window,
        watermark=state.watermark,
        started=time.monotonic(),
        api_calls_at_start=calls_at_start,
        error_sfids=error_sfids,
        plan=plan,
        builder=RowBuilder(mapping, columns=plan.columns, binds=plan.binds),
        counted_ahead=hints.counted,
        history=history_for(mapping, ctx.settings),
    )
    outcome, error = Outcome.OK, None
    failure: BaseException | None = None
    try:
        _read(ctx, run, progress)
        # Rows now stored under this definition: the pass's closing records it.
        run.reloaded = window.full and state.fingerprint != mapping.fingerprint
        _retry_failed_records(ctx, run, started_at)
    except RequestLimitExceededError as exc:
        outcome, error, failure = (
            Outcome.LIMIT_EXCEEDED,
            f"the CRM's API request limit is spent: {exc}",
            exc,
        )
    except (CrmError, CrmConfigurationError) as exc:
        outcome, error, failure = Outcome.FAILED, str(exc), exc
    except SQLAlchemyError as exc:
        outcome, error, failure = (
            Outcome.FAILED,
            f"database error: {type(exc).__name__}: {exc}",
            exc,
        )
    except BaseException:
        _close_pass(ctx, run, Outcome.FAILED, "interrupted", started_at)
        raise
    if outcome is not Outcome.OK:
        logger.warning("pull of %s stopped: %s", name, error)
    return _close_pass(ctx, run, outcome, error, started_at), failure


def _close_pass(
    ctx: SyncContext, run: _Run, outcome: Outcome, error: str | None, started_at: dt.datetime
) -> PassResult:
    finished_at = ctx.now()
    api_calls = ctx.crm.api_calls - run.api_calls_at_start
    history_outcome = "interrupted" if error == "interrupted" else outcome.value
    try:
        with ctx.engine.begin() as conn:
            repo.finish_pass(
                conn,
                run.pass_id,
                outcome=history_outcome,
                records=run.records,
                api_calls=api_calls,
                error=error,
                finished_at=finished_at,
            )
            load = _load_report(run, api_calls)
            repo.close_mapping_pass(
                conn,
                run.mapping.name,
                outcome=history_outcome,
                error=error,
                finished_at=finished_at,
                succeeded=outcome is Outcome.OK,
                load=repo.StoredLoad(
                    method=load.method.value,
                    counted=load.counted,
                    job_id=load.job_id,
                    api_calls=load.api_calls,
                    fallback=load.fallback,
                    at=finished_at,
                ),
                fingerprint=run.mapping.fingerprint if run.reloaded else None,
            )
    except SQLAlchemyError as exc:
        # The database is what failed: the pass row stays "running" and is closed as
        # interrupted by the next pass.
        logger.error("could not record the end of the %s pass: %s", run.mapping.name, exc)
        if outcome is Outcome.OK:
            outcome, error = Outcome.FAILED, f"database error: {exc}"
    return result_of(
        run,
        run.mapping.name,
        outcome,
        started_at=started_at,
        finished_at=finished_at,
        api_calls=api_calls,
        error=error,
    )
