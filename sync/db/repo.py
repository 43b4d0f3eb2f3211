"""Every SQL statement of the pull: bulk upserts, watermarks, pass history, record errors.

Callers own the transaction (``with engine.begin() as conn``) so that a page of rows and
the watermark that covers it commit together. Statements are the same on PostgreSQL and
SQLite: ``INSERT ... ON CONFLICT (sfid) DO UPDATE ... WHERE`` through each dialect's
insert construct.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Dialect,
    Engine,
    Table,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy import column as sa_column
from sqlalchemy import table as sa_table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from sync.db.models import MIRRORED_MODELS, RecordError, SyncPass, SyncState
from sync.db.types import ScaledDecimal, UTCDateTime

STATE: Table = SyncState.__table__  # type: ignore[assignment]
PASSES: Table = SyncPass.__table__  # type: ignore[assignment]
ERRORS: Table = RecordError.__table__  # type: ignore[assignment]

_IN_CHUNK = 500


def mirrored_table(name: str) -> Table:
    """The mirrored table called ``name``.

    Raises:
        KeyError: no such mirrored table.
    """
    table: Table = MIRRORED_MODELS[name].__table__  # type: ignore[assignment]
    return table


def _dialect_insert(dialect: str, table: Table) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"billing-sync supports PostgreSQL and SQLite, not {dialect}")


_SYSTEM = ("sfid", "system_modstamp", "is_deleted", "synced_at")


def _on_conflict(stmt: Any, table: Table, columns: tuple[str, ...]) -> Insert:
    """``ON CONFLICT (sfid) DO UPDATE ... WHERE`` that skips unchanged rows.

    A row is rewritten when the CRM's version is newer (a later SystemModstamp), or when
    the version is the same but a value differs (a mapping now converts it differently).
    An older version never overwrites a newer one, and an identical row is not written at
    all, so re-reading the lookback window costs no writes.
    """
    excluded = stmt.excluded
    updated = ("system_modstamp", "is_deleted", "synced_at", *columns)
    compared = ("is_deleted", *columns)
    changed: ColumnElement[bool] = or_(
        *(table.c[name].is_distinct_from(excluded[name]) for name in compared)
    )
    newer = excluded.system_modstamp > table.c.system_modstamp
    same = excluded.system_modstamp == table.c.system_modstamp
    upsert: Insert = stmt.on_conflict_do_update(
        index_elements=[table.c.sfid],
        set_={name: excluded[name] for name in updated},
        where=or_(newer, and_(same, changed)),
    )
    return upsert


@lru_cache(maxsize=64)
def _sqlite_upsert(
    dialect: Dialect, table: Table, columns: tuple[str, ...]
) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """The upsert as driver SQL with ``?`` placeholders, and each parameter's converter.

    Rows are bound straight through the driver (``executemany``) with the columns' own
    bind processors applied once per value, which skips SQLAlchemy's per-row parameter
    handling: the part of a bulk upsert that otherwise costs the most.
    """
    names = (*_SYSTEM, *columns)
    stmt = _on_conflict(sqlite.insert(table), table, columns)
    compiled = stmt.compile(dialect=dialect, column_keys=list(names))
    order = compiled.positiontup or []
    plan = tuple((name, _sqlite_processor(table.c[name].type, dialect)) for name in order)
    return str(compiled), plan


def _utc_text(value: dt.datetime | None) -> str | None:
    """UTCDateTime's SQLite storage (naive UTC text), as SQLAlchemy's processor writes it."""
    if value is None:
        return None
    if value.tzinfo is not dt.UTC:
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: billing-sync stores UTC only")
        value = value.astimezone(dt.UTC)
    # "YYYY-MM-DD HH:MM:SS.ffffff+00:00" without the offset
    return value.isoformat(" ", "microseconds")[:26]


def _scaled_int(kind: ScaledDecimal, dialect: Dialect) -> Any:
    """ScaledDecimal's SQLite storage (an integer of hundredths, ...) for Decimals."""
    generic = kind.process_bind_param
    quantum = Decimal(1).scaleb(-kind.scale)

    def process(value: Any) -> Any:
        if type(value) is Decimal:
            return int(value.quantize(quantum).scaleb(kind.scale))
        return generic(value, dialect)

    return process


def _sqlite_processor(kind: Any, dialect: Dialect) -> Any:
    if isinstance(kind, UTCDateTime):
        # The same text as the generic processor, from datetime.isoformat in C; the
        # generic one is the costliest step of a bulk upsert on SQLite.
        return _utc_text
    if isinstance(kind, ScaledDecimal):
        return _scaled_int(kind, dialect)
    return kind.dialect_impl(dialect).bind_processor(dialect)


def _upsert_sqlite(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> int:
    columns = tuple(k for k in rows[0] if k not in _SYSTEM)
    sql, plan = _sqlite_upsert(conn.dialect, table, columns)
    getter = itemgetter(*(name for name, _ in plan))
    converted = [(i, convert) for i, (_, convert) in enumerate(plan) if convert is not None]
    params = []
    for row in rows:
        values = list(getter(row))
        for i, convert in converted:
            values[i] = convert(values[i])
        params.append(tuple(values))
    result = conn.exec_driver_sql(sql, params)
    return max(result.rowcount, 0)


@lru_cache(maxsize=64)
def _postgres_upsert(table: Table, columns: tuple[str, ...]) -> tuple[str, str, str, Insert]:
    names = (*_SYSTEM, *columns)
    stage_name = f"billing_sync_stage_{table.name}"
    quoted = ", ".join(f'"{n}"' for n in names)
    create = (
        f'CREATE TEMP TABLE IF NOT EXISTS "{stage_name}" ON COMMIT DROP AS '
        f'SELECT {quoted} FROM "{table.name}" WITH NO DATA'
    )
    copy = f'COPY "{stage_name}" ({quoted}) FROM STDIN'
    stage = sa_table(stage_name, *(sa_column(n) for n in names))
    insert_select = _on_conflict(
        postgresql.insert(table).from_select(list(names), select(*(stage.c[n] for n in names))),
        table,
        columns,
    )
    return create, f'TRUNCATE "{stage_name}"', copy, insert_select


def _upsert_postgres(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> int:
    columns = tuple(k for k in rows[0] if k not in _SYSTEM)
    names = (*_SYSTEM, *columns)
    create, truncate, copy_sql, insert_select = _postgres_upsert(table, columns)
    # COPY into a transaction-scoped staging table, then one INSERT ... SELECT ... ON
    # CONFLICT: PostgreSQL's fastest bulk path, with the values adapted by psycopg in C.
    driver = conn.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cur:
        cur.execute(create)
        cur.execute(truncate)
        with cur.copy(copy_sql) as copy:
            for row in rows:
                copy.write_row([row[n] for n in names])
    result = conn.execute(insert_select)
    return max(result.rowcount, 0)


def upsert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> int:
    """Insert or update ``rows`` (all with the same keys) by ``sfid``, in bulk.

    Returns:
        How many rows were inserted or changed (unchanged rows are not written).
    """
    if not rows:
        return 0
    if len({row["sfid"] for row in rows}) != len(rows):
        # One statement may not touch a row twice; the last version of each wins.
        rows = list({row["sfid"]: row for row in rows}.values())
    dialect = conn.dialect.name
    if dialect == "sqlite":
        return _upsert_sqlite(conn, table, rows)
    if dialect == "postgresql":
        return _upsert_postgres(conn, table, rows)
    raise NotImplementedError(f"billing-sync supports PostgreSQL and SQLite, not {dialect}")


def relax_commit_wait(conn: Connection) -> None:
    """Let this transaction's commit return before its WAL record is flushed (PostgreSQL).

    Used for pull pages: the commit stays atomic (rows and watermark together), and a
    crash of the database server can lose only the last moments of pages with their
    watermark, which the next pass reads again. It saves a disk flush per page.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL synchronous_commit = off")


def tombstone(
    conn: Connection,
    table: Table,
    sfids: Collection[str],
    *,
    now: dt.datetime,
    not_after: dt.datetime | None = None,
) -> int:
    """Flag live rows as deleted (their CRM record is gone); returns how many.

    Args:
        conn: the connection of the current transaction.
        table: a mirrored table.
        sfids: the records to flag.
        now: written to ``synced_at``.
        not_after: leave rows whose ``system_modstamp`` is later than this alone (they
            were written after the caller's view of the CRM was taken).
    """
    count = 0
    ids = list(sfids)
    for start in range(0, len(ids), _IN_CHUNK):
        conditions = [table.c.sfid.in_(ids[start : start + _IN_CHUNK]), ~table.c.is_deleted]
        if not_after is not None:
            conditions.append(table.c.system_modstamp <= not_after)
        result = conn.execute(
            update(table).where(*conditions).values(is_deleted=True, synced_at=now)
        )
        count += max(result.rowcount, 0)
    return count


def _binary(dialect: str, column: Any) -> Any:
    # Salesforce orders Ids by their bytes (they are case-sensitive); PostgreSQL's
    # default collation may not, so range scans compare in the "C" collation there.
    return column.collate("C") if dialect == "postgresql" else column


def live_sfids_in_range(
    conn: Connection, table: Table, after: str | None, until: str | None
) -> set[str]:
    """Sfids of live rows with ``after < sfid <= until`` in byte order (None: unbounded)."""
    col = _binary(conn.dialect.name, table.c.sfid)
    query = select(table.c.sfid).where(~table.c.is_deleted)
    if after is not None:
        query = query.where(col > after)
    if until is not None:
        query = query.where(col <= until)
    return set(conn.scalars(query))


def stream_live_sfids(conn: Connection, table: Table, batch: int = 2000) -> Iterator[str]:
    """Every live sfid of ``table`` in byte order, streamed ``batch`` at a time."""
    query = (
        select(table.c.sfid)
        .where(~table.c.is_deleted)
        .order_by(_binary(conn.dialect.name, table.c.sfid))
    )
    result = conn.execution_options(stream_results=True, yield_per=batch).execute(query)
    yield from result.scalars()


def existing_sfids(conn: Connection, table: Table, sfids: Iterable[str]) -> set[str]:
    """Which of ``sfids`` have a row (live or tombstone)."""
    found: set[str] = set()
    ids = list(sfids)
    for start in range(0, len(ids), _IN_CHUNK):
        found.update(
            conn.scalars(
                select(table.c.sfid).where(table.c.sfid.in_(ids[start : start + _IN_CHUNK]))
            )
        )
    return found


def row_counts(conn: Connection, table: Table) -> tuple[int, int]:
    """(live rows, tombstones) of a mirrored table."""
    rows = conn.execute(
        select(func.count(), func.count().filter(table.c.is_deleted)).select_from(table)
    ).one()
    total, deleted = int(rows[0]), int(rows[1] or 0)
    return total - deleted, deleted


# --- sync state -------------------------------------------------------------------------


@dataclass(frozen=True)
class MappingState:
    """One mapping's row of ``sync_state`` (defaults when it has none yet)."""

    mapping: str
    watermark: dt.datetime | None = None
    paused: bool = False
    last_pass_started_at: dt.datetime | None = None
    last_pass_finished_at: dt.datetime | None = None
    last_outcome: str | None = None
    last_error: str | None = None
    updated_at: dt.datetime | None = None


def _state_from_row(row: Any) -> MappingState:
    return MappingState(
        mapping=row.mapping,
        watermark=row.watermark,
        paused=bool(row.paused),
        last_pass_started_at=row.last_pass_started_at,
        last_pass_finished_at=row.last_pass_finished_at,
        last_outcome=row.last_outcome,
        last_error=row.last_error,
        updated_at=row.updated_at,
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
    stmt = _dialect_insert(conn.dialect.name, STATE).values(mapping=mapping, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=[STATE.c.mapping], set_=values))


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
    return max(result.rowcount, 0)


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
    """Close a pass with its outcome."""
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
    query = (
        select(PASSES.c.mapping, func.coalesce(func.sum(PASSES.c.records), 0))
        .where(PASSES.c.started_at >= since)
        .group_by(PASSES.c.mapping)
    )
    return {mapping: int(total) for mapping, total in conn.execute(query)}


# --- record errors ----------------------------------------------------------------------


def save_record_errors(
    conn: Connection, mapping: str, errors: dict[str, str], *, now: dt.datetime
) -> None:
    """Record (or refresh) conversion failures: ``errors`` maps sfid to reason."""
    if not errors:
        return
    stmt = _dialect_insert(conn.dialect.name, ERRORS)
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
    for start in range(0, len(ids), _IN_CHUNK):
        result = conn.execute(
            delete(ERRORS).where(
                ERRORS.c.mapping == mapping, ERRORS.c.sfid.in_(ids[start : start + _IN_CHUNK])
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
