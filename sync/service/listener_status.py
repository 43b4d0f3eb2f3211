"""The listener's state, as every process reads it: the change check, status, /readyz.

The active listener writes one ``service_state`` document (:data:`STATUS_KEY`) when its
state changes and every :data:`HEARTBEAT` seconds. A document older than :data:`STALE`
seconds means the listener is gone (killed, host lost): every mapping is back on polling
at the configured interval.

:func:`listener_status` is the one reader; it returns a plain dict so that
``billing-sync status``, ``/readyz`` and the Prometheus metrics can all render it.
"""

from __future__ import annotations

import datetime as dt
import json
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from sync.db import service_state
from sync.db.models import ServiceState

STATUS_KEY = "events:listener"
SAFETY_KEY = "events:safety"
HEARTBEAT = 5.0
"""Seconds between the listener's status writes while nothing changes."""
STALE = 20.0
"""Seconds after which a silent listener counts as down."""


class ListenerState(StrEnum):
    """What the listener is doing."""

    STARTING = "starting"
    LISTENING = "listening"  # subscribed; events trigger pulls
    RECONNECTING = "reconnecting"  # the stream failed; backing off, mappings poll
    UNAVAILABLE = "unavailable"  # the org has no Streaming API (404 on /cometd)
    EXHAUSTED = "exhausted"  # the daily event delivery allocation is spent
    STANDBY = "standby"  # another listener of the org is active
    STOPPED = "stopped"
    DOWN = "down"  # no fresh status: not running (read side only)


class ChannelState(StrEnum):
    """One channel's state."""

    LISTENING = "listening"
    REFUSED = "refused"  # the org refuses it (CDC not selected, no View All Data)
    SUSPENDED = "suspended"  # unsubscribed by the allocation guard
    PENDING = "pending"  # not subscribed yet


def listener_status(engine: Engine, now: dt.datetime) -> dict[str, Any]:
    """The listener's state as last written, marked ``down`` when stale or missing.

    Returns:
        ``{"state", "healthy", "age_seconds", "last_event_age_seconds", "channels":
        {channel: {"state", "mappings", "replay_id", "error", "events"}}, "deliveries":
        {"used", "max", "remaining"} | None, "listening_mappings": [...], "polling_mappings":
        [...], ...}``; ``healthy`` is true only for a fresh ``listening`` state.
    """
    try:
        with engine.connect() as conn:
            row = conn.execute(
                select(ServiceState.value, ServiceState.updated_at).where(
                    ServiceState.key == STATUS_KEY
                )
            ).first()
    except SQLAlchemyError:
        row = None
    if row is None:
        return status_of(None, now)
    return status_of((dict(json.loads(row.value)), row.updated_at), now)


def status_of(
    stored: tuple[dict[str, Any], dt.datetime] | None, now: dt.datetime
) -> dict[str, Any]:
    """:func:`listener_status` from the stored document (``STATUS_KEY``) and its time.

    Args:
        stored: the document and when it was written (None: no listener has run).
        now: the current time.
    """
    if stored is None:
        return {
            "state": ListenerState.DOWN.value,
            "healthy": False,
            "age_seconds": None,
            "detail": "no listener has run",
            "channels": {},
            "listening_mappings": [],
            "last_event_age_seconds": None,
            "deliveries": None,
        }
    doc: dict[str, Any] = dict(stored[0])
    age = max(0.0, (now - stored[1]).total_seconds())
    state = str(doc.get("state") or ListenerState.DOWN.value)
    if age > STALE and state != ListenerState.STOPPED.value:
        doc["detail"] = f"no word from the listener for {age:.0f} s (was {state})"
        state = ListenerState.DOWN.value
    doc["state"] = state
    doc["age_seconds"] = round(age, 1)
    healthy = state == ListenerState.LISTENING.value
    doc["healthy"] = healthy
    channels = doc.get("channels") or {}
    doc["listening_mappings"] = (
        sorted(
            {
                m
                for c in channels.values()
                if c.get("state") == ChannelState.LISTENING.value
                for m in c.get("mappings", [])
            }
        )
        if healthy
        else []
    )
    last = doc.get("last_event_at")
    doc["last_event_age_seconds"] = (
        round(max(0.0, now.timestamp() - float(last)), 1) if last is not None else None
    )
    return doc


def listening_mappings(engine: Engine, now: dt.datetime) -> set[str]:
    """Mappings whose changes a healthy listener reports now (empty when it is not healthy)."""
    return set(listener_status(engine, now)["listening_mappings"])


def write_status(engine: Engine, doc: dict[str, Any], now: dt.datetime) -> None:
    """Store the active listener's status document."""
    service_state.write(engine, STATUS_KEY, doc, now)


def safety_due(engine: Engine, now: dt.datetime, interval: float) -> bool:
    """True when the listening mappings' safety check is due (every ``interval`` s)."""
    doc = service_state.read(engine, SAFETY_KEY) or {}
    last = doc.get("last_at")
    return last is None or now.timestamp() - float(last) >= interval - min(0.5, interval / 10)


def record_safety_check(engine: Engine, now: dt.datetime) -> None:
    """Note that the listening mappings were checked now."""
    service_state.write(engine, SAFETY_KEY, {"last_at": now.timestamp()}, now)


def summary(doc: dict[str, Any]) -> dict[str, Any]:
    """The compact form /readyz and metrics show: state, event age, replay ids, deliveries.

    Keys: ``state``, ``healthy``, ``last_event_age_seconds``, ``replay_ids`` (channel to
    id), ``channels`` (channel to state), ``listening_mappings``, ``deliveries``
    (``{"used", "max", "remaining"}`` or None), ``events`` (handled since start).
    """
    channels = doc.get("channels") or {}
    deliveries = doc.get("deliveries")
    return {
        "state": doc.get("state"),
        "healthy": bool(doc.get("healthy")),
        "last_event_age_seconds": doc.get("last_event_age_seconds"),
        "replay_ids": {ch: info.get("replay_id") for ch, info in sorted(channels.items())},
        "channels": {ch: info.get("state") for ch, info in sorted(channels.items())},
        "listening_mappings": list(doc.get("listening_mappings") or []),
        "deliveries": (
            {k: deliveries.get(k) for k in ("used", "max", "remaining")} if deliveries else None
        ),
        "events": int(doc.get("events") or 0),
    }


def metrics_snapshot(engine: Engine, now: dt.datetime) -> dict[str, Any]:
    """What the monitoring endpoint reads about the listener (see :func:`summary`)."""
    return summary(listener_status(engine, now))


def render(doc: dict[str, Any]) -> list[str]:
    """Lines for ``billing-sync status``."""
    state = doc.get("state", "down")
    lines = [f"events listener: {state}" + (f" ({doc['detail']})" if doc.get("detail") else "")]
    last = doc.get("last_event_age_seconds")
    deliveries = doc.get("deliveries")
    parts = [f"last event {last:.0f} s ago" if last is not None else "no event yet"]
    if deliveries and deliveries.get("max"):
        parts.append(f"deliveries {deliveries.get('used', 0):,} of {deliveries['max']:,} per 24 h")
    lines.append("  " + "; ".join(parts))
    for channel, info in sorted((doc.get("channels") or {}).items()):
        extra = f" replay {info['replay_id']}" if info.get("replay_id") is not None else ""
        error = f" - {info['error']}" if info.get("error") else ""
        mappings = ", ".join(info.get("mappings", []))
        lines.append(f"  {channel} [{info.get('state')}] -> {mappings}{extra}{error}")
    return lines
