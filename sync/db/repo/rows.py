"""SQL on the mirrored tables: bulk upserts, tombstones, Id streams, counts.

Callers own the transaction (``with engine.begin() as conn``) so that a page of rows and
the watermark that covers it commit together. The upsert is ``INSERT ... ON CONFLICT
(sfid) DO UPDATE ... WHERE`` on both PostgreSQL and SQLite, fed by each one's fastest
bulk path.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
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
from sync.db.types import VALUE, Bind, BindForm, ScaledDecimal, UTCDateTime

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


@dataclass(frozen=True)
class UpsertPlan:
    """A prepared bulk upsert into one mirrored table, for one set of columns.

    Rows are tuples of driver-ready values (see :attr:`binds`) in :attr:`columns` order:
    they go straight to the driver, past SQLAlchemy's per-row parameter handling, which
    is what otherwise costs the most in a bulk upsert. Build plans with
    :func:`upsert_plan` (cached) and write with :func:`upsert_values`.

    Attributes:
        dialect: ``sqlite`` or ``postgresql``.
        table: the mirrored table.
        columns: every column written, in the order of a row's values.
        binds: per column (same order), the form its values must have.
        statements: SQLite: the upsert with ``?`` placeholders. PostgreSQL: the staging
            table's creation, its emptying, the COPY into it and the INSERT ... SELECT.
    """

    dialect: str
    table: Table
    columns: tuple[str, ...]
    binds: tuple[Bind, ...]
    statements: tuple[str, ...]

    @property
    def sfid_index(self) -> int:
        """Where a row's sfid is."""
        return self.columns.index("sfid")

    def bind_of(self, column: str) -> Bind:
        """The form of ``column``'s values."""
        return self.binds[self.columns.index(column)]

    def row(self, values: dict[str, Any]) -> tuple[Any, ...]:
        """A row dict (column -> value as the column type takes it) as a plan row."""
        return tuple(
            bind.adapt(values[name]) for name, bind in zip(self.columns, self.binds, strict=True)
        )


def _bind(kind: Any, dialect: Dialect) -> Bind:
    """The form in which the driver takes values of a column of type ``kind``."""
    if dialect.name == "postgresql":
        if isinstance(kind, ScaledDecimal):
            return Bind(BindForm.NUMERIC, kind.scale)
        return VALUE
    if isinstance(kind, UTCDateTime):
        return Bind(BindForm.UTC_TEXT)
    if isinstance(kind, ScaledDecimal):
        return Bind(BindForm.SCALED_INT, kind.scale)
    if isinstance(kind, Date) and not isinstance(kind, DateTime):
        return Bind(BindForm.DATE_TEXT)
    if isinstance(kind, Boolean):
        return VALUE  # sqlite3 stores True/False as 1/0 itself
    if kind.dialect_impl(dialect).bind_processor(dialect) is not None:
        raise NotImplementedError(f"no bulk binding for a {kind!r} column on SQLite")
    return VALUE


@lru_cache(maxsize=128)
def upsert_plan(dialect: Dialect, table: Table, columns: tuple[str, ...]) -> UpsertPlan:
    """The bulk upsert of ``columns`` (plus the system columns) into ``table``.

    Raises:
        NotImplementedError: a database other than PostgreSQL and SQLite.
        KeyError: a column the table does not have.
    """
    columns = tuple(c for c in columns if c not in _SYSTEM)
    names = (*_SYSTEM, *columns)
    if dialect.name == "sqlite":
        stmt = _on_conflict(sqlite.insert(table), table, columns)
        compiled = stmt.compile(dialect=dialect, column_keys=list(names))
        order = tuple(compiled.positiontup or ())
        if sorted(order) != sorted(names):
            raise RuntimeError(f"unexpected parameters in the upsert of {table.name}: {order}")
        statements: tuple[str, ...] = (str(compiled),)
    elif dialect.name == "postgresql":
        order = names
        # One staging table per session and column set, emptied by every commit (in place,
        # which costs less than creating and dropping it with every page).
        shape = ",".join(f"{n}:{table.c[n].type!r}" for n in names)
        digest = hashlib.sha256(shape.encode()).hexdigest()[:10]
        stage_name = f"billing_sync_stage_{table.name}_{digest}"
        quoted = ", ".join(f'"{n}"' for n in names)
        stage = sa_table(stage_name, *(sa_column(n) for n in names))
        insert_select = _on_conflict(
            postgresql.insert(table).from_select(list(names), select(*(stage.c[n] for n in names))),
            table,
            columns,
        )
        statements = (
            f'CREATE TEMP TABLE IF NOT EXISTS "{stage_name}" ON COMMIT DELETE ROWS AS '
            f'SELECT {quoted} FROM "{table.name}" WITH NO DATA',
            f'DELETE FROM "{stage_name}"',  # rows of an earlier upsert of this transaction
            f'COPY "{stage_name}" ({quoted}) FROM STDIN',
            str(insert_select.compile(dialect=dialect)),
        )
    else:
        raise NotImplementedError(
            f"billing-sync supports PostgreSQL and SQLite, not {dialect.name}"
        )
    binds = tuple(_bind(table.c[name].type, dialect) for name in order)
    return UpsertPlan(dialect.name, table, order, binds, statements)


def _upsert_postgres(conn: Connection, plan: UpsertPlan, rows: Sequence[tuple[Any, ...]]) -> int:
    create, truncate, copy_sql, insert_select = plan.statements
    # COPY into a transaction-scoped staging table, then one INSERT ... SELECT ... ON
    # CONFLICT: PostgreSQL's fastest bulk path, with the values adapted by psycopg in C.
    driver = conn.connection.driver_connection
    assert driver is not None
    try:
        with driver.cursor() as cur:
            cur.execute(f"{create}; {truncate}")  # one round trip
            with cur.copy(copy_sql) as copy:
                write_row = copy.write_row
                for row in rows:
                    write_row(row)
    except psycopg.Error as exc:
        # Raised as SQLAlchemy raises driver errors (DataError, IntegrityError, ...).
        raise DBAPIError.instance(copy_sql, None, exc, psycopg.Error) from exc
    result = conn.exec_driver_sql(insert_select)
    return max(result.rowcount, 0)


def upsert_values(conn: Connection, plan: UpsertPlan, rows: Sequence[tuple[Any, ...]]) -> int:
    """Insert or update plan rows (see :class:`UpsertPlan`) by ``sfid``, in bulk.

    A row is rewritten only when the CRM's version is newer or a value differs; an older
    version never overwrites a newer one.

    Returns:
        How many rows were inserted or changed (unchanged rows are not written).
    """
    if not rows:
        return 0
    sfid = plan.sfid_index
    if len({row[sfid] for row in rows}) != len(rows):
        # One statement may not touch a row twice; the last version of each wins.
        rows = list({row[sfid]: row for row in rows}.values())
    if plan.dialect == "sqlite":
        result = conn.exec_driver_sql(plan.statements[0], rows)
        return max(result.rowcount, 0)
    return _upsert_postgres(conn, plan, rows)


def upsert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> int:
    """Insert or update ``rows`` (all with the same keys) by ``sfid``, in bulk.

    The values are as the columns' types take them (aware datetimes, Decimals, ...);
    for many pages, build the rows for :func:`upsert_values` directly instead.

    Returns:
        How many rows were inserted or changed (unchanged rows are not written).
    """
    if not rows:
        return 0
    plan = upsert_plan(conn.dialect, table, tuple(rows[0]))
    return upsert_values(conn, plan, [plan.row(row) for row in rows])


# WAL pages between SQLite checkpoints on connections that write pull pages (SQLite's
# default is 1,000): a page of rows touches the same index pages as the one before, and
# each checkpoint copies them to the database file again.
_SQLITE_CHECKPOINT_PAGES = 10_000


def relax_commit_wait(conn: Connection) -> None:
    """Make the commits of bulk page writes cheaper, keeping them atomic.

    PostgreSQL: this transaction's commit returns before its WAL record is flushed; a
    crash of the database server can lose only the last moments of pages with their
    watermark, which the next pass reads again. It saves a disk flush per page.
    SQLite: the connection checkpoints its write-ahead log less often (commits there are
    not flushed to disk one by one either: ``synchronous=NORMAL``).
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
    elif conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint = {_SQLITE_CHECKPOINT_PAGES}")


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
