"""SQL on ``metric_counters``: counters summed over every process of the deployment.

Increments are added with multi-row ``INSERT ... ON CONFLICT DO UPDATE SET value = value
+ excluded.value`` statements, rows in key order (two processes flushing the same series never
wait on each other in opposite orders). Timestamp gauges keep the largest value written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from sqlalchemy import Connection, Table, func, select

from sync.db.models import MetricCounter
from sync.db.repo.rows import dialect_insert

COUNTERS: Table = MetricCounter.__table__  # type: ignore[assignment]

Key = tuple[str, str]

# Rows per multi-row upsert: one round trip for a flush, within SQLite's 999 parameters.
_ROWS_PER_STATEMENT = 200


def add_counters(conn: Connection, deltas: Mapping[Key, float], *, now: dt.datetime) -> None:
    """Add ``deltas`` ((name, labels) to increment) to the stored series."""
    if not deltas:
        return
    stmt = dialect_insert(conn.dialect.name, COUNTERS)
    stmt = stmt.on_conflict_do_update(
        index_elements=[COUNTERS.c.name, COUNTERS.c.labels],
        set_={"value": COUNTERS.c.value + stmt.excluded.value, "updated_at": now},
    )
    rows = [
        {"name": name, "labels": labels, "value": amount, "updated_at": now}
        for (name, labels), amount in sorted(deltas.items())
    ]
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        conn.execute(stmt.values(rows[start : start + _ROWS_PER_STATEMENT]))


def raise_gauges(conn: Connection, maxima: Mapping[Key, float], *, now: dt.datetime) -> None:
    """Store each of ``maxima`` unless the stored value is already larger."""
    if not maxima:
        return
    greatest = func.max if conn.dialect.name == "sqlite" else func.greatest
    stmt = dialect_insert(conn.dialect.name, COUNTERS)
    stmt = stmt.on_conflict_do_update(
        index_elements=[COUNTERS.c.name, COUNTERS.c.labels],
        set_={"value": greatest(COUNTERS.c.value, stmt.excluded.value), "updated_at": now},
    )
    rows = [
        {"name": name, "labels": labels, "value": value, "updated_at": now}
        for (name, labels), value in sorted(maxima.items())
    ]
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        conn.execute(stmt.values(rows[start : start + _ROWS_PER_STATEMENT]))


def read_counters(conn: Connection) -> dict[Key, float]:
    """Every stored series."""
    rows = conn.execute(select(COUNTERS.c.name, COUNTERS.c.labels, COUNTERS.c.value))
    return {(row.name, row.labels): float(row.value) for row in rows}
