"""Everything ``/metrics`` and the ops dashboard show, read from the database in one go.

:func:`take` runs a handful of aggregate queries (sync state, record counts, record
errors, stored counters, the outbox, the budget guard's state) and, with a broker, reads
the workers' heartbeats from Redis. Nothing here writes.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata

import redis
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from sync.db import repo, service_state
from sync.db.repo import monitoring as monitoring_repo
from sync.db.repo.metrics import read_counters
from sync.mapping.spec import MappingSet
from sync.monitoring import counters
from sync.service import budget as budget_rules
from sync.service import heartbeats
from sync.service.jobs import budget_policy, read_budget
from sync.settings import Settings

log = logging.getLogger(__name__)

STALE_BEAT = 3600.0
"""Seconds a database heartbeat stays visible after it stopped (its age keeps growing)."""
ALIVE_AGE = heartbeats.PERIOD * 3
"""A process whose last beat is younger than this counts as alive."""
ROLES: tuple[str, ...] = ("worker", "beat", "run")


def version() -> str:
    """The installed billing-sync version."""
    try:
        return metadata.version("billing-sync")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class MappingView:
    """One mapping as monitoring sees it.

    Attributes:
        name: the mapping.
        table: its local table.
        paused: whether its polling is paused.
        watermark: the newest CRM change mirrored (None before the first record).
        lag_seconds: now minus the watermark (None without one).
        live: live rows in its table.
        deleted: tombstones in its table.
        record_errors: records that failed to convert and wait for a retry.
        last_success: when it was last known to be in step with the CRM (a pass that
            stored its window, or a change check that found nothing new).
        last_pass_at: when its last pass finished (or started, while it runs).
        last_outcome: how its last pass ended.
        last_error: the last pass's error.
    """

    name: str
    table: str
    paused: bool
    watermark: dt.datetime | None
    lag_seconds: float | None
    live: int
    deleted: int
    record_errors: int
    last_success: dt.datetime | None
    last_pass_at: dt.datetime | None
    last_outcome: str | None
    last_error: str | None

    @property
    def state(self) -> str:
        """paused, failing, never pulled or ok."""
        if self.paused:
            return "paused"
        if self.last_outcome in ("failed", "limit_exceeded", "interrupted"):
            return "failing"
        if self.last_pass_at is None and self.last_success is None:
            return "never pulled"
        return "ok"


@dataclass(frozen=True)
class Snapshot:
    """The state of the deployment at one moment."""

    now: dt.datetime
    version: str
    mappings: list[MappingView]
    counters: dict[tuple[str, str], float]
    outbox: dict[str, int]
    oldest_pending: dt.datetime | None
    push: monitoring_repo.HistogramData
    budget: budget_rules.BudgetState
    decision: budget_rules.Decision
    api_usage: tuple[int, int] | None
    workers: list[heartbeats.Heartbeat]
    broker_error: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def usage_ratio(self) -> float:
        """Org usage / org limit (NaN until the CRM reported it)."""
        if self.api_usage is None or self.api_usage[1] <= 0:
            return math.nan
        return self.api_usage[0] / self.api_usage[1]

    @property
    def oldest_pending_seconds(self) -> float:
        """Age of the oldest change set not applied yet (0 when none waits)."""
        if self.oldest_pending is None:
            return 0.0
        return max(0.0, (self.now - self.oldest_pending).total_seconds())

    def alive(self, role: str) -> int:
        """Processes of ``role`` that beat within the last :data:`ALIVE_AGE` seconds."""
        return sum(1 for hb in self.workers if hb.role == role and hb.age(self.now) < ALIVE_AGE)


def _usage(engine: Engine, state: budget_rules.BudgetState) -> tuple[int, int] | None:
    doc = service_state.read(engine, service_state.API_USAGE_KEY)
    if doc and doc.get("max"):
        return int(doc["used"]), int(doc["max"])
    if state.org_max:
        return int(state.org_used or 0), int(state.org_max)
    return None


def take(
    settings: Settings,
    engine: Engine,
    mappings: MappingSet,
    *,
    now: dt.datetime,
    redis_client: redis.Redis | None = None,
) -> Snapshot:
    """Read the deployment's state.

    Args:
        settings: the settings (interval, budget share).
        engine: the billing database.
        mappings: the deployment's mappings (their names and tables).
        now: the current time.
        redis_client: where the Celery workers' heartbeats are (None: no broker).
    """
    names: Sequence[str] = mappings.names
    with engine.connect() as conn:
        states = repo.all_states(conn)
        errors = repo.record_error_counts(conn)
        rows = monitoring_repo.record_counts(conn, [mappings[n].table for n in names])
        stored = read_counters(conn)
        outbox = monitoring_repo.outbox_counts(conn)
        oldest = monitoring_repo.oldest_pending(conn)
        push = monitoring_repo.push_durations(conn, counters.PUSH_BUCKETS)
    budget_state = read_budget(engine)
    decision = budget_rules.decide(budget_state, budget_policy(settings, len(names)), now)
    workers: list[heartbeats.Heartbeat] = []
    broker_error = None
    if redis_client is not None:
        try:
            workers = heartbeats.read_redis(redis_client, settings.redis_prefix)
        except redis.RedisError as exc:
            broker_error = f"{type(exc).__name__}: {exc}"
    try:
        workers += heartbeats.read_db(engine, now, max_age=STALE_BEAT)
    except SQLAlchemyError as exc:
        log.warning("heartbeats in the database unreadable: %s", exc)
    views = []
    for name in names:
        state = states.get(name) or repo.MappingState(name)
        table = mappings[name].table
        live, deleted = rows.get(table, (0, 0))
        success = stored.get((counters.LAST_SUCCESS, counters.label_string({"mapping": name})))
        views.append(
            MappingView(
                name=name,
                table=table,
                paused=state.paused,
                watermark=state.watermark,
                lag_seconds=(
                    max(0.0, (now - state.watermark).total_seconds()) if state.watermark else None
                ),
                live=live,
                deleted=deleted,
                record_errors=errors.get(name, 0),
                last_success=dt.datetime.fromtimestamp(success, dt.UTC) if success else None,
                last_pass_at=state.last_pass_finished_at or state.last_pass_started_at,
                last_outcome=state.last_outcome,
                last_error=state.last_error,
            )
        )
    return Snapshot(
        now=now,
        version=version(),
        mappings=views,
        counters=stored,
        outbox=outbox,
        oldest_pending=oldest,
        push=push,
        budget=budget_state,
        decision=decision,
        api_usage=_usage(engine, budget_state),
        workers=workers,
        broker_error=broker_error,
    )
