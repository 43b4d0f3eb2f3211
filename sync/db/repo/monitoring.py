"""SQL that monitoring reads at scrape time, and the outbox actions of the ops dashboard.

Every query here is an aggregate over an indexed column or a small table, so one scrape
costs a few milliseconds however many rows are mirrored and passes recorded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Float,
    Table,
    case,
    cast,
    func,
    insert,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from sync.db.models import MIRRORED_MODELS, AuditEntry, ChangeSet, SyncPass

CHANGE_SETS: Table = ChangeSet.__table__  # type: ignore[assignment]
AUDIT: Table = AuditEntry.__table__  # type: ignore[assignment]
PASSES: Table = SyncPass.__table__  # type: ignore[assignment]

OUTBOX_STATES: tuple[str, ...] = (
    "accepted",
    "sending",
    "applied",
    "conflict",
    "failed",
    "cancelled",
)
"""Every state a change set can be in, in the order of its life."""
PENDING_STATES: tuple[str, ...] = ("accepted", "sending")
PROBLEM_STATES: tuple[str, ...] = ("conflict", "failed")


def record_counts(conn: Connection, tables: Iterable[str]) -> dict[str, tuple[int, int]]:
    """(live rows, tombstones) of each mirrored table, in one round trip."""
    names = sorted(set(tables) & set(MIRRORED_MODELS))
    if not names:
        return {}
    parts = []
    for name in names:
        table: Table = MIRRORED_MODELS[name].__table__  # type: ignore[assignment]
        parts.append(
            select(
                literal(name).label("name"),
                func.count().label("total"),
                func.count().filter(table.c.is_deleted).label("deleted"),
            ).select_from(table)
        )
    counts: dict[str, tuple[int, int]] = {}
    for row in conn.execute(union_all(*parts)):
        total, deleted = int(row.total), int(row.deleted or 0)
        counts[row.name] = (total - deleted, deleted)
    return counts


# --- the outbox -------------------------------------------------------------------------


def outbox_counts(conn: Connection) -> dict[str, int]:
    """Change sets per state; every state present, zeros included."""
    counts = dict.fromkeys(OUTBOX_STATES, 0)
    rows = conn.execute(select(CHANGE_SETS.c.state, func.count()).group_by(CHANGE_SETS.c.state))
    for state, n in rows:
        counts[str(state)] = int(n)
    return counts


def oldest_pending(conn: Connection) -> dt.datetime | None:
    """When the oldest change set still waiting to be applied was accepted."""
    value: dt.datetime | None = conn.execute(
        select(func.min(CHANGE_SETS.c.accepted_at)).where(CHANGE_SETS.c.state.in_(PENDING_STATES))
    ).scalar()
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)  # SQLite's min() bypasses the column type
    return value


def _seconds_between(conn: Connection, start: Any, end: Any) -> ColumnElement[Any]:
    if conn.dialect.name == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return func.extract("epoch", end - start)


@dataclass(frozen=True)
class HistogramData:
    """Cumulative bucket counts (one per bound, then +Inf), sum and count."""

    buckets: list[tuple[float, int]]
    sum: float
    count: int


def push_durations(conn: Connection, bounds: Sequence[float]) -> HistogramData:
    """Seconds from accepted to applied of every applied change set, as a histogram."""
    seconds = _seconds_between(conn, CHANGE_SETS.c.accepted_at, CHANGE_SETS.c.finished_at)
    columns = [
        func.coalesce(func.sum(case((seconds <= bound, 1), else_=0)), 0).label(f"b{i}")
        for i, bound in enumerate(bounds)
    ]
    row = conn.execute(
        select(
            *columns,
            func.coalesce(func.sum(cast(seconds, Float)), 0.0).label("total"),
            func.count().label("n"),
        ).where(CHANGE_SETS.c.state == "applied", CHANGE_SETS.c.finished_at.is_not(None))
    ).one()
    count = int(row.n)
    buckets = [(float(bound), int(row[i])) for i, bound in enumerate(bounds)]
    buckets.append((float("inf"), count))
    return HistogramData(buckets=buckets, sum=float(row.total or 0.0), count=count)


@dataclass(frozen=True)
class ProblemChangeSet:
    """A conflicted or failed change set, as the ops dashboard lists it."""

    id: int
    key: str
    account_sfid: str
    typed_name: str
    summary: str
    state: str
    attempts: int
    accepted_at: dt.datetime
    finished_at: dt.datetime | None
    message: str | None


def problem_change_sets(conn: Connection, limit: int = 50) -> list[ProblemChangeSet]:
    """Conflicted and failed change sets, most recent first."""
    query = (
        select(CHANGE_SETS)
        .where(CHANGE_SETS.c.state.in_(PROBLEM_STATES))
        .order_by(CHANGE_SETS.c.id.desc())
        .limit(limit)
    )
    return [
        ProblemChangeSet(
            id=r.id,
            key=r.key,
            account_sfid=r.account_sfid,
            typed_name=r.typed_name,
            summary=r.summary,
            state=r.state,
            attempts=r.attempts,
            accepted_at=r.accepted_at,
            finished_at=r.finished_at,
            message=r.message,
        )
        for r in conn.execute(query)
    ]


def set_change_set_state(
    conn: Connection,
    change_set_id: int,
    *,
    allowed_from: Sequence[str],
    values: dict[str, Any],
    actor: str,
    action: str,
    now: dt.datetime,
) -> str | None:
    """Move a change set to a new state if it is in one of ``allowed_from``, with an audit row.

    Returns:
        The state it was in when it moved, or None when it was not in an allowed state
        (or does not exist): nothing changed then.
    """
    row = conn.execute(
        select(CHANGE_SETS.c.state, CHANGE_SETS.c.account_sfid).where(
            CHANGE_SETS.c.id == change_set_id
        )
    ).first()
    if row is None or row.state not in allowed_from:
        return None
    moved = conn.execute(
        update(CHANGE_SETS)
        .where(CHANGE_SETS.c.id == change_set_id, CHANGE_SETS.c.state == row.state)
        .values(**values, updated_at=now)
    ).rowcount
    if not moved:
        return None  # someone else moved it between the read and the update
    conn.execute(
        insert(AUDIT).values(
            at=now,
            actor=actor,
            action=action,
            account_sfid=row.account_sfid,
            change_set_id=change_set_id,
            detail=f"{row.state} -> {values['state']}",
        )
    )
    return str(row.state)


# --- pass history -----------------------------------------------------------------------


def api_calls_by_hour(conn: Connection, since: dt.datetime) -> dict[dt.datetime, int]:
    """CRM calls of the passes started at or after ``since``, per hour (UTC) of their start."""
    if conn.dialect.name == "sqlite":
        hour: ColumnElement[Any] = func.strftime("%Y-%m-%d %H:00:00", PASSES.c.started_at)
    else:
        hour = func.date_trunc("hour", func.timezone("UTC", PASSES.c.started_at))
    rows = conn.execute(
        select(hour.label("hour"), func.coalesce(func.sum(PASSES.c.api_calls), 0))
        .where(PASSES.c.started_at >= since)
        .group_by(hour)
    )
    calls: dict[dt.datetime, int] = {}
    for start, total in rows:
        when = dt.datetime.fromisoformat(start) if isinstance(start, str) else start
        calls[when.replace(tzinfo=dt.UTC)] = int(total)
    return calls
