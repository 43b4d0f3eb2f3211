"""Everything ``/metrics`` and the ops dashboard show, read from the database in one go.

:func:`take` runs a handful of aggregate queries (sync state, record counts, record
errors, stored counters, the outbox, the budget guard's state) and, with a broker, reads
the workers' heartbeats from Redis. Nothing here writes.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import redis
from sqlalchemy import Connection, Engine

from sync.db import repo, service_state
from sync.db.repo import monitoring as monitoring_repo
from sync.mapping.spec import MappingSet
from sync.service import budget as budget_rules
from sync.service import heartbeats
from sync.service.budget_store import budget_policy
from sync.settings import Settings
from sync.telemetry import counters

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


def _usage(doc: dict[str, Any], state: budget_rules.BudgetState) -> tuple[int, int] | None:
    if doc and doc.get("max"):
        return int(doc["used"]), int(doc["max"])
    if state.org_max:
        return int(state.org_used or 0), int(state.org_max)
    return None


RECOUNT_AFTER = 300.0
"""Seconds after which a table's row counts are read again even if nothing says it changed
(one such table per scrape)."""


@dataclass
class _Counted:
    fingerprint: tuple[object, ...]
    at: dt.datetime
    value: tuple[int, int]


class SnapshotReader:
    """Reads snapshots, re-reading the expensive aggregates only when their rows changed.

    Counting a mirrored table's rows, and the push latencies of every applied change
    set, cost time in proportion to the rows. Both are kept between scrapes with a cheap
    fingerprint: for a table, its mapping's ``sync_state.updated_at`` (every page a pass
    stores moves it, in the same transaction, and so does the pass's end), and an age of
    at most :data:`RECOUNT_AFTER` seconds, refreshed one table per scrape (for writes
    that leave the state alone, such as a reconcile's tombstones); for the push
    latencies, the number of applied change sets and their latest ``updated_at``.
    """

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        mappings: MappingSet,
        *,
        pending: counters.CounterBuffer | None = None,
    ) -> None:
        """Prepare to read.

        Args:
            settings: the settings (interval, budget share, Redis prefix).
            engine: the billing database.
            mappings: the deployment's mappings (their names and tables).
            pending: this process's buffer; its tallies not flushed yet are added to the
                stored ones, so the reading process's own counts are never late.
        """
        self.settings = settings
        self.engine = engine
        self.mappings = mappings
        self.pending = pending
        self._counts: dict[str, _Counted] = {}
        self._push: tuple[tuple[object, ...], monitoring_repo.HistogramData] | None = None
        self._lock = threading.Lock()

    def take(self, *, now: dt.datetime, redis_client: redis.Redis | None = None) -> Snapshot:
        """Read the deployment's state.

        Args:
            now: the current time.
            redis_client: where the Celery workers' heartbeats are (None: no broker).
        """
        with self._lock:
            return self._take(now, redis_client)

    def _aggregates(
        self, conn: Connection
    ) -> tuple[monitoring_repo.ScrapeAggregates, tuple[int, int] | None]:
        if self.pending is None:
            return monitoring_repo.scrape_aggregates(conn), None
        with self.pending.flush_lock:
            aggregates = monitoring_repo.scrape_aggregates(conn)
            waiting, usage = self.pending.peek()
        stored = aggregates.counters
        for key, amount in waiting.adds.items():
            stored[key] = stored.get(key, 0.0) + amount
        for key, value in waiting.maxima.items():
            stored[key] = max(stored.get(key, value), value)
        return aggregates, usage

    def _take(self, now: dt.datetime, redis_client: redis.Redis | None) -> Snapshot:
        settings, engine, mappings = self.settings, self.engine, self.mappings
        names: Sequence[str] = mappings.names
        tables = {n: mappings[n].table for n in names}
        with engine.connect() as conn:
            states = repo.all_states(conn)
            aggregates, pending_usage = self._aggregates(conn)
            errors = aggregates.record_errors
            stored = aggregates.counters
            outbox = aggregates.outbox
            oldest = aggregates.oldest_pending
            fingerprints = {
                name: (getattr(states.get(name), "updated_at", None),) for name in tables
            }
            stale = [
                name
                for name, print_ in fingerprints.items()
                if (cached := self._counts.get(name)) is None or cached.fingerprint != print_
            ]
            # Counts only too old (no pass since) are refreshed one table per scrape,
            # the oldest first, so that no scrape pays for recounting everything.
            aged = sorted(
                (c.at, name)
                for name, c in self._counts.items()
                if name in tables
                and name not in stale
                and abs((now - c.at).total_seconds()) > RECOUNT_AFTER
            )
            if aged:
                stale.append(aged[0][1])
            if stale:
                fresh = monitoring_repo.record_counts(conn, [tables[n] for n in stale])
                for name in stale:
                    self._counts[name] = _Counted(
                        fingerprints[name], now, fresh.get(tables[name], (0, 0))
                    )
            push_print = (outbox.counts["applied"], outbox.last_update["applied"])
            if self._push is None or self._push[0] != push_print:
                self._push = (
                    push_print,
                    monitoring_repo.push_durations(conn, counters.PUSH_BUCKETS),
                )
            push = self._push[1]
            documents = monitoring_repo.service_documents(
                conn,
                [service_state.BUDGET_KEY, service_state.API_USAGE_KEY],
                service_state.HEARTBEAT_PREFIX,
            )
        budget_state = budget_rules.BudgetState.from_dict(
            documents.get(service_state.BUDGET_KEY, ({}, now))[0]
        )
        decision = budget_rules.decide(budget_state, budget_policy(settings, len(names)), now)
        workers: list[heartbeats.Heartbeat] = []
        broker_error = None
        if redis_client is not None:
            try:
                workers = heartbeats.read_redis(redis_client, settings.redis_prefix)
            except redis.RedisError as exc:
                broker_error = f"{type(exc).__name__}: {exc}"
        for key, (doc, _) in documents.items():
            if not key.startswith(service_state.HEARTBEAT_PREFIX):
                continue
            try:
                beat = heartbeats.Heartbeat.from_dict(doc)
            except (ValueError, KeyError, TypeError):
                continue
            if beat.age(now) <= STALE_BEAT:
                workers.append(beat)
        views = []
        for name in names:
            state = states.get(name) or repo.MappingState(name)
            live, deleted = self._counts[name].value
            success = stored.get((counters.LAST_SUCCESS, counters.label_string({"mapping": name})))
            views.append(
                MappingView(
                    name=name,
                    table=tables[name],
                    paused=state.paused,
                    watermark=state.watermark,
                    lag_seconds=(
                        max(0.0, (now - state.watermark).total_seconds())
                        if state.watermark
                        else None
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
            outbox=outbox.counts,
            oldest_pending=oldest,
            push=push,
            budget=budget_state,
            decision=decision,
            api_usage=pending_usage
            or _usage(documents.get(service_state.API_USAGE_KEY, ({}, now))[0], budget_state),
            workers=workers,
            broker_error=broker_error,
        )


def take(
    settings: Settings,
    engine: Engine,
    mappings: MappingSet,
    *,
    now: dt.datetime,
    redis_client: redis.Redis | None = None,
) -> Snapshot:
    """One snapshot, everything read afresh (see :class:`SnapshotReader` for repeated use)."""
    return SnapshotReader(settings, engine, mappings).take(now=now, redis_client=redis_client)
