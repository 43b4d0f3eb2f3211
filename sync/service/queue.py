"""The task queue the service hands work to when a broker runs it.

billing-sync's library never imports Celery: the Celery binding lives in workers/ and is
handed in from the top (``billing-sync``'s entry point, workers/cli.py) as a
:class:`TaskQueueFactory`. Code here and below only sees this protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from sync.settings import Settings


class TaskQueue(Protocol):
    """Where pulls, reconciles and pushes are queued for the workers."""

    def enqueue_pull(self, mapping: str) -> None:
        """Queue one pull pass of ``mapping``."""

    def enqueue_reconcile(self) -> None:
        """Queue one reconcile pass."""

    def enqueue_push(self) -> None:
        """Queue one push pass now; a broker failure is logged, never raised."""


TaskQueueFactory = Callable[[Settings], TaskQueue]


class NoTaskQueueError(RuntimeError):
    """A command that queues work on the broker was started without a task queue binding."""

    def __init__(self) -> None:
        super().__init__(
            "BILLING_SYNC_BROKER_URL is set, but this entry point has no task queue: "
            "start the service with the `billing-sync` command (workers/cli.py binds Celery)"
        )
