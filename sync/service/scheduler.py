"""The in-process scheduler: Celery beat and workers in one process, for `billing-sync run`.

Without ``BILLING_SYNC_BROKER_URL`` there is no Redis and no Celery; this module runs
the same jobs (sync/service/jobs.py) on the same schedule
(:func:`sync.service.jobs.schedule`): a timer thread submits the periodic jobs to a
small thread pool, the change check submits the pulls it queues to the same pool, and
failed jobs are retried with the same bounded backoff the Celery tasks use. Mapping locks
are threading locks (:class:`LocalLocks`).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sync.service import heartbeats, jobs

log = logging.getLogger(__name__)

MAINTENANCE_RETRIES = 3


class InProcessScheduler:
    """Runs the periodic jobs and the pulls they queue on threads of this process.

    Args:
        rt: the runtime the jobs use (its locks should be :class:`sync.service.locks.LocalLocks`).
        workers: threads running jobs (one change check plus pulls in parallel).
        monotonic: the scheduler's clock (seconds); tests pass a fake one.
        heartbeat: write this process's heartbeat to the database for ``status``.
    """

    def __init__(
        self,
        rt: jobs.Runtime,
        *,
        workers: int = 3,
        monotonic: Callable[[], float] = time.monotonic,
        heartbeat: bool = True,
    ) -> None:
        self.rt = rt
        self.entries = jobs.schedule(rt.settings)
        self._monotonic = monotonic
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sync-job")
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._mutex = threading.Lock()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._running: set[str] = set()
        self._again: set[str] = set()  # running jobs asked for once more
        self._thread: threading.Thread | None = None
        self._heartbeat = (
            heartbeats.HeartbeatWriter(
                heartbeats.db_sink(rt.ctx.engine),
                role="run",
                detail=self._detail,
                on_stop=heartbeats.db_withdraw(rt.ctx.engine),
            )
            if heartbeat
            else None
        )
        self.polls = 0
        self.pulls = 0
        self._push_requested = False

    def _detail(self) -> dict[str, Any]:
        with self._mutex:
            running = sorted(self._running)
        return {"running": running, "pull_interval": self.rt.settings.pull_interval}

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the timer thread (and the heartbeat); jobs start on the first tick."""
        if self._thread is not None:
            return
        self._stop.clear()
        now = self._monotonic()
        for entry in self.entries:
            # The change check runs at once; maintenance waits one period.
            first = now if entry.job is jobs.Job.POLL else now + entry.every
            self._at(first, self._periodic(entry))
        self._thread = threading.Thread(target=self._loop, name="sync-scheduler", daemon=True)
        self._thread.start()
        if self._heartbeat is not None:
            self._heartbeat.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop scheduling, wait up to ``timeout`` s for running jobs, stop the heartbeat."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None
        self._executor.shutdown(wait=True, cancel_futures=True)
        if self._heartbeat is not None:
            self._heartbeat.stop()

    def __enter__(self) -> InProcessScheduler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- timer ---------------------------------------------------------------------------

    def _at(self, when: float, action: Callable[[], None]) -> None:
        with self._mutex:
            heapq.heappush(self._timers, (when, next(self._seq), action))
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            now = self._monotonic()
            due: list[Callable[[], None]] = []
            with self._mutex:
                while self._timers and self._timers[0][0] <= now:
                    due.append(heapq.heappop(self._timers)[2])
                wait = self._timers[0][0] - now if self._timers else 1.0
            for action in due:
                action()
            self._wake.clear()
            self._wake.wait(timeout=max(0.01, min(wait, 1.0)))

    def _periodic(self, entry: jobs.ScheduleEntry) -> Callable[[], None]:
        def fire() -> None:
            if self._stop.is_set():
                return
            self._at(self._monotonic() + entry.every, fire)
            self._submit_once(entry.job.value, self._job(entry.job))

        return fire

    def _submit_once(self, key: str, fn: Callable[[], None], *, again: bool = False) -> None:
        """Submit ``fn`` unless the job ``key`` is still running (like a single beat).

        With ``again``, a request while ``key`` runs is not dropped: ``fn`` runs once more
        when the running one ends (however many requests came meanwhile).
        """
        with self._mutex:
            if key in self._running:
                if again:
                    self._again.add(key)
                return
            self._running.add(key)

        def run() -> None:
            try:
                fn()
            except Exception:  # a job's bug must not stop the schedule
                log.exception("job %s failed", key)
            finally:
                with self._mutex:
                    self._running.discard(key)
                    rerun = key in self._again
                    self._again.discard(key)
                if rerun:
                    self._submit_once(key, fn)

        if not self._stop.is_set():
            try:
                self._executor.submit(run)
            except RuntimeError:  # shut down meanwhile
                with self._mutex:
                    self._running.discard(key)
        else:
            with self._mutex:
                self._running.discard(key)

    # --- jobs ----------------------------------------------------------------------------

    def _job(self, job: jobs.Job) -> Callable[[], None]:
        if job is jobs.Job.POLL:
            return self._poll
        if job is jobs.Job.RECONCILE:
            return lambda: self._maintenance("reconcile", jobs.reconcile, 0)
        return self._push_job

    def trigger_push(self) -> None:
        """Push now (Accept in the portal): runs again after a pass already under way."""
        with self._mutex:
            self._push_requested = True
        self._submit_once("push", self._push_job)

    def _push_job(self) -> None:
        while True:
            with self._mutex:
                self._push_requested = False
            self._maintenance("push", lambda rt: jobs.push(rt, self.enqueue_pull), 0)
            with self._mutex:
                if not self._push_requested or self._stop.is_set():
                    return

    def _poll(self) -> None:
        report = jobs.poll(self.rt, self.enqueue_pull)
        if report.polled:
            self.polls += 1

    def enqueue_pull(self, name: str, attempt: int = 0) -> None:
        """Queue one pull of ``name`` (the change check's and the events' ``enqueue``).

        Asked while that mapping's pull job is still finishing, the pull runs once more
        afterwards: a change event may have committed after the running pass read.
        """
        self._submit_once(f"pull:{name}", lambda: self._pull(name, attempt), again=True)

    def enqueue_reconcile(self) -> None:
        """Queue a reconciliation now (after a GAP_OVERFLOW change event)."""
        self._submit_once(
            "reconcile", lambda: self._maintenance("reconcile", jobs.reconcile, 0), again=True
        )

    def _pull(self, name: str, attempt: int) -> None:
        try:
            result = jobs.pull(self.rt, name)
        except jobs.RETRYABLE_ERRORS as exc:
            if attempt >= jobs.MAX_RETRIES:
                log.error(
                    "pull of %s failed %d times; the next change check retries", name, attempt
                )
                return
            delay = jobs.retry_delay(attempt)
            log.warning("pull of %s failed (%s); retry in %.0f s", name, exc, delay)
            self.rt.locks.mark_queued(name, delay + self.rt.queue_marker_ttl())
            self._at(self._monotonic() + delay, lambda: self.enqueue_pull(name, attempt + 1))
            return
        if result is not None:
            self.pulls += 1

    def _maintenance(self, what: str, fn: Callable[[jobs.Runtime], Any], attempt: int) -> None:
        try:
            fn(self.rt)
        except jobs.TRANSIENT_ERRORS as exc:
            if attempt >= MAINTENANCE_RETRIES:
                log.error("%s failed %d times; the next scheduled run retries", what, attempt)
                return
            delay = jobs.retry_delay(attempt)
            log.warning("%s failed (%s); retry in %.0f s", what, exc, delay)
            self._at(
                self._monotonic() + delay,
                lambda: self._submit_once(what, lambda: self._maintenance(what, fn, attempt + 1)),
            )
