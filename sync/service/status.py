"""The background service at a glance: what ``billing-sync status`` adds about the workers.

Per mapping: its state (idle, pulling, paused, failing), the last pass, the lag (now minus
watermark), records read in the last hour and failing records. For the service: the
polling interval in effect and why (the API budget guard), whether the change check is
failing, and the heartbeats of the workers, beat and in-process runners.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from sync.db import repo
from sync.db.models import SyncPass
from sync.service import budget as budget_rules
from sync.service import heartbeats
from sync.service.budget_store import budget_policy, read_budget
from sync.service.listener_status import listener_status
from sync.service.listener_status import render as render_events
from sync.service.locks import RedisLocks, redis_client
from sync.settings import Settings

log = logging.getLogger(__name__)

FAILED_OUTCOMES = frozenset({"failed", "limit_exceeded", "interrupted"})


class MappingActivity(StrEnum):
    """What a mapping is doing now."""

    IDLE = "idle"
    PULLING = "pulling"
    PAUSED = "paused"
    FAILING = "failing"


@dataclass(frozen=True)
class MappingHealth:
    """One mapping's line of the status.

    Attributes:
        name: the mapping.
        state: idle, pulling, paused or failing.
        last_pass_at: when its last pass finished (or started, while it runs).
        last_outcome: how its last pass ended.
        lag_seconds: now minus its watermark (None before its first pass).
        records_last_hour: records read by passes of the last hour.
        record_errors: records that failed to convert and wait for a retry.
        last_error: the last pass's error.
        holder: who holds its lock (host:pid:token) while a pass runs.
    """

    name: str
    state: MappingActivity
    last_pass_at: dt.datetime | None
    last_outcome: str | None
    lag_seconds: float | None
    records_last_hour: int
    record_errors: int
    last_error: str | None
    holder: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state.value,
            "last_pass_at": self.last_pass_at.isoformat() if self.last_pass_at else None,
            "last_outcome": self.last_outcome,
            "lag_seconds": None if self.lag_seconds is None else round(self.lag_seconds, 1),
            "records_last_hour": self.records_last_hour,
            "record_errors": self.record_errors,
            "last_error": self.last_error,
            "holder": self.holder,
        }


@dataclass(frozen=True)
class ServiceHealth:
    """Everything ``status`` shows about the background service."""

    mappings: list[MappingHealth]
    decision: budget_rules.Decision
    budget: budget_rules.BudgetState
    workers: list[heartbeats.Heartbeat]
    broker: str | None
    broker_error: str | None
    now: dt.datetime
    events: dict[str, Any] | None = None  # the events listener (sync.service.listener_status)

    @property
    def check_failing(self) -> bool:
        """True while the change check fails."""
        return self.budget.failures > 0

    def to_dict(self) -> dict[str, Any]:
        failing_since = self.budget.failing_since
        return {
            "mappings": {m.name: m.to_dict() for m in self.mappings},
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


def _redacted(url: str) -> str:
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"


def _running_passes(engine: Engine) -> dict[str, dt.datetime]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(SyncPass.mapping, SyncPass.started_at).where(SyncPass.outcome == "running")
        ).all()
    return {row.mapping: row.started_at for row in rows}


def collect(
    settings: Settings,
    engine: Engine,
    mapping_names: Sequence[str],
    *,
    now: dt.datetime,
    client: redis.Redis | None = None,
) -> ServiceHealth:
    """Gather the service's health from the database (and Redis, with a broker).

    Args:
        settings: the settings (broker, interval, budget share, lock ttl).
        engine: the billing database (schema current).
        mapping_names: the mappings to report, in order.
        now: the current time.
        client: a Redis client (default: one for ``settings.broker_url``, if set).
    """
    with engine.connect() as conn:
        states = repo.all_states(conn)
        records = repo.records_since(conn, now - dt.timedelta(hours=1))
        errors = repo.record_error_counts(conn)
    running = _running_passes(engine)
    budget_state = read_budget(engine)
    decision = budget_rules.decide(budget_state, budget_policy(settings, len(mapping_names)), now)

    holders: dict[str, str | None] = {}
    workers: list[heartbeats.Heartbeat] = []
    broker_error = None
    own_client = False
    if settings.broker_url and client is None:
        client = redis_client(settings.broker_url)
        own_client = True
    if client is not None:
        try:
            locks = RedisLocks(client, prefix=settings.redis_prefix, ttl=settings.lock_ttl)
            holders = {name: locks.holder(name) for name in mapping_names}
            workers = heartbeats.read_redis(client, settings.redis_prefix)
        except redis.RedisError as exc:
            broker_error = f"{type(exc).__name__}: {exc}"
        finally:
            if own_client:
                client.close()
    try:
        workers += heartbeats.read_db(engine, now)
    except SQLAlchemyError as exc:
        log.warning("heartbeats in the database unreadable: %s", exc)
    run_alive = any(hb.role == "run" for hb in workers)

    health: list[MappingHealth] = []
    for name in mapping_names:
        state = states.get(name) or repo.MappingState(name)
        holder = holders.get(name)
        started = running.get(name)
        # Without a broker there is no lock to look at: a pass marked running counts
        # while an in-process runner is alive and the pass is younger than a task may be.
        running_now = holder is not None or (
            started is not None
            and client is None
            and run_alive
            and (now - started).total_seconds() < settings.task_time_limit
        )
        if state.paused:
            activity = MappingActivity.PAUSED
        elif running_now:
            activity = MappingActivity.PULLING
        elif (state.last_outcome in FAILED_OUTCOMES) or budget_state.failures:
            activity = MappingActivity.FAILING
        else:
            activity = MappingActivity.IDLE
        health.append(
            MappingHealth(
                name=name,
                state=activity,
                last_pass_at=state.last_pass_finished_at or state.last_pass_started_at,
                last_outcome=state.last_outcome,
                lag_seconds=(now - state.watermark).total_seconds() if state.watermark else None,
                records_last_hour=records.get(name, 0),
                record_errors=errors.get(name, 0),
                last_error=state.last_error,
                holder=holder,
            )
        )
    return ServiceHealth(
        events=_events(settings, engine, now),
        mappings=health,
        decision=decision,
        budget=budget_state,
        workers=workers,
        broker=_redacted(settings.broker_url) if settings.broker_url else None,
        broker_error=broker_error,
        now=now,
    )


def _events(settings: Settings, engine: Engine, now: dt.datetime) -> dict[str, Any]:
    """The events listener's state, and what it means for polling."""
    if not settings.events_enabled:
        return {"state": "off", "healthy": False, "detail": "BILLING_SYNC_EVENTS=off"}

    doc = listener_status(engine, now)
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
    """The service block of ``status`` as lines, from :meth:`ServiceHealth.to_dict`."""
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
