"""Running the listener: on threads of `billing-sync run`, or alone for `billing-sync listen`.

In one process (no broker) the events queue their pulls on the in-process scheduler's
pool. With Celery, they send the ``pull_mapping`` (and ``reconcile``) tasks, and exactly
one listener per org is active: it holds the Redis lock ``{prefix}:listener`` (expiry
``BILLING_SYNC_LOCK_TTL``, renewed every third of it); a standby ``listen`` process takes
over within one expiry when the active one dies.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sync.events.listener import Listener, ListenerOptions, run_exclusive
from sync.events.trigger import PullTrigger

if TYPE_CHECKING:
    from sync.service.jobs import Runtime
    from sync.service.scheduler import InProcessScheduler
    from sync.settings import Settings

log = logging.getLogger(__name__)


def holder_name() -> str:
    """host:pid of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


class ListenerThreads:
    """A listener and its pull trigger, each on a daemon thread.

    Args:
        listener: the listener.
        lock: when given, the listener runs only while holding it (one per org).
    """

    def __init__(
        self,
        listener: Listener,
        *,
        lock: Any = None,
        before_acquire: Callable[[], None] | None = None,
    ) -> None:
        self.listener = listener
        self.lock = lock
        self.before_acquire = before_acquire
        self.stop_event = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start the trigger's dispatch loop and the listener."""
        self._threads.append(self.listener.trigger.start(self.stop_event))
        target: Callable[[], None] = (
            (
                lambda: run_exclusive(
                    self.listener,
                    self.stop_event,
                    self.lock,
                    before_acquire=self.before_acquire,
                )
            )
            if self.lock is not None
            else (lambda: self.listener.run(self.stop_event))
        )

        def run() -> None:
            try:
                target()
            except Exception:  # the service keeps polling when the listener breaks
                log.exception("events listener stopped by an error; polling takes over")

        thread = threading.Thread(target=run, name="events-listener", daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop both; waits at most ``timeout`` s per thread.

        The long poll held by the CRM (up to 110 s) is released by a disconnect
        (:meth:`Listener.close`). Should the CRM not answer it, the thread is not waited
        for: it is a daemon and ends with the process, and the listener lock is released
        here so a standby takes over at once.
        """
        self.stop_event.set()
        self.listener.trigger.wake()
        self.listener.close()
        for thread in self._threads:
            thread.join(timeout=timeout)
        if self.lock is not None and any(t.is_alive() for t in self._threads):
            self.lock.release()
        self._threads.clear()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the listener thread (after :meth:`stop`, or forever)."""
        for thread in self._threads[1:]:
            thread.join(timeout=timeout)


def in_process(
    rt: Runtime, scheduler: InProcessScheduler, *, options: ListenerOptions | None = None
) -> ListenerThreads | None:
    """The listener of `billing-sync run`: pulls go to ``scheduler``'s pool.

    Returns None when events are switched off (``BILLING_SYNC_EVENTS=off``).
    """
    if not rt.settings.events_enabled:
        return None
    trigger = PullTrigger(
        rt.locks,
        scheduler.enqueue_pull,
        enqueue_reconcile=scheduler.enqueue_reconcile,
        queue_ttl=rt.queue_marker_ttl(),
    )
    listener = Listener(rt.ctx, trigger, runtime=rt, options=options, holder=holder_name())
    return ListenerThreads(listener)


def pid_alive(pid: int) -> bool:
    """True when a process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def free_if_holder_dead(client: Any, key: str) -> bool:
    """Delete the listener lock ``key`` when its holder is a dead process of this host.

    A listener restarted on the same host (``kill -9`` and restart, a container restart)
    takes over at once instead of waiting for the dead holder's lock to expire. The key
    is deleted only if it still holds the same token (compare and delete in Redis).

    Returns:
        True when a dead holder's lock was removed.
    """
    raw = client.get(key)
    if raw is None:
        return False
    token = raw.decode() if isinstance(raw, bytes) else str(raw)
    host, _, rest = token.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid() or pid_alive(pid):
        return False
    script: Any = client.register_script(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
        "return 0"
    )
    removed = bool(script(keys=[key], args=[token]))
    if removed:
        log.warning("events listener: the lock holder (pid %d) is dead; taking over", pid)
    return removed


def listener_lock_key(settings: Settings) -> str:
    """The Redis key that makes one listener per org active."""
    return f"{settings.redis_prefix}:listener"
