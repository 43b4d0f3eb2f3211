"""What one worker process keeps between tasks: its runtime and its counter flusher.

A pool process builds its :class:`~sync.service.jobs.Runtime` on first use, after the
fork (connections must not cross one), and flushes its CRM call tallies to the database
every few seconds. The Celery signals in workers/app.py reset and stop it; the tasks in
workers/tasks.py read it.
"""

from __future__ import annotations

import threading
import time

from sync.service import jobs
from sync.service.flush import Flusher
from sync.service.locks import RedisLocks, redis_client
from sync.settings import Settings

STARTUP_BACKOFF_MAX = 60.0


class StartupError(RuntimeError):
    """The runtime could not be built (CRM or database unreachable); retried later."""


class ProcessRuntime:
    """The runtime of this process, built once, with backoff while the CRM is down.

    Args:
        settings: the deployment's settings (the broker must be configured).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._runtime: jobs.Runtime | None = None
        self._lock = threading.Lock()
        self._failures = 0
        self._retry_at = 0.0
        self._flusher: Flusher | None = None

    def runtime(self) -> jobs.Runtime:
        """This process's runtime, built on first use.

        Building it logs in to the CRM and validates the mappings. When that fails (the
        CRM is down), the next attempts wait with exponential backoff instead of logging
        in on every tick of the schedule.

        Raises:
            StartupError: building failed now or recently; the message says why.
        """
        # The context imports the CRM door and the mappings: only a worker that runs a
        # task pays for them, not `celery --help` or beat.
        from sync.context import SyncContext

        with self._lock:
            if self._runtime is not None:
                return self._runtime
            now = time.monotonic()
            if now < self._retry_at:
                raise StartupError(f"not started; next attempt in {self._retry_at - now:.0f} s")
            settings = self.settings
            if not settings.broker_url:
                raise StartupError("BILLING_SYNC_BROKER_URL is not set")
            try:
                ctx = SyncContext.from_settings(settings)
            except jobs.TRANSIENT_ERRORS as exc:
                self._failures += 1
                self._retry_at = now + min(STARTUP_BACKOFF_MAX, 2.0**self._failures)
                raise StartupError(f"cannot start: {type(exc).__name__}: {exc}") from exc
            self._failures = 0
            locks = RedisLocks(
                redis_client(settings.broker_url),
                prefix=settings.redis_prefix,
                ttl=settings.lock_ttl,
            )
            self._runtime = jobs.Runtime(settings=settings, ctx=ctx, locks=locks)
            if self._flusher is None:
                self._flusher = Flusher(ctx.engine)
                self._flusher.start()
            return self._runtime

    def stop_flusher(self) -> None:
        """Stop flushing (the tallies left are written once more)."""
        if self._flusher is not None:
            self._flusher.stop()
            self._flusher = None

    def reset(self) -> None:
        """Forget the runtime (a forked pool process must not reuse its parent's)."""
        with self._lock:
            self._runtime = None
            self._flusher = None  # a forked child has no thread of its parent's
            self._failures = 0
            self._retry_at = 0.0
