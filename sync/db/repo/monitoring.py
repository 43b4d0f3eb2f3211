"""SQL that monitoring reads at scrape time, and the outbox actions of the ops dashboard.

Every query here is an aggregate over an indexed column or a small table, so one scrape
costs a few milliseconds however many rows are mirrored and passes recorded.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Connection,
    Float,
    String,
    Table,
    case,
    cast,
    func,
    literal,
    null,
    or_,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.sql.elements import ColumnElement

from sync.db import states
from sync.db.models import (
    AuditEntry,
    ChangeSet,
    MetricCounter,
    RecordError,
    RowCount,
    ServiceState,
    SyncPass,
)
from sync.db.states import ChangeState
from sync.db.types import UTCDateTime

CHANGE_SETS: Table = ChangeSet.__table__  # type: ignore[assignment]
AUDIT: Table = AuditEntry.__table__  # type: ignore[assignment]
PASSES: Table = SyncPass.__table__  # type: ignore[assignment]
STATE: Table = ServiceState.__table__  # type: ignore[assignment]

OUTBOX_STATES: tuple[str, ...] = tuple(s.value for s in ChangeState)
"""Every state a change set can be in, in the order of its life."""
PENDING_STATES: tuple[str, ...] = tuple(s.value for s in states.PENDING_STATES)
PROBLEM_STATES: tuple[str, ...] = tuple(s.value for s in states.PROBLEM_STATES)


# --- the outbox -------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboxCounts:
    """Change sets per state (every state, zeros included) and the latest update per state.

    ``last_update`` lets a reader tell whether the rows of a state changed since it last
    looked, without reading them.
    """

    counts: dict[str, int]
    last_update: dict[str, dt.datetime | None]


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
    """Seconds from accepted to applied of every applied change set, as a histogram.

    Each row's duration is computed once and sorted into the first bucket that holds it
    (one CASE, grouped), then the counts are made cumulative here.
    """
    seconds = _seconds_between(conn, CHANGE_SETS.c.accepted_at, CHANGE_SETS.c.finished_at)
    inner = (
        select(seconds.label("s"))
        .where(
            CHANGE_SETS.c.state == ChangeState.APPLIED.value, CHANGE_SETS.c.finished_at.is_not(None)
        )
        .subquery()
    )
    slot = case(*[(inner.c.s <= bound, i) for i, bound in enumerate(bounds)], else_=len(bounds))
    rows = conn.execute(
        select(slot.label("slot"), func.count(), func.sum(cast(inner.c.s, Float))).group_by(slot)
    ).all()
    per_slot = [0] * (len(bounds) + 1)
    total = 0.0
    for index, n, seconds_sum in rows:
        per_slot[int(index)] = int(n)
        total += float(seconds_sum or 0.0)
    buckets: list[tuple[float, int]] = []
    running = 0
    for index, bound in enumerate([*bounds, float("inf")]):
        running += per_slot[index]
        buckets.append((float(bound), running))
    return HistogramData(buckets=buckets, sum=total, count=running)


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


# --- service state -----------------------------------------------------------------------


def service_documents(
    conn: Connection, keys: Sequence[str], prefix: str
) -> dict[str, tuple[dict[str, Any], dt.datetime]]:
    """The ``service_state`` documents under ``keys`` or starting with ``prefix``, at once."""
    rows = conn.execute(
        select(STATE.c.key, STATE.c.value, STATE.c.updated_at).where(
            or_(STATE.c.key.in_(list(keys)), STATE.c.key.startswith(prefix, autoescape=True))
        )
    )
    return {row.key: (dict(json.loads(row.value)), row.updated_at) for row in rows}


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


# --- everything small a scrape needs, in one round trip ------------------------------


@dataclass(frozen=True)
class ScrapeAggregates:
    """The small aggregates of a scrape, read by :func:`scrape_aggregates`.

    Attributes:
        record_errors: record errors per mapping.
        outbox: change sets per state.
        oldest_pending: the oldest acceptance not applied yet.
        counters: every stored counter.
        rows: (live rows, tombstones) per mirrored table, as ``row_counts`` keeps them
            (a table without a row there is missing).
    """

    record_errors: dict[str, int]
    outbox: OutboxCounts
    oldest_pending: dt.datetime | None
    counters: dict[tuple[str, str], float]
    rows: dict[str, tuple[int, int]] = field(default_factory=dict)


def scrape_aggregates(conn: Connection) -> ScrapeAggregates:
    """The small aggregates of a scrape as one ``UNION ALL`` (one round trip, not four).

    Record errors per mapping, change sets per state with their latest update, the
    oldest pending acceptance, every stored counter and the mirrored tables' row counts
    (kept by triggers, so reading them costs the same whatever the tables hold).
    """
    errors = RecordError.__table__
    counters_table = MetricCounter.__table__
    row_counts = RowCount.__table__
    no_text = cast(null(), String)
    no_time = type_coerce(null(), UTCDateTime())
    outbox_part = select(
        literal("outbox").label("kind"),
        CHANGE_SETS.c.state.label("k1"),
        no_text.label("k2"),
        cast(func.count(), Float).label("n"),
        type_coerce(func.max(CHANGE_SETS.c.updated_at), UTCDateTime()).label("ts"),
    ).group_by(CHANGE_SETS.c.state)
    pending_part = select(
        literal("pending"),
        no_text,
        no_text,
        cast(literal(0), Float),
        type_coerce(func.min(CHANGE_SETS.c.accepted_at), UTCDateTime()),
    ).where(CHANGE_SETS.c.state.in_(PENDING_STATES))
    errors_part = select(
        literal("error"), errors.c.mapping, no_text, cast(func.count(), Float), no_time
    ).group_by(errors.c.mapping)
    counters_part = select(
        literal("counter"),
        counters_table.c.name,
        counters_table.c.labels,
        counters_table.c.value,
        no_time,
    )
    live_part = select(
        literal("live"), row_counts.c.table_name, no_text, cast(row_counts.c.live, Float), no_time
    )
    deleted_part = select(
        literal("deleted"),
        row_counts.c.table_name,
        no_text,
        cast(row_counts.c.deleted, Float),
        no_time,
    )
    record_errors: dict[str, int] = {}
    counts = dict.fromkeys(OUTBOX_STATES, 0)
    last: dict[str, dt.datetime | None] = dict.fromkeys(OUTBOX_STATES)
    oldest: dt.datetime | None = None
    stored: dict[tuple[str, str], float] = {}
    live: dict[str, int] = {}
    deleted: dict[str, int] = {}
    query = union_all(
        outbox_part, pending_part, errors_part, counters_part, live_part, deleted_part
    )
    for kind, k1, k2, n, ts in conn.execute(query):
        if kind == "counter":
            stored[(k1, k2)] = float(n)
        elif kind == "error":
            record_errors[k1] = int(n)
        elif kind == "outbox":
            counts[k1] = int(n)
            last[k1] = _aware(ts)
        elif kind == "live":
            live[k1] = int(n)
        elif kind == "deleted":
            deleted[k1] = int(n)
        else:
            oldest = _aware(ts)
    rows = {table: (n, deleted.get(table, 0)) for table, n in live.items()}
    return ScrapeAggregates(record_errors, OutboxCounts(counts, last), oldest, stored, rows)


def _aware(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
