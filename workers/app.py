"""The Celery app: broker, queues, reliability settings and the beat schedule.

Run it with::

    celery -A workers.app worker -Q pull,maintenance,push
    celery -A workers.app beat

Everything comes from the settings object (environment variables ``BILLING_SYNC_*``):
the broker is Redis at ``BILLING_SYNC_BROKER_URL``; there is no result backend (no task
returns anything anyone waits for). Tasks acknowledge late and are rejected back to the
queue when their worker dies, so a crash re-runs a task instead of losing it; every task
is idempotent (see sync/service/jobs.py), which is what makes that safe.
"""

from __future__ import annotations

import atexit
import logging
import sys
from typing import Any

from celery import Celery, signals
from kombu import Queue

from sync.service import heartbeats, jobs
from sync.service.locks import redis_client
from sync.settings import Settings, SettingsError
from sync.telemetry import logs
from workers.process import ProcessRuntime

log = logging.getLogger(__name__)

TASK_PREFIX = "billing_sync"
PULL_QUEUE = "pull"
MAINTENANCE_QUEUE = "maintenance"
PUSH_QUEUE = "push"

POLL_TASK = f"{TASK_PREFIX}.poll"
PULL_TASK = f"{TASK_PREFIX}.pull_mapping"
RECONCILE_TASK = f"{TASK_PREFIX}.reconcile"
PUSH_TASK = f"{TASK_PREFIX}.push"

_JOB_TASKS = {
    jobs.Job.POLL: (POLL_TASK, PULL_QUEUE),
    jobs.Job.RECONCILE: (RECONCILE_TASK, MAINTENANCE_QUEUE),
    jobs.Job.PUSH: (PUSH_TASK, PUSH_QUEUE),
}

# Used only so that importing this module (tests, `celery --help`) works without the
# variable; the worker and beat refuse to start without it (see _require_broker).
_PLACEHOLDER_BROKER = "redis://127.0.0.1:6379/0"


def visibility_timeout(settings: Settings) -> float:
    """Seconds a delivered, unacknowledged task stays invisible to other workers.

    Redis redelivers a late-acknowledged task after this long, so it must exceed the
    longest a task can take (its hard time limit) plus the longest retry countdown,
    or a healthy long task would run twice.
    """
    return settings.task_time_limit + jobs.RETRY_BACKOFF_MAX + 300.0


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """The beat schedule, built from the same entries the in-process scheduler uses."""
    entries: dict[str, dict[str, Any]] = {}
    for entry in jobs.schedule(settings):
        task, queue = _JOB_TASKS[entry.job]
        entries[f"{TASK_PREFIX}-{entry.job.value}"] = {
            "task": task,
            "schedule": entry.every,
            "options": {"queue": queue, "expires": entry.expires},
        }
    return entries


def make_app(settings: Settings) -> Celery:
    """A Celery app configured from ``settings``."""
    app = Celery("billing_sync", include=["workers.tasks"])
    app.conf.update(
        broker_url=settings.broker_url or _PLACEHOLDER_BROKER,
        result_backend=None,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        timezone="UTC",
        enable_utc=True,
        task_queues=(Queue(PULL_QUEUE), Queue(MAINTENANCE_QUEUE), Queue(PUSH_QUEUE)),
        task_default_queue=PULL_QUEUE,
        task_routes={
            POLL_TASK: {"queue": PULL_QUEUE},
            PULL_TASK: {"queue": PULL_QUEUE},
            RECONCILE_TASK: {"queue": MAINTENANCE_QUEUE},
            PUSH_TASK: {"queue": PUSH_QUEUE},
        },
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=settings.task_time_limit,
        task_soft_time_limit=max(settings.task_time_limit - 30.0, settings.task_time_limit * 0.9),
        # A broker blip must not kill a running pull: the pass is idempotent, keeps its
        # per-mapping lock through its own renewal, and a redelivered copy is harmless.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_connection_retry_on_startup=True,
        broker_connection_retry=True,
        broker_connection_max_retries=None,
        broker_transport_options={
            "visibility_timeout": visibility_timeout(settings),
            # Every key (queues, unacked messages) under the deployment's prefix, so
            # two deployments (or test runs) can share a Redis database.
            "global_keyprefix": f"{settings.redis_prefix}:",
            "socket_timeout": 10,
            "socket_connect_timeout": 5,
            "socket_keepalive": True,
            "health_check_interval": 10,
            "retry_on_timeout": True,
        },
        broker_pool_limit=4,
        beat_schedule=beat_schedule(settings),
        beat_max_loop_interval=min(5.0, jobs.poll_tick(settings)),
        worker_send_task_events=False,
    )
    return app


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        sys.stderr.write(f"billing-sync: {exc}\n")
        raise SystemExit(2) from exc


settings = _settings()
app = make_app(settings)
process = ProcessRuntime(settings)

_beats: list[heartbeats.HeartbeatWriter] = []


def _require_broker() -> None:
    if not settings.broker_url:
        sys.stderr.write(
            "billing-sync: BILLING_SYNC_BROKER_URL is not set. Celery workers need Redis "
            "(for example redis://127.0.0.1:6379/0); without a broker run "
            "`billing-sync run`, which schedules the same work in one process.\n"
        )
        raise SystemExit(2)


def _start_heartbeat(role: str, detail: dict[str, Any]) -> None:
    assert settings.broker_url
    client = redis_client(settings.broker_url)
    writer = heartbeats.HeartbeatWriter(
        heartbeats.redis_sink(client, settings.redis_prefix),
        role=role,
        detail=lambda: dict(detail),
        on_stop=heartbeats.redis_withdraw(client, settings.redis_prefix),
    )
    writer.start()
    _beats.append(writer)


@signals.worker_init.connect
def _on_worker_init(**_: Any) -> None:
    _require_broker()


@signals.worker_ready.connect
def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    queues = []
    try:
        queues = sorted(q.name for q in sender.app.amqp.queues.consume_from.values())
    except AttributeError:
        queues = [PULL_QUEUE, MAINTENANCE_QUEUE, PUSH_QUEUE]
    _start_heartbeat("worker", {"queues": queues, "name": getattr(sender, "hostname", "")})


def _stop_heartbeats() -> None:
    while _beats:
        _beats.pop().stop()


@signals.worker_shutdown.connect
def _on_worker_shutdown(**_: Any) -> None:
    _stop_heartbeats()
    process.stop_flusher()  # a solo or threads pool has no process shutdown of its own


@signals.beat_init.connect
def _on_beat_init(**_: Any) -> None:
    _require_broker()
    _start_heartbeat(
        "beat",
        {"poll_every": jobs.poll_tick(settings), "pull_interval": settings.pull_interval},
    )
    # Beat has no shutdown signal; withdraw its heartbeat when the process exits.
    atexit.register(_stop_heartbeats)


@signals.worker_process_init.connect
def _on_worker_process_init(**_: Any) -> None:
    # Connections must not cross a fork: each pool process builds its own runtime.
    process.reset()


@signals.worker_process_shutdown.connect
def _on_worker_process_shutdown(**_: Any) -> None:
    # The CRM call tallies of this pool process since its last flush.
    process.stop_flusher()


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _on_setup_logger(logger: logging.Logger | None = None, **_: Any) -> None:
    # BILLING_SYNC_LOG_FORMAT=json: one JSON object a line, like `billing-sync`; either
    # way, the bound ids and the redaction of secrets apply to Celery's handlers too.
    if logger is None:
        return
    for handler in logger.handlers:
        if settings.log_format == "json":
            logs.install(handler, "json")
        else:
            handler.addFilter(logs.ContextFilter())
            handler.addFilter(logs.RedactingFilter())
