"""SQL on the mirrored tables: bulk upserts, tombstones, Id streams, counts.

Callers own the transaction (``with engine.begin() as conn``) so that a page of rows and
the watermark that covers it commit together. The upsert is ``INSERT ... ON CONFLICT
(sfid) DO UPDATE ... WHERE`` on both PostgreSQL and SQLite, fed by each one's fastest
bulk path.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterator, Sequence
from decimal import Decimal
from functools import lru_cache
from operator import itemgetter
from typing import Any

import psycopg
from sqlalchemy import (
    Boolean,
    ColumnElement,
    Connection,
    Date,
    DateTime,
    Dialect,
    Table,
    and_,
    func,
    or_,
    select,
    update,
)
from sqlalchemy import column as sa_column
from sqlalchemy import table as sa_table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import Insert

from sync.db.models import MIRRORED_MODELS
from sync.db.types import ScaledDecimal, UTCDateTime

IN_CHUNK = 500


def mirrored_table(name: str) -> Table:
    """The mirrored table called ``name``.

    Raises:
        KeyError: no such mirrored table.
    """
    table: Table = MIRRORED_MODELS[name].__table__  # type: ignore[assignment]
    return table


def dialect_insert(dialect: str, table: Table) -> Any:
    """The dialect's ``insert`` construct (the one with ``on_conflict_do_update``).

    Raises:
        NotImplementedError: a database other than PostgreSQL and SQLite.
    """
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


def _date_text(value: dt.date | None) -> str | None:
    return None if value is None else value.isoformat()


def _sqlite_processor(kind: Any, dialect: Dialect) -> Any:
    """The converter of one column's values to what SQLite stores (None: as is).

    The same storage as SQLAlchemy's own processors, from C methods where possible:
    binding is the costliest Python step of a bulk upsert on SQLite.
    """
    if isinstance(kind, UTCDateTime):
        return _utc_text
    if isinstance(kind, ScaledDecimal):
        return _scaled_int(kind, dialect)
    if isinstance(kind, Boolean):
        return None  # sqlite3 stores True/False as 1/0 itself
    if isinstance(kind, Date) and not isinstance(kind, DateTime):
        return _date_text
    return kind.dialect_impl(dialect).bind_processor(dialect)


def _upsert_sqlite(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> int:
    columns = tuple(k for k in rows[0] if k not in _SYSTEM)
    sql, plan = _sqlite_upsert(conn.dialect, table, columns)
    getter = itemgetter(*(name for name, _ in plan))
    converted = [
        (i, convert)
        for i, (name, convert) in enumerate(plan)
        if convert is not None and name != "synced_at"
    ]
    # Every row of a page is stamped with the same synced_at: convert it once.
    synced_index = next(i for i, (name, _) in enumerate(plan) if name == "synced_at")
    synced_convert = plan[synced_index][1]
    synced = rows[0]["synced_at"]
    synced_value = synced_convert(synced) if synced_convert else synced
    params = []
    for row in rows:
        values = list(getter(row))
        for i, convert in converted:
            values[i] = convert(values[i])
        values[synced_index] = (
            synced_value
            if row["synced_at"] is synced
            else (synced_convert(row["synced_at"]) if synced_convert else row["synced_at"])
        )
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
    try:
        with driver.cursor() as cur:
            cur.execute(create)
            cur.execute(truncate)
            with cur.copy(copy_sql) as copy:
                for row in rows:
                    copy.write_row([row[n] for n in names])
    except psycopg.Error as exc:
        # Raised as SQLAlchemy raises driver errors (DataError, IntegrityError, ...).
        raise DBAPIError.instance(copy_sql, None, exc, psycopg.Error) from exc
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
    for start in range(0, len(ids), IN_CHUNK):
        conditions = [table.c.sfid.in_(ids[start : start + IN_CHUNK]), ~table.c.is_deleted]
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


def stream_live_sfids(conn: Connection, table: Table, batch: int = 2000) -> Iterator[str]:
    """Every live sfid of ``table`` in byte order, streamed ``batch`` at a time."""
    query = (
        select(table.c.sfid)
        .where(~table.c.is_deleted)
        .order_by(_binary(conn.dialect.name, table.c.sfid))
    )
    result = conn.execution_options(stream_results=True, yield_per=batch).execute(query)
    yield from result.scalars()


def row_counts(conn: Connection, table: Table) -> tuple[int, int]:
    """(live rows, tombstones) of a mirrored table."""
    rows = conn.execute(
        select(func.count(), func.count().filter(table.c.is_deleted)).select_from(table)
    ).one()
    total, deleted = int(rows[0]), int(rows[1] or 0)
    return total - deleted, deleted
