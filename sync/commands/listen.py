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
from sync.crm.errors import CrmError
from sync.mapping.spec import MappingError
from sync.settings import Settings, SettingsError

log = logging.getLogger(__name__)


def _err(text: str) -> None:
    sys.stderr.write(f"billing-sync: {text}\n")


def listen(settings: Settings, *, stop: threading.Event | None = None) -> int:
    """Listen until ``stop`` (or SIGINT/SIGTERM); returns the exit code."""
    from sync.context import SyncContext
    from sync.events.listener import Listener
    from sync.events.runner import (
        ListenerThreads,
        celery_enqueuers,
        free_if_holder_dead,
        holder_name,
        listener_lock_key,
    )
    from sync.events.trigger import PullTrigger
    from sync.service.jobs import Runtime
    from sync.service.locks import RedisLock, RedisLocks, redis_client

    assert settings.broker_url
    ctx = SyncContext.from_settings(settings)
    threads = None
    try:
        client = redis_client(settings.broker_url)
        locks = RedisLocks(client, prefix=settings.redis_prefix, ttl=settings.lock_ttl)
        rt = Runtime(settings=settings, ctx=ctx, locks=locks)
        enqueue, enqueue_reconcile = celery_enqueuers(settings)
        trigger = PullTrigger(
            locks, enqueue, enqueue_reconcile=enqueue_reconcile, queue_ttl=rt.queue_marker_ttl()
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


def listen_command(args: argparse.Namespace, settings: Settings) -> int:
    """`billing-sync listen`."""
    if not settings.broker_url:
        _err(
            "`listen` queues pulls on Celery: set BILLING_SYNC_BROKER_URL. Without a broker, "
            "`billing-sync run` runs the listener on a thread of its own"
        )
        return 2
    if not settings.events_enabled:
        _err("events are switched off (BILLING_SYNC_EVENTS=off); nothing to listen to")
        return 2
    try:
        return listen(settings)
    except (SettingsError, MappingError) as exc:
        _err(str(exc))
        return 2
    except CrmError as exc:
        _err(f"the CRM could not be reached: {exc}")
        return 1
