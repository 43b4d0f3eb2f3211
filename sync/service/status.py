"""The one status read model: what ``status``, ``/readyz``, the ops page and ``/metrics`` show.

:class:`StatusReader` reads the deployment's state once (a handful of aggregate queries,
the workers' heartbeats, the listener's document) into a :class:`Status`; every surface
renders that object and none computes a word of its own. The words, defined here once:

- **lag** of a mapping: now minus its watermark, the ``SystemModstamp`` of the newest
  CRM change mirrored (None before the first record). A quiet object lags as long as
  nobody edits it; **last in step** (:attr:`MappingStatus.last_success`) says when the
  mapping was last confirmed current (a pass that stored its window, or a change check
  that found nothing new).
- **failing**: a mapping is failing when its last pass ended ``failed``,
  ``limit_exceeded`` or ``interrupted``, or while the change check fails (it cannot tell
  whether anything changed). The change check is failing while its consecutive failures
  are more than zero.
- **state** of a mapping, the first that applies: ``paused`` (polling switched off),
  ``pulling`` (a pass holds its lock, or, without a broker, a pass marked running while
  the in-process runner is alive), ``failing``, ``never pulled`` (no pass ever ended and
  it was never in step), ``idle``.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import metadata
from typing import Any

import redis
from sqlalchemy import Connection, Engine, select

from sync.changes.outbox import PAUSE_KEY, paused_until
from sync.db import repo, service_state
from sync.db.models import SyncPass
from sync.db.repo import monitoring as monitoring_repo
from sync.mapping.spec import MappingSet
from sync.service import budget as budget_rules
from sync.service import heartbeats
from sync.service.budget_store import budget_policy
from sync.service.listener_status import STATUS_KEY as LISTENER_KEY
from sync.service.listener_status import listener_status
from sync.service.listener_status import render as render_events
from sync.service.listener_status import status_of as listener_status_of
from sync.service.locks import RedisLocks
from sync.settings import Settings
from sync.telemetry import counters

log = logging.getLogger(__name__)

FAILED_OUTCOMES = frozenset({"failed", "limit_exceeded", "interrupted"})
"""How a pass ends when its mapping counts as failing."""
STALE_BEAT = 3600.0
"""Seconds a database heartbeat stays visible after it stopped (its age keeps growing)."""
ALIVE_AGE = heartbeats.PERIOD * 3
"""A process whose last beat is younger than this counts as alive."""
ROLES: tuple[str, ...] = ("worker", "beat", "run")
RECENT_RECORD_ERRORS = 10


@functools.cache
def version() -> str:
    """The installed billing-sync version (read once: reading the metadata costs ms)."""
    try:
        return metadata.version("billing-sync")
    except metadata.PackageNotFoundError:
        return "unknown"


class MappingActivity(StrEnum):
    """What a mapping is doing now (see the module docstring for each word)."""

    IDLE = "idle"
    PULLING = "pulling"
    PAUSED = "paused"
    FAILING = "failing"
    NEVER_PULLED = "never pulled"


def lag_seconds(now: dt.datetime, watermark: dt.datetime | None) -> float | None:
    """The lag: now minus the watermark, never negative (None without a watermark)."""
    if watermark is None:
        return None
    return max(0.0, (now - watermark).total_seconds())


def is_failing(last_outcome: str | None, check_failures: int) -> bool:
    """Failing: the last pass failed, or the change check is failing."""
    return last_outcome in FAILED_OUTCOMES or check_failures > 0


def activity(
    state: repo.MappingState,
    *,
    running: bool,
    check_failures: int,
    last_success: dt.datetime | None,
) -> MappingActivity:
    """A mapping's state, the first that applies (paused, pulling, failing, ...)."""
    if state.paused:
        return MappingActivity.PAUSED
    if running:
        return MappingActivity.PULLING
    if is_failing(state.last_outcome, check_failures):
        return MappingActivity.FAILING
    if state.last_pass_finished_at is None and last_success is None:
        return MappingActivity.NEVER_PULLED
    return MappingActivity.IDLE


@dataclass(frozen=True)
class MappingStatus:
    """One mapping's line of the status.

    Attributes:
        name: the mapping.
        crm_object: the CRM object it mirrors.
        table: its local table.
        state: see :class:`MappingActivity`.
        paused: whether its polling is paused.
        watermark: the newest CRM change mirrored (None before the first record).
        lag_seconds: see :func:`lag_seconds`.
        last_success: when it was last known to be in step with the CRM.
        last_pass_started_at: when its last pass started.
        last_pass_finished_at: when its last pass finished.
        last_outcome: how its last pass ended.
        last_error: the last pass's error.
        record_errors: records that failed to convert and wait for a retry.
        records_last_hour: records read by passes of the last hour.
        live: live rows in its table.
        deleted: tombstones in its table.
        holder: who holds its lock (host:pid:token) while a pass runs.
        last_load: how its last pass read its window (REST or a Bulk API job).
    """

    name: str
    crm_object: str
    table: str
    state: MappingActivity
    paused: bool
    watermark: dt.datetime | None
    lag_seconds: float | None
    last_success: dt.datetime | None
    last_pass_started_at: dt.datetime | None
    last_pass_finished_at: dt.datetime | None
    last_outcome: str | None
    last_error: str | None
    record_errors: int
    records_last_hour: int
    live: int
    deleted: int
    holder: str | None = None
    last_load: dict[str, Any] | None = None

    @property
    def last_pass_at(self) -> dt.datetime | None:
        """When its last pass finished (or started, while it runs)."""
        return self.last_pass_finished_at or self.last_pass_started_at

    def to_dict(self) -> dict[str, Any]:
        """The mapping's item of ``billing-sync status --json``."""
        return {
            "mapping": self.name,
            "object": self.crm_object,
            "table": self.table,
            "state": self.state.value,
            "paused": self.paused,
            "watermark": _iso(self.watermark),
            "lag_seconds": None if self.lag_seconds is None else round(self.lag_seconds, 1),
            "last_success": _iso(self.last_success),
            "last_pass_started_at": _iso(self.last_pass_started_at),
            "last_pass_finished_at": _iso(self.last_pass_finished_at),
            "last_outcome": self.last_outcome,
            "last_error": self.last_error,
            "record_errors": self.record_errors,
            "records": self.live,
            "tombstones": self.deleted,
            "records_last_hour": self.records_last_hour,
            "last_load": self.last_load,
            "pulled_by": self.holder,
        }


@dataclass(frozen=True)
class Status:
    """The state of the deployment at one moment, as every surface shows it."""

    now: dt.datetime
    version: str
    mappings: list[MappingStatus]
    counters: dict[tuple[str, str], float]
    outbox: dict[str, int]
    oldest_pending: dt.datetime | None
    push_paused_until: dt.datetime | None
    push: monitoring_repo.HistogramData
    budget: budget_rules.BudgetState
    decision: budget_rules.Decision
    api_usage: tuple[int, int] | None
    api_usage_doc: dict[str, Any] | None
    workers: list[heartbeats.Heartbeat]
    broker: str | None
    broker_error: str | None
    events: dict[str, Any] | None
    recent_record_errors: list[repo.RecordErrorRow] = field(default_factory=list)

    @property
    def check_failing(self) -> bool:
        """True while the change check fails."""
        return self.budget.failures > 0

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

    def service_dict(self) -> dict[str, Any]:
        """The ``service`` block of ``billing-sync status --json``."""
        failing_since = self.budget.failing_since
        return {
            "polling": {
                **self.decision.to_dict(),
                "check_failing": self.check_failing,
                "check_failures": self.budget.failures,
                "check_failing_since": (
                    dt.datetime.fromtimestamp(failing_since, dt.UTC).isoformat()
                    if failing_since
                    else None
                ),
                "check_error": self.budget.last_error,
                "org_api_usage": (
                    {"used": self.budget.org_used, "max": self.budget.org_max}
                    if self.budget.org_max
                    else None
                ),
            },
            "workers": [
                {**hb.to_dict(), "age_seconds": round(hb.age(self.now), 1)} for hb in self.workers
            ],
            "broker": self.broker,
            "broker_error": self.broker_error,
            "events": self.events,
        }

    def to_dict(self) -> dict[str, Any]:
        """``billing-sync status --json``."""
        oldest = self.oldest_pending
        return {
            "now": self.now.isoformat(),
            "service": self.service_dict(),
            "mappings": [m.to_dict() for m in self.mappings],
            "outbox": {
                "counts": dict(self.outbox),
                "oldest_pending_seconds": (
                    (self.now - oldest).total_seconds() if oldest is not None else None
                ),
                "paused_until": _iso(self.push_paused_until),
            },
            "api_usage": self.api_usage_doc,
            "recent_record_errors": [
                {
                    "mapping": e.mapping,
                    "sfid": e.sfid,
                    "reason": e.reason,
                    "first_seen": e.first_seen.isoformat(),
                    "last_seen": e.last_seen.isoformat(),
                    "attempts": e.attempts,
                }
                for e in self.recent_record_errors
            ],
        }


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _usage(doc: dict[str, Any], state: budget_rules.BudgetState) -> tuple[int, int] | None:
    if doc and doc.get("max"):
        return int(doc["used"]), int(doc["max"])
    if state.org_max:
        return int(state.org_used or 0), int(state.org_max)
    return None


def _redacted(url: str) -> str:
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"


class StatusReader:
    """Reads :class:`Status`, re-reading the push latencies only when they changed.

    A mirrored table's live rows and tombstones are not counted: the database keeps them
    in ``row_counts`` as every write happens (see :class:`sync.db.models.RowCount`), and
    they arrive with the other small aggregates, so no read (the first included) costs
    time in proportion to the rows. The push latencies of every applied change set do;
    they are kept between reads under a cheap fingerprint, the number of applied change
    sets and their latest ``updated_at``. A reader kept by a web process (``/metrics``,
    the ops page, ``/readyz``) profits; ``billing-sync status`` reads once.
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
            settings: the settings (interval, budget share, broker, Redis prefix).
            engine: the billing database.
            mappings: the deployment's mappings (their names, objects and tables).
            pending: this process's buffer; its tallies not flushed yet are added to the
                stored ones, so the reading process's own counts are never late.
        """
        self.settings = settings
        self.engine = engine
        self.mappings = mappings
        self.pending = pending
        self._push: tuple[tuple[object, ...], monitoring_repo.HistogramData] | None = None
        self._lock = threading.Lock()

    def read(self, *, now: dt.datetime, redis_client: redis.Redis | None = None) -> Status:
        """Read the deployment's state.

        Args:
            now: the current time.
            redis_client: the broker, where the Celery workers' heartbeats and the
                mappings' locks are (None: no broker).
        """
        with self._lock:
            return self._read(now, redis_client)

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

    def _row_counts(
        self, conn: Connection, kept: dict[str, tuple[int, int]]
    ) -> dict[str, tuple[int, int]]:
        """Each mapping's (live, deleted) by its table, counting only a table not kept."""
        counts: dict[str, tuple[int, int]] = {}
        for name in self.mappings.names:
            table = self.mappings[name].table
            if table not in kept:
                # A table whose migration gave it no counts: right, if slow.
                log.warning("%s: no kept row counts; counting the rows", table)
                kept[table] = repo.row_counts(conn, repo.mirrored_table(table))
            counts[name] = kept[table]
        return counts

    def _broker(
        self, redis_client: redis.Redis | None, names: Sequence[str]
    ) -> tuple[dict[str, str | None], list[heartbeats.Heartbeat], str | None]:
        if redis_client is None:
            return {}, [], None
        settings = self.settings
        try:
            locks = RedisLocks(redis_client, prefix=settings.redis_prefix, ttl=settings.lock_ttl)
            holders = {name: locks.holder(name) for name in names}
            return holders, heartbeats.read_redis(redis_client, settings.redis_prefix), None
        except redis.RedisError as exc:
            return {}, [], f"{type(exc).__name__}: {exc}"

    def _read(self, now: dt.datetime, redis_client: redis.Redis | None) -> Status:
        settings, engine, mappings = self.settings, self.engine, self.mappings
        names: Sequence[str] = mappings.names
        with engine.connect() as conn:
            states = repo.all_states(conn)
            aggregates, pending_usage = self._aggregates(conn)
            row_counts = self._row_counts(conn, aggregates.rows)
            outbox = aggregates.outbox
            push_print = (outbox.counts["applied"], outbox.last_update["applied"])
            if self._push is None or self._push[0] != push_print:
                self._push = (
                    push_print,
                    monitoring_repo.push_durations(conn, counters.PUSH_BUCKETS),
                )
            documents = monitoring_repo.service_documents(
                conn,
                [service_state.BUDGET_KEY, service_state.API_USAGE_KEY, PAUSE_KEY, LISTENER_KEY],
                service_state.HEARTBEAT_PREFIX,
            )
            records = repo.records_since(conn, now - dt.timedelta(hours=1))
            recent_errors = repo.record_errors(conn, limit=RECENT_RECORD_ERRORS)
            running = {
                row.mapping: row.started_at
                for row in conn.execute(
                    select(SyncPass.mapping, SyncPass.started_at).where(
                        SyncPass.outcome == "running"
                    )
                )
            }
        budget_state = budget_rules.BudgetState.from_dict(
            documents.get(service_state.BUDGET_KEY, ({}, now))[0]
        )
        decision = budget_rules.decide(budget_state, budget_policy(settings, len(names)), now)
        holders, workers, broker_error = self._broker(redis_client, names)
        for key, (doc, _) in documents.items():
            if not key.startswith(service_state.HEARTBEAT_PREFIX):
                continue
            try:
                beat = heartbeats.Heartbeat.from_dict(doc)
            except (ValueError, KeyError, TypeError):
                continue
            if beat.age(now) <= STALE_BEAT:
                workers.append(beat)
        run_alive = any(hb.role == "run" and hb.age(now) < ALIVE_AGE for hb in workers)
        stored = aggregates.counters
        views = []
        for name in names:
            mapping = mappings[name]
            state = states.get(name) or repo.MappingState(name)
            live, deleted = row_counts[name]
            success = stored.get((counters.LAST_SUCCESS, counters.label_string({"mapping": name})))
            last_success = dt.datetime.fromtimestamp(success, dt.UTC) if success else None
            holder = holders.get(name)
            started = running.get(name)
            # Without a broker there is no lock to look at: a pass marked running counts
            # while an in-process runner is alive and the pass is younger than a task may be.
            running_now = holder is not None or (
                started is not None
                and redis_client is None
                and run_alive
                and (now - started).total_seconds() < settings.task_time_limit
            )
            views.append(
                MappingStatus(
                    name=name,
                    crm_object=mapping.crm_object,
                    table=mapping.table,
                    state=activity(
                        state,
                        running=running_now,
                        check_failures=budget_state.failures,
                        last_success=last_success,
                    ),
                    paused=state.paused,
                    watermark=state.watermark,
                    lag_seconds=lag_seconds(now, state.watermark),
                    last_success=last_success,
                    last_pass_started_at=state.last_pass_started_at,
                    last_pass_finished_at=state.last_pass_finished_at,
                    last_outcome=state.last_outcome,
                    last_error=state.last_error,
                    record_errors=aggregates.record_errors.get(name, 0),
                    records_last_hour=records.get(name, 0),
                    live=live,
                    deleted=deleted,
                    holder=holder,
                    last_load=state.last_load.to_json() if state.last_load else None,
                )
            )
        usage_doc = documents.get(service_state.API_USAGE_KEY, ({}, now))[0] or None
        return Status(
            now=now,
            version=version(),
            mappings=views,
            counters=stored,
            outbox=outbox.counts,
            oldest_pending=aggregates.oldest_pending,
            push_paused_until=paused_until(documents.get(PAUSE_KEY, (None, now))[0], now),
            push=self._push[1],
            budget=budget_state,
            decision=decision,
            api_usage=pending_usage or _usage(usage_doc or {}, budget_state),
            api_usage_doc=usage_doc,
            workers=workers,
            broker=_redacted(settings.broker_url) if settings.broker_url else None,
            broker_error=broker_error,
            events=_events(settings, documents.get(LISTENER_KEY), now),
            recent_record_errors=recent_errors,
        )


def _events(
    settings: Settings, stored: tuple[dict[str, Any], dt.datetime] | None, now: dt.datetime
) -> dict[str, Any]:
    """The events listener's state (from its stored document), and what it means for polling."""
    return _events_as(settings, lambda: listener_status_of(stored, now))


def read_events(settings: Settings, engine: Engine, now: dt.datetime) -> dict[str, Any]:
    """:attr:`Status.events` alone, by the same rules: what ``/readyz`` shows.

    One ``service_state`` row instead of the whole read, for a probe that runs every few
    seconds on every web process.
    """
    return _events_as(settings, lambda: listener_status(engine, now))


def _events_as(settings: Settings, read: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    if not settings.events_enabled:
        return {"state": "off", "healthy": False, "detail": "BILLING_SYNC_EVENTS=off"}
    doc = read()
    doc["safety_interval"] = settings.safety_interval
    return doc


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def render(doc: dict[str, Any]) -> list[str]:
    """The service block of ``status`` as lines, from :meth:`Status.service_dict`."""
    polling = doc["polling"]
    lines = [
        f"polling: every {polling['interval']:.0f} s ({polling['limiter']}): {polling['reason']}"
    ]
    if polling.get("budget") is not None:
        lines.append(
            f"api budget: {polling['used_24h']:,} of {polling['budget']:,} calls used in 24 h; "
            f"~{polling['projected_per_day']:,}/day at this interval; "
            f"{polling['cost_per_poll']:.1f} calls per poll"
        )
    if polling.get("check_failing"):
        since = (polling.get("check_failing_since") or "?")[11:19]
        lines.append(
            f"change check: FAILING since {since} UTC ({polling['check_failures']} in a row): "
            f"{polling['check_error']}"
        )
    if doc.get("broker"):
        problem = f" ({doc['broker_error']})" if doc.get("broker_error") else ""
        lines.append(f"broker: {doc['broker']}{problem}")
    workers = doc.get("workers") or []
    for hb in workers:
        lines.append(
            f"{hb['role']}: {hb['hostname']} pid {hb['pid']}, "
            f"last heartbeat {_age(hb['age_seconds'])} ago"
        )
    if not workers:
        lines.append("workers: none alive (no heartbeat)")
    events = doc.get("events")
    if events:
        lines.extend(render_events(events))
        if events.get("healthy"):
            lines.append(
                f"  safety net: listening mappings checked every "
                f"{events.get('safety_interval', 300):.0f} s; the others as configured"
            )
    return lines
