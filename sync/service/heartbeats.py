"""Heartbeats: each background process says, every few seconds, that it is alive.

Celery workers and beat write ``{prefix}:heartbeat:{role}:{host}:{pid}`` in Redis with
an expiry of three periods, so a dead process disappears by itself. ``billing-sync run``
(no broker) writes the same document to the database's ``service_state``.
``billing-sync status`` shows them all with their age.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from sync.clock import utc_now
from sync.db import service_state

log = logging.getLogger(__name__)

PERIOD = 5.0
"""Seconds between beats."""


@dataclass(frozen=True)
class Heartbeat:
    """One process's last beat.

    Attributes:
        role: "worker", "beat" or "run".
        hostname: the machine (or container) it runs on.
        pid: its process id.
        started_at: when it started.
        seen_at: when it last beat.
        detail: anything the process wants to show (queues, concurrency, ...).
    """

    role: str
    hostname: str
    pid: int
    started_at: dt.datetime
    seen_at: dt.datetime
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ident(self) -> str:
        return f"{self.role}:{self.hostname}:{self.pid}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "hostname": self.hostname,
            "pid": self.pid,
            "started_at": self.started_at.isoformat(),
            "seen_at": self.seen_at.isoformat(),
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Heartbeat:
        return cls(
            role=str(data["role"]),
            hostname=str(data["hostname"]),
            pid=int(data["pid"]),
            started_at=dt.datetime.fromisoformat(data["started_at"]),
            seen_at=dt.datetime.fromisoformat(data["seen_at"]),
            detail=dict(data.get("detail") or {}),
        )

    def age(self, now: dt.datetime) -> float:
        """Seconds since the last beat."""
        return max(0.0, (now - self.seen_at).total_seconds())


def heartbeat_key(prefix: str, role: str, hostname: str, pid: int) -> str:
    """The Redis key of one process's heartbeat."""
    return f"{prefix}:heartbeat:{role}:{hostname}:{pid}"


class HeartbeatWriter:
    """A daemon thread that beats every ``period`` seconds until stopped."""

    def __init__(
        self,
        sink: Callable[[Heartbeat], None],
        *,
        role: str,
        period: float = PERIOD,
        detail: Callable[[], dict[str, Any]] | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
        on_stop: Callable[[Heartbeat], None] | None = None,
    ) -> None:
        self.role = role
        self.period = period
        self._sink = sink
        self._detail = detail or dict
        self._clock = clock
        self._on_stop = on_stop
        self._started_at = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def current(self) -> Heartbeat:
        """The beat this process would write now."""
        return Heartbeat(
            role=self.role,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            started_at=self._started_at,
            seen_at=self._clock(),
            detail=self._detail(),
        )

    def beat(self) -> None:
        """Write one beat; a failure is logged, never raised (the next beat retries)."""
        try:
            self._sink(self.current())
        except (redis.RedisError, SQLAlchemyError, OSError) as exc:
            log.warning("heartbeat of %s not written: %s", self.role, exc)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"heartbeat-{self.role}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        self.beat()
        while not self._stop.wait(self.period):
            self.beat()

    def stop(self) -> None:
        """Stop beating and withdraw the beat, so status stops showing this process."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.period + 5)
            self._thread = None
        if self._on_stop is not None:
            try:
                self._on_stop(self.current())
            except (redis.RedisError, SQLAlchemyError, OSError) as exc:
                log.warning("heartbeat of %s not withdrawn: %s", self.role, exc)


def redis_sink(
    client: redis.Redis, prefix: str, period: float = PERIOD
) -> Callable[[Heartbeat], None]:
    """A sink writing beats to Redis with an expiry of three periods."""

    def sink(hb: Heartbeat) -> None:
        key = heartbeat_key(prefix, hb.role, hb.hostname, hb.pid)
        client.set(key, json.dumps(hb.to_dict()), px=int(period * 3000))

    return sink


def redis_withdraw(client: redis.Redis, prefix: str) -> Callable[[Heartbeat], None]:
    """Deletes a process's beat from Redis."""

    def withdraw(hb: Heartbeat) -> None:
        client.delete(heartbeat_key(prefix, hb.role, hb.hostname, hb.pid))

    return withdraw


def read_redis(client: redis.Redis, prefix: str) -> list[Heartbeat]:
    """Every live heartbeat in Redis under ``prefix``."""
    beats: list[Heartbeat] = []
    keys = list(client.scan_iter(match=f"{prefix}:heartbeat:*", count=200))
    if not keys:
        return beats
    for raw in client.mget(keys):
        if raw is None:
            continue
        try:
            beats.append(Heartbeat.from_dict(json.loads(raw)))
        except (ValueError, KeyError, TypeError):
            continue
    return sorted(beats, key=lambda b: (b.role, b.hostname, b.pid))


def db_key(hb: Heartbeat) -> str:
    """The ``service_state`` key of a heartbeat."""
    return f"{service_state.HEARTBEAT_PREFIX}{hb.ident}"


def db_sink(engine: Engine) -> Callable[[Heartbeat], None]:
    """A sink writing beats to the database (for the in-process runner)."""

    def sink(hb: Heartbeat) -> None:
        service_state.write(engine, db_key(hb), hb.to_dict(), hb.seen_at)

    return sink


def db_withdraw(engine: Engine) -> Callable[[Heartbeat], None]:
    """Deletes a process's beat from the database."""

    def withdraw(hb: Heartbeat) -> None:
        service_state.remove(engine, db_key(hb))

    return withdraw


def read_db(engine: Engine, now: dt.datetime, *, max_age: float = PERIOD * 3) -> list[Heartbeat]:
    """Heartbeats in the database younger than ``max_age`` seconds."""
    beats = []
    for doc, _ in service_state.read_prefix(engine, service_state.HEARTBEAT_PREFIX).values():
        try:
            hb = Heartbeat.from_dict(doc)
        except (ValueError, KeyError, TypeError):
            continue
        if hb.age(now) <= max_age:
            beats.append(hb)
    return sorted(beats, key=lambda b: (b.role, b.hostname, b.pid))
