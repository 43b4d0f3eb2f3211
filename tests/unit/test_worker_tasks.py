"""Celery task shells: configuration from settings, startup backoff while the CRM is down."""

from __future__ import annotations

import pytest

import sync.context
from sync.crm.errors import TransientCrmError
from sync.settings import Settings
from workers import app as app_module
from workers import tasks
from workers.process import ProcessRuntime


@pytest.fixture
def fresh_runtime(monkeypatch):
    monkeypatch.setattr(
        tasks, "process", ProcessRuntime(Settings(broker_url="redis://127.0.0.1:1/0"))
    )
    tasks.reset_runtime()
    yield
    tasks.reset_runtime()


def test_given_crm_down_at_start_when_tasks_run_then_startup_is_retried_with_backoff(
    monkeypatch, fresh_runtime
):
    attempts: list[int] = []

    def unreachable(settings, **kwargs):
        attempts.append(1)
        raise TransientCrmError("connection refused")

    monkeypatch.setattr(sync.context.SyncContext, "from_settings", unreachable)

    with pytest.raises(tasks.StartupError, match="connection refused"):
        tasks.runtime()
    with pytest.raises(tasks.StartupError, match="next attempt in"):
        tasks.runtime()
    tasks.poll.run()  # a tick during the backoff: skipped quietly, no login attempt

    assert len(attempts) == 1


def test_given_settings_when_app_built_then_reliability_options_follow_them():
    settings = Settings(
        broker_url="redis://127.0.0.1:6379/3",
        pull_interval=2.0,
        task_time_limit=600.0,
        redis_prefix="acme",
    )

    conf = app_module.make_app(settings).conf

    assert conf.broker_url == "redis://127.0.0.1:6379/3"
    assert conf.result_backend is None and conf.task_ignore_result
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_connection_retry_on_startup
    options = conf.broker_transport_options
    assert options["visibility_timeout"] > settings.task_time_limit + 60
    assert options["global_keyprefix"] == "acme:"
    schedule = conf.beat_schedule
    assert schedule["billing_sync-poll"]["schedule"] == 0.5
    assert schedule["billing_sync-poll"]["options"]["queue"] == "pull"
    assert schedule["billing_sync-reconcile"]["schedule"] == 3600.0
    assert schedule["billing_sync-reconcile"]["options"]["queue"] == "maintenance"
    assert schedule["billing_sync-push"]["task"] == "billing_sync.push"
    assert conf.task_routes["billing_sync.pull_mapping"] == {"queue": "pull"}
