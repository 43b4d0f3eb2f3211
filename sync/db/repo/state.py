"""SQL on billing-sync's own pull tables: sync state, pass history, record errors.

This is the one repository of a mapping's state. Everything a mapping has as a whole
lives in its ``sync_state`` row (:class:`MappingState`): the watermark, the pause
switch, the last pass's times, outcome and error, the fingerprint of the mapping its
rows were last fully loaded with, and how the last pass read its window
(:class:`StoredLoad`). The pass that ends writes all of it in the transaction that
closes the pass (:func:`close_mapping_pass`). Records that failed to convert are per
record, with their own attempts and times, and so keep their own table
(``record_errors``); the pass history is a log, one row per pass.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, func, insert, select, update

from sync.db.models import RecordError, SyncPass, SyncState
from sync.db.repo.metrics import add_counters, raise_gauges
from sync.db.repo.rows import IN_CHUNK, dialect_insert
from sync.telemetry import counters

STATE: Table = SyncState.__table__  # type: ignore[assignment]
PASSES: Table = SyncPass.__table__  # type: ignore[assignment]
ERRORS: Table = RecordError.__table__  # type: ignore[assignment]


# --- sync state -------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredLoad:
    """How a mapping's last pass read its window, as its state row keeps it.

    Attributes:
        method: ``rest`` or ``bulk``.
        counted: the window's records as counted before choosing (None: not counted).
        job_id: the Bulk job (None for REST).
        api_calls: the pass's API calls.
        fallback: why a Bulk load was given up for REST, if it was.
        at: when the pass ended.
    """

    method: str
    counted: int | None
    job_id: str | None
    api_calls: int
    fallback: str | None
    at: dt.datetime

    def to_json(self) -> dict[str, Any]:
        """The report as ``status --json`` shows it (``last_load``)."""
        return {
            "method": self.method,
            "counted": self.counted,
            "job_id": self.job_id,
            "api_calls": self.api_calls,
            "fallback": self.fallback,
            "at": self.at.isoformat(),
        }

    def columns(self) -> dict[str, Any]:
        """The ``sync_state`` columns that hold this report."""
        return {
            "load_method": self.method,
            "load_counted": self.counted,
            "load_job_id": self.job_id,
            "load_api_calls": self.api_calls,
            "load_fallback": self.fallback,
            "load_at": self.at,
        }


@dataclass(frozen=True)
class MappingState:
    """One mapping's row of ``sync_state`` (defaults when it has none yet).

    Attributes:
        fingerprint: the mapping's fingerprint when its rows were last fully loaded
            (None: never); another one means the rows must be reloaded.
        last_load: how the last pass read its window (None before the first pass).
    """

    mapping: str
    watermark: dt.datetime | None = None
    paused: bool = False
    last_pass_started_at: dt.datetime | None = None
    last_pass_finished_at: dt.datetime | None = None
    last_outcome: str | None = None
    last_error: str | None = None
    updated_at: dt.datetime | None = None
    fingerprint: str | None = None
    last_load: StoredLoad | None = None


def _state_from_row(row: Any) -> MappingState:
    load = None
    if row.load_method is not None:
        load = StoredLoad(
            method=row.load_method,
            counted=row.load_counted,
            job_id=row.load_job_id,
            api_calls=int(row.load_api_calls or 0),
            fallback=row.load_fallback,
            at=row.load_at if row.load_at is not None else row.updated_at,
        )
    return MappingState(
        mapping=row.mapping,
        watermark=row.watermark,
        paused=bool(row.paused),
        last_pass_started_at=row.last_pass_started_at,
        last_pass_finished_at=row.last_pass_finished_at,
        last_outcome=row.last_outcome,
        last_error=row.last_error,
        updated_at=row.updated_at,
        fingerprint=row.fingerprint,
        last_load=load,
    )


def get_state(conn: Connection, mapping: str) -> MappingState:
    """The state of ``mapping`` (defaults when it was never pulled)."""
    row = conn.execute(select(STATE).where(STATE.c.mapping == mapping)).first()
    return _state_from_row(row) if row is not None else MappingState(mapping)


def all_states(conn: Connection) -> dict[str, MappingState]:
    """Every mapping's state, by name."""
    return {row.mapping: _state_from_row(row) for row in conn.execute(select(STATE))}


def save_state(conn: Connection, mapping: str, now: dt.datetime, **values: Any) -> None:
    """Create or update ``mapping``'s state row with ``values``.

    Raises:
        ValueError: a key is not a column of ``sync_state``.
    """
    unknown = set(values) - set(STATE.c.keys())
    if unknown:
        raise ValueError(f"not sync_state columns: {sorted(unknown)}")
    values = {**values, "updated_at": now}
    stmt = dialect_insert(conn.dialect.name, STATE).values(mapping=mapping, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=[STATE.c.mapping], set_=values))


def close_mapping_pass(
    conn: Connection,
    mapping: str,
    *,
    outcome: str,
    error: str | None,
    finished_at: dt.datetime,
    succeeded: bool,
    load: StoredLoad,
    fingerprint: str | None = None,
) -> None:
    """Write what a finished pass leaves in ``mapping``'s state row, in one statement.

    Call it in the transaction that closes the pass (:func:`finish_pass`).

    Args:
        conn: the closing transaction.
        mapping: the mapping.
        outcome: the pass's outcome as the history keeps it.
        error: why it stopped, if it did.
        finished_at: when it ended.
        succeeded: the pass stored its whole window (``last_pass_finished_at`` moves).
        load: how it read its window.
        fingerprint: the mapping's fingerprint, when the pass completed a full load
            under it (None leaves the stored one).
    """
    values: dict[str, Any] = {"last_outcome": outcome, "last_error": error, **load.columns()}
    if succeeded:
        values["last_pass_finished_at"] = finished_at
    if fingerprint is not None:
        values["fingerprint"] = fingerprint
    save_state(conn, mapping, finished_at, **values)


def set_paused(engine: Engine, mapping: str, paused: bool, *, now: dt.datetime) -> None:
    """Stop (or restart) the polling of ``mapping``."""
    with engine.begin() as conn:
        save_state(conn, mapping, now, paused=paused)


# --- pass history -----------------------------------------------------------------------


def begin_pass(conn: Connection, mapping: str, kind: str, started_at: dt.datetime) -> int:
    """Record the start of a pass; returns its id.

    A pass of the same mapping still marked ``running`` was interrupted (its process
    died): it is closed as ``interrupted``.
    """
    close_stale_passes(conn, mapping, started_at)
    result = conn.execute(
        insert(PASSES).values(
            mapping=mapping,
            kind=kind,
            started_at=started_at,
            records=0,
            api_calls=0,
            outcome="running",
        )
    )
    pass_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
    assert pass_id is not None
    save_state(conn, mapping, started_at, last_pass_started_at=started_at)
    return int(pass_id)


def close_stale_passes(conn: Connection, mapping: str, now: dt.datetime) -> int:
    """Close ``mapping``'s passes still marked ``running`` as ``interrupted``.

    Called when a new pass (or an idle check that found nothing) starts, which the
    per-mapping lock allows only after the previous pass ended; a pass left ``running``
    then belongs to a process that died. Returns how many were closed.
    """
    result = conn.execute(
        update(PASSES)
        .where(PASSES.c.mapping == mapping, PASSES.c.outcome == "running")
        .values(outcome="interrupted", finished_at=now)
    )
    closed = max(result.rowcount, 0)
    if closed:
        key = (
            counters.PASSES,
            counters.label_string({"mapping": mapping, "outcome": "interrupted"}),
        )
        add_counters(conn, {key: float(closed)}, now=now)
    return closed


def pass_progress(conn: Connection, pass_id: int, records: int, api_calls: int) -> None:
    """Update a running pass's counters (in the transaction of the page they cover)."""
    conn.execute(
        update(PASSES).where(PASSES.c.id == pass_id).values(records=records, api_calls=api_calls)
    )


def finish_pass(
    conn: Connection,
    pass_id: int,
    *,
    outcome: str,
    records: int,
    api_calls: int,
    error: str | None,
    finished_at: dt.datetime,
) -> None:
    """Close a pass with its outcome, and count it (same transaction) for ``/metrics``."""
    started = conn.execute(
        select(PASSES.c.mapping, PASSES.c.started_at).where(PASSES.c.id == pass_id)
    ).first()
    conn.execute(
        update(PASSES)
        .where(PASSES.c.id == pass_id)
        .values(
            outcome=outcome,
            records=records,
            api_calls=api_calls,
            error=error,
            finished_at=finished_at,
        )
    )
    if started is not None:
        count_pass(conn, started.mapping, outcome, started.started_at, finished_at)


def count_pass(
    conn: Connection,
    mapping: str,
    outcome: str,
    started_at: dt.datetime,
    finished_at: dt.datetime,
) -> None:
    """Add a finished pass to the pass counters, its duration histogram, its last success."""
    labels = {"mapping": mapping}
    deltas = {(counters.PASSES, counters.label_string({**labels, "outcome": outcome})): 1.0}
    seconds = max(0.0, (finished_at - started_at).total_seconds())
    if outcome != "interrupted":
        deltas.update(
            counters.histogram_deltas(
                counters.PASS_DURATION, labels, seconds, counters.PASS_BUCKETS
            )
        )
    add_counters(conn, deltas, now=finished_at)
    if outcome == "ok":
        mark_in_step(conn, [mapping], finished_at)


def mark_in_step(conn: Connection, mappings: Iterable[str], at: dt.datetime) -> None:
    """Note that ``mappings`` were known to be in step with the CRM at ``at``.

    A pass that stored its window, or a change check that found nothing new, both
    count: ``billing_sync_mapping_last_success_timestamp_seconds`` is the latest of them.
    """
    maxima = {
        (counters.LAST_SUCCESS, counters.label_string({"mapping": name})): at.timestamp()
        for name in mappings
    }
    raise_gauges(conn, maxima, now=at)


@dataclass(frozen=True)
class PassRow:
    """One row of the pass history."""

    id: int
    mapping: str
    kind: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    records: int
    api_calls: int
    outcome: str
    error: str | None


def recent_passes(conn: Connection, mapping: str | None = None, limit: int = 20) -> list[PassRow]:
    """The latest passes, newest first."""
    query = select(PASSES).order_by(PASSES.c.started_at.desc(), PASSES.c.id.desc()).limit(limit)
    if mapping is not None:
        query = query.where(PASSES.c.mapping == mapping)
    return [
        PassRow(
            id=r.id,
            mapping=r.mapping,
            kind=r.kind,
            started_at=r.started_at,
            finished_at=r.finished_at,
            records=r.records,
            api_calls=r.api_calls,
            outcome=r.outcome,
            error=r.error,
        )
        for r in conn.execute(query)
    ]


def records_since(conn: Connection, since: dt.datetime) -> dict[str, int]:
    """Records read per mapping by passes started at or after ``since``."""
    # Grouped by an expression, not the column: grouped by the column, SQLite walks the
    # whole (mapping, started_at) index to skip a sort, every pass ever recorded, instead
    # of the hour's range of the started_at index.
    mapping = PASSES.c.mapping.concat("").label("mapping")
    query = (
        select(mapping, func.coalesce(func.sum(PASSES.c.records), 0))
        .where(PASSES.c.started_at >= since)
        .group_by(mapping)
    )
    return {mapping: int(total) for mapping, total in conn.execute(query)}


# --- record errors ----------------------------------------------------------------------


def save_record_errors(
    conn: Connection, mapping: str, errors: dict[str, str], *, now: dt.datetime
) -> None:
    """Record (or refresh) conversion failures: ``errors`` maps sfid to reason."""
    if not errors:
        return
    stmt = dialect_insert(conn.dialect.name, ERRORS)
    stmt = stmt.on_conflict_do_update(
        index_elements=[ERRORS.c.mapping, ERRORS.c.sfid],
        set_={
            "reason": stmt.excluded.reason,
            "last_seen": stmt.excluded.last_seen,
            "attempts": ERRORS.c.attempts + 1,
        },
    )
    conn.execute(
        stmt,
        [
            {
                "mapping": mapping,
                "sfid": sfid,
                "reason": reason,
                "first_seen": now,
                "last_seen": now,
                "attempts": 1,
            }
            for sfid, reason in errors.items()
        ],
    )


def clear_record_errors(conn: Connection, mapping: str, sfids: Iterable[str]) -> int:
    """Forget the errors of records that converted (or disappeared); returns how many."""
    ids = list(sfids)
    count = 0
    for start in range(0, len(ids), IN_CHUNK):
        result = conn.execute(
            delete(ERRORS).where(
                ERRORS.c.mapping == mapping, ERRORS.c.sfid.in_(ids[start : start + IN_CHUNK])
            )
        )
        count += max(result.rowcount, 0)
    return count


@dataclass(frozen=True)
class RecordErrorRow:
    """A record that failed to convert."""

    mapping: str
    sfid: str
    reason: str
    first_seen: dt.datetime
    last_seen: dt.datetime
    attempts: int


def record_errors(
    conn: Connection, mapping: str | None = None, limit: int | None = None
) -> list[RecordErrorRow]:
    """Recorded conversion failures, most recent first."""
    query = select(ERRORS).order_by(ERRORS.c.last_seen.desc(), ERRORS.c.sfid)
    if mapping is not None:
        query = query.where(ERRORS.c.mapping == mapping)
    if limit is not None:
        query = query.limit(limit)
    return [
        RecordErrorRow(r.mapping, r.sfid, r.reason, r.first_seen, r.last_seen, r.attempts)
        for r in conn.execute(query)
    ]


def record_error_counts(conn: Connection) -> dict[str, int]:
    """Number of failing records per mapping."""
    query = select(ERRORS.c.mapping, func.count()).group_by(ERRORS.c.mapping)
    return {mapping: int(n) for mapping, n in conn.execute(query)}
