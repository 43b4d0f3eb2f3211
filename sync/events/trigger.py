"""From change events to pulls: one pull per mapping per burst, never one per event.

An event never writes a row: it asks for an incremental pull of its mapping, the one
path that writes mirrored rows. Requests coalesce:

- while the mapping's pull is *queued* (not started), a new event needs nothing more:
  that pull starts later and reads everything committed before it starts;
- while the mapping's pull *runs*, events collapse into one more pull, queued as soon
  as the running one releases its lock (it may have read its window before the change
  committed);
- otherwise the pull is queued at once.

The per-mapping locks and "queued" markers are the same ones the change check uses
(:mod:`sync.service.locks`), so the change check and the events never queue the same
mapping twice, under Celery (Redis) and in one process alike.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from sync.service.jobs import TRANSIENT_ERRORS
from sync.service.locks import LockProvider

log = logging.getLogger(__name__)

RECHECK = 0.05
"""Seconds between looks at a running mapping's lock while a pull waits behind it."""


class PullTrigger:
    """Coalesces pull requests per mapping and queues them when they can run.

    Args:
        locks: the per-mapping locks and queue markers.
        enqueue: queues one pull of a mapping (Celery task or in-process pool).
        enqueue_reconcile: queues a reconciliation (after a GAP_OVERFLOW).
        queue_ttl: how long a queue marker keeps others from queueing the mapping.
        monotonic: the clock of the dispatch loop.
    """

    def __init__(
        self,
        locks: LockProvider,
        enqueue: Callable[[str], None],
        *,
        enqueue_reconcile: Callable[[], None] | None = None,
        queue_ttl: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.locks = locks
        self.enqueue = enqueue
        self.enqueue_reconcile = enqueue_reconcile
        self.queue_ttl = queue_ttl
        self._monotonic = monotonic
        self._mutex = threading.Lock()
        self._wanted: dict[str, float] = {}  # mapping -> when first asked (monotonic)
        self._reconcile = False
        self._wake = threading.Event()
        self.queued = 0
        self.coalesced = 0

    def request(self, names: Iterable[str], *, reconcile: bool = False) -> None:
        """Ask for a pull of each of ``names`` (and a reconciliation when ``reconcile``)."""
        now = self._monotonic()
        with self._mutex:
            for name in names:
                if name in self._wanted:
                    self.coalesced += 1
                else:
                    self._wanted[name] = now
            self._reconcile = self._reconcile or reconcile
        self._wake.set()

    def pending(self) -> list[str]:
        """Mappings asked for and not yet queued (their pull is still running)."""
        with self._mutex:
            return sorted(self._wanted)

    def dispatch(self) -> list[str]:
        """Queue every wanted pull that can be queued now; returns the mappings queued.

        A mapping whose lock is held stays wanted (one more pull after the running one);
        one already queued is satisfied by that queued pull.
        """
        with self._mutex:
            names = list(self._wanted)
            reconcile, self._reconcile = self._reconcile, False
        queued: list[str] = []
        for name in names:
            try:
                if self.locks.holder(name) is not None:
                    continue
                if self.locks.mark_queued(name, self.queue_ttl):
                    try:
                        self.enqueue(name)
                    except BaseException:
                        self.locks.clear_queued(name)
                        raise
                    queued.append(name)
            except TRANSIENT_ERRORS as exc:
                log.warning("pull of %s not queued yet: %s", name, exc)
                continue
            with self._mutex:
                self._wanted.pop(name, None)
        if reconcile and self.enqueue_reconcile is not None:
            try:
                self.enqueue_reconcile()
            except TRANSIENT_ERRORS as exc:
                log.warning("reconciliation not queued yet: %s", exc)
                with self._mutex:
                    self._reconcile = True
        if queued:
            self.queued += len(queued)
            log.debug("events queued pulls: %s", ", ".join(queued))
        return queued

    def run(self, stop: threading.Event) -> None:
        """Dispatch until ``stop``: at once on a request, every :data:`RECHECK` s while waiting."""
        while not stop.is_set():
            self._wake.clear()
            self.dispatch()
            with self._mutex:
                waiting = bool(self._wanted) or self._reconcile
            self._wake.wait(timeout=RECHECK if waiting else 1.0)

    def start(self, stop: threading.Event) -> threading.Thread:
        """Run :meth:`run` on a daemon thread."""
        thread = threading.Thread(target=self.run, args=(stop,), name="event-trigger", daemon=True)
        thread.start()
        return thread

    def wake(self) -> None:
        """Make the dispatch loop look now (used on stop)."""
        self._wake.set()
