"""`billing-sync listen`: the Change Data Capture listener alone, queueing pulls on Celery.

Run one or more (docker-compose's ``listener`` service); exactly one per org listens,
the others stand by on the Redis lock and take over when it dies.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading

from sync.commands.run import _wait
from sync.context import SyncContext
from sync.crm.errors import CrmError
from sync.events.listener import Listener
from sync.events.runner import ListenerThreads, free_if_holder_dead, holder_name, listener_lock_key
from sync.events.trigger import PullTrigger
from sync.mapping.spec import MappingError
from sync.service.jobs import Runtime
from sync.service.locks import RedisLock, RedisLocks, redis_client
from sync.service.queue import NoTaskQueueError, TaskQueue, TaskQueueFactory
from sync.settings import Settings, SettingsError

log = logging.getLogger(__name__)


def _err(text: str) -> None:
    sys.stderr.write(f"billing-sync: {text}\n")


def listen(
    settings: Settings, task_queue: TaskQueue, *, stop: threading.Event | None = None
) -> int:
    """Listen until ``stop`` (or SIGINT/SIGTERM); pulls go to ``task_queue``.

    Returns:
        The exit code.
    """
    assert settings.broker_url
    ctx = SyncContext.from_settings(settings)
    threads = None
    try:
        client = redis_client(settings.broker_url)
        locks = RedisLocks(client, prefix=settings.redis_prefix, ttl=settings.lock_ttl)
        rt = Runtime(settings=settings, ctx=ctx, locks=locks)
        trigger = PullTrigger(
            locks,
            task_queue.enqueue_pull,
            enqueue_reconcile=task_queue.enqueue_reconcile,
            queue_ttl=rt.queue_marker_ttl(),
        )
        listener = Listener(ctx, trigger, runtime=rt, holder=holder_name())
        key = listener_lock_key(settings)
        lock = RedisLock(client, "listener", key, ttl=settings.lock_ttl)

        def steal_from_dead() -> None:
            free_if_holder_dead(client, key)

        threads = ListenerThreads(listener, lock=lock, before_acquire=steal_from_dead)
        threads.start()
        sys.stdout.write(
            f"billing-sync listen: {len(listener.channels)} channel(s); pulls go to Celery. "
            "Ctrl-C stops.\n"
        )
        sys.stdout.flush()
        _wait(stop or threading.Event())
    finally:
        if threads is not None:
            threads.stop()
        ctx.close()
    return 0


def listen_command(
    args: argparse.Namespace, settings: Settings, *, task_queue: TaskQueueFactory | None = None
) -> int:
    """`billing-sync listen`: ``task_queue`` builds the broker's queue for the pulls."""
    if not settings.broker_url:
        _err(
            "`listen` queues pulls on Celery: set BILLING_SYNC_BROKER_URL. Without a broker, "
            "`billing-sync run` runs the listener on a thread of its own"
        )
        return 2
    if not settings.events_enabled:
        _err("events are switched off (BILLING_SYNC_EVENTS=off); nothing to listen to")
        return 2
    if task_queue is None:
        _err(str(NoTaskQueueError()))
        return 2
    try:
        return listen(settings, task_queue(settings))
    except (SettingsError, MappingError) as exc:
        _err(str(exc))
        return 2
    except CrmError as exc:
        _err(f"the CRM could not be reached: {exc}")
        return 1
