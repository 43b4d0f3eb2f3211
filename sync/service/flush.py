"""Moving a process's tallies into the database, every few seconds and on demand.

Every process that talks to the CRM or serves the portal runs a :class:`Flusher`
(``billing-sync run``, Celery workers, the one-shot commands flush once at the end).
``/metrics`` adds its own process's pending tallies to what it reads (without writing),
so what the web process itself did is never late; other processes' tallies are at most
one period old.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from sync.clock import utc_now
from sync.db import service_state
from sync.db.repo.metrics import add_counters, raise_gauges
from sync.telemetry.counters import BUFFER, CounterBuffer

log = logging.getLogger(__name__)

PERIOD = 5.0
"""Seconds between flushes."""


def flush(
    engine: Engine, *, buffer: CounterBuffer = BUFFER, now: dt.datetime | None = None
) -> bool:
    """Write what ``buffer`` holds to the database in one transaction.

    Returns:
        True when everything was written (or there was nothing); False when the
        database refused, in which case the tallies are back in the buffer for the next
        attempt.
    """
    now = now or utc_now()
    with buffer.flush_lock:
        return _flush(engine, buffer, now)


def _flush(engine: Engine, buffer: CounterBuffer, now: dt.datetime) -> bool:
    drained = buffer.drain()
    usage = buffer.take_usage()
    if not drained and usage is None:
        return True
    try:
        with engine.begin() as conn:
            add_counters(conn, drained.adds, now=now)
            raise_gauges(conn, drained.maxima, now=now)
        if usage is not None:
            service_state.write(
                engine,
                service_state.API_USAGE_KEY,
                {"used": usage[0], "max": usage[1], "seen_at": now.isoformat()},
                now,
            )
    except (SQLAlchemyError, service_state.StateConflictError) as exc:
        log.warning("metrics not written to the database yet: %s", exc)
        buffer.restore(drained)
        if usage is not None:
            buffer.note_api_usage(*usage)
        return False
    return True


class Flusher:
    """A daemon thread that flushes :data:`BUFFER` every ``period`` seconds until stopped."""

    def __init__(
        self,
        engine: Engine,
        *,
        period: float = PERIOD,
        buffer: CounterBuffer = BUFFER,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.engine = engine
        self.period = period
        self.buffer = buffer
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="metrics-flush", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            flush(self.engine, buffer=self.buffer, now=self.clock())

    def stop(self) -> None:
        """Stop the thread and flush what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.period + 5)
            self._thread = None
        flush(self.engine, buffer=self.buffer, now=self.clock())
