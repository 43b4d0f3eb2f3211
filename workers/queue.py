"""Celery as the service's task queue (:class:`sync.service.queue.TaskQueue`).

The library queues work through the protocol only; this is the one place that turns
"pull this mapping", "reconcile", "push now" into Celery messages, by task name, so the
sender needs none of the tasks' code.
"""

from __future__ import annotations

import logging

from celery import Celery

from sync.settings import Settings
from workers.app import (
    MAINTENANCE_QUEUE,
    PULL_QUEUE,
    PULL_TASK,
    PUSH_QUEUE,
    PUSH_TASK,
    RECONCILE_TASK,
    make_app,
)

log = logging.getLogger(__name__)


class CeleryQueue:
    """Sends the service's tasks to the broker of ``app``."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def enqueue_pull(self, mapping: str) -> None:
        """Queue one ``pull_mapping`` task."""
        self.app.send_task(PULL_TASK, args=[mapping], queue=PULL_QUEUE)

    def enqueue_reconcile(self) -> None:
        """Queue one ``reconcile`` task."""
        self.app.send_task(RECONCILE_TASK, queue=MAINTENANCE_QUEUE)

    def enqueue_push(self) -> None:
        """Queue one push pass now (the portal's Accept); the periodic push is the safety net.

        A broker that cannot be reached is logged, not raised: the accepted set waits in
        the outbox and the next scheduled push sends it.
        """
        try:
            self.app.send_task(PUSH_TASK, queue=PUSH_QUEUE, ignore_result=True)
        except Exception as exc:  # noqa: BLE001 - any broker failure: the sweep takes over
            log.warning("could not queue the push (%s); the periodic push sends it", exc)


def celery_queue(settings: Settings) -> CeleryQueue:
    """The task queue on ``settings``' broker."""
    return CeleryQueue(make_app(settings))
