"""Find rows whose CRM record was purged or hard-deleted, and tombstone them.

``queryAll`` reports a delete only while the record sits in the recycle bin; a record
purged (or hard-deleted) before a pass saw it would stay live locally forever. Reconcile
walks the CRM's live Ids in Id order, page by page, next to the local live sfids in the
same (byte) order, and tombstones the local ones the CRM does not list. Both sides are
streamed, so memory stays at a page whatever the size; the cost is one API call per 2,000
live records.

A row stamped after the walk began (minus the lookback) is left alone: it may belong to
a record created after the CRM's answer was taken.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Generator, Iterable, Iterator

from sqlalchemy.exc import SQLAlchemyError

from sync.context import SyncContext
from sync.crm.errors import CrmConfigurationError, CrmError, RequestLimitExceededError
from sync.crm.soql import and_, select
from sync.db import repo
from sync.pull.history import history_for, tombstone
from sync.pull.pages import Prefetcher
from sync.pull.result import Outcome, ReconcileResult

logger = logging.getLogger("sync.pull")

_TOMBSTONE_BATCH = 500


class IdOrderError(RuntimeError):
    """The CRM listed Ids out of byte order, so ranges cannot be compared safely."""


def ordered_ids(ids: Iterable[str]) -> Iterator[str]:
    """``ids`` unchanged, checking they strictly increase in byte order.

    Raises:
        IdOrderError: an Id is not after the one before it.
    """
    previous: str | None = None
    for value in ids:
        if previous is not None and value <= previous:
            raise IdOrderError(
                f"the CRM listed Id {value} after {previous}: not in byte order, "
                "so reconcile cannot compare Id ranges"
            )
        previous = value
        yield value


def missing_from(local: Iterable[str], remote: Iterable[str]) -> Iterator[str]:
    """The values of ``local`` that ``remote`` lacks; both sorted ascending, streamed."""
    remote_iter = iter(remote)
    current = next(remote_iter, None)
    for value in local:
        while current is not None and current < value:
            current = next(remote_iter, None)
        if current != value:
            yield value


def reconcile_mapping(
    ctx: SyncContext, name: str, *, now: dt.datetime | None = None
) -> ReconcileResult:
    """Tombstone ``name``'s live rows whose record the CRM no longer has.

    Returns:
        The result; CRM and database failures end it with FAILED or LIMIT_EXCEEDED
        (tombstones written before that stay: each was right when written).

    Raises:
        KeyError: no such mapping.
    """
    mapping = ctx.mapping(name)
    table = repo.mirrored_table(mapping.table)
    started_at = now or ctx.now()
    guard = started_at - dt.timedelta(seconds=ctx.settings.lookback_seconds)
    calls = ctx.crm.api_calls
    soql = select(mapping.crm_object, ["Id"], where=and_(mapping.filter), order_by=["Id"])
    batch = ctx.settings.pull_batch_size
    crm_records = 0
    tombstoned = 0

    def crm_ids() -> Generator[str, None, None]:
        nonlocal crm_records
        with Prefetcher(
            lambda: ctx.crm.query_pages(soql, batch_size=batch), name=f"reconcile-{name}"
        ) as pages:
            for page in pages:
                crm_records += len(page.records)
                for record in page.records:
                    yield str(record["Id"])

    history = history_for(mapping, ctx.settings)

    def flush(sfids: list[str]) -> int:
        with ctx.engine.begin() as conn:
            return tombstone(conn, table, sfids, history, now=ctx.now(), not_after=guard)

    outcome, error = Outcome.OK, None
    try:
        remote = crm_ids()
        try:
            with ctx.engine.connect() as reader:
                local = repo.stream_live_sfids(reader, table)
                pending: list[str] = []
                # Once the local rows are exhausted nothing more can be missing: the rest
                # of the CRM's Ids is not fetched.
                for sfid in missing_from(local, ordered_ids(remote)):
                    pending.append(sfid)
                    if len(pending) >= _TOMBSTONE_BATCH:
                        tombstoned += flush(pending)
                        pending = []
                if pending:
                    tombstoned += flush(pending)
        finally:
            remote.close()
    except RequestLimitExceededError as exc:
        outcome, error = Outcome.LIMIT_EXCEEDED, f"the CRM's API request limit is spent: {exc}"
    except (CrmError, CrmConfigurationError, IdOrderError) as exc:
        outcome, error = Outcome.FAILED, str(exc)
    except SQLAlchemyError as exc:
        outcome, error = Outcome.FAILED, f"database error: {type(exc).__name__}: {exc}"
    if error:
        logger.warning("reconcile of %s stopped: %s", name, error)
    elif tombstoned:
        logger.info("reconcile of %s: %d rows gone from the CRM", name, tombstoned)
    return ReconcileResult(
        mapping=name,
        outcome=outcome,
        crm_records=crm_records,
        tombstoned=tombstoned,
        api_calls=ctx.crm.api_calls - calls,
        error=error,
    )
