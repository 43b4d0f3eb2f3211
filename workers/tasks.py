"""Thin, named Celery tasks: each takes ids, calls one job in sync/service/jobs.py, returns nothing.

Every task is idempotent, so late acknowledgement and redelivery after a crash are safe.
Queues are assigned by name in workers/app.py's ``task_routes`` (Celery deprecates the
``queue`` task attribute): poll and pull_mapping on "pull", reconcile on
"maintenance", push on "push".
Retries are bounded (``max_retries``) with exponential backoff and jitter: an outage
must slow the service down, not turn into a storm of retries.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any

from celery import Task

from sync.service import jobs
from workers.app import (
    POLL_TASK,
    PULL_QUEUE,
    PULL_TASK,
    PUSH_TASK,
    RECONCILE_TASK,
    app,
    process,
)
from workers.process import StartupError

log = logging.getLogger(__name__)


def runtime() -> jobs.Runtime:
    """This process's runtime (see :class:`workers.process.ProcessRuntime`)."""
    return process.runtime()


def reset_runtime() -> None:
    """Forget this process's runtime (tests; a forked pool process)."""
    process.reset()


def _countdown(retries: int) -> float:
    # Full jitter on top of the exponential step, so workers retrying after the same
    # outage spread out.
    return jobs.retry_delay(retries) * (0.5 + random.random() / 2)


def _enqueue_pull(name: str) -> None:
    pull_mapping.apply_async(args=[name], queue=PULL_QUEUE)


@app.task(name=POLL_TASK, ignore_result=True, max_retries=0)
def poll() -> None:
    """The change check; queues ``pull_mapping`` for each changed mapping.

    Never retried: the next tick of the schedule is the retry, and the budget guard
    backs the checks off while the CRM fails.
    """
    try:
        rt = runtime()
    except StartupError as exc:
        log.warning("change check skipped: %s", exc)
        return
    jobs.poll(rt, _enqueue_pull)


@app.task(
    bind=True,
    name=PULL_TASK,
    ignore_result=True,
    max_retries=jobs.MAX_RETRIES,
)
def pull_mapping(self: Task, name: str, full: bool = False) -> None:
    """One pull pass of mapping ``name`` under its per-mapping lock."""
    try:
        rt = runtime()
    except StartupError as exc:
        # Not retried here: the change check queues the mapping again once it can run.
        log.warning("pull of %s skipped: %s", name, exc)
        return
    if name not in rt.mapping_names:
        log.error("unknown mapping %r: nothing to pull", name)
        return
    try:
        jobs.pull(rt, name, full=full)
    except jobs.RETRYABLE_ERRORS as exc:
        retries = int(self.request.retries or 0)
        if retries >= jobs.MAX_RETRIES:
            log.error("pull of %s failed %d times; the next change check retries", name, retries)
            raise
        countdown = _countdown(retries)
        # The retry is queued: the change check must not queue another copy.
        with contextlib.suppress(*jobs.TRANSIENT_ERRORS):
            rt.locks.mark_queued(name, countdown + rt.queue_marker_ttl())
        raise self.retry(exc=exc, countdown=countdown) from exc


def _maintenance(task: Task, what: str, job: Callable[[jobs.Runtime], Any]) -> None:
    try:
        rt = runtime()
    except StartupError as exc:
        log.warning("%s skipped: %s", what, exc)
        return
    try:
        job(rt)
    except jobs.TRANSIENT_ERRORS as exc:
        retries = int(task.request.retries or 0)
        if retries >= int(task.max_retries or 0):
            log.error("%s failed %d times; the next scheduled run retries", what, retries)
            raise
        raise task.retry(exc=exc, countdown=_countdown(retries)) from exc


@app.task(bind=True, name=RECONCILE_TASK, ignore_result=True, max_retries=3)
def reconcile(self: Task) -> None:
    """Reconciliation of every mapping (tombstones rows whose CRM record is gone)."""
    _maintenance(self, "reconciliation", jobs.reconcile)


@app.task(bind=True, name=PUSH_TASK, ignore_result=True, max_retries=3)
def push(self: Task) -> None:
    """One push pass over the accepted changes waiting in the outbox."""
    _maintenance(self, "push", lambda rt: jobs.push(rt, _enqueue_pull))
