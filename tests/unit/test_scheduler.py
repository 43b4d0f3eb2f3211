"""The in-process scheduler: same jobs, same schedule, bounded retries, on threads."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from sync.service import jobs
from sync.service.locks import LocalLocks
from sync.service.scheduler import InProcessScheduler
from sync.settings import Settings


def runtime(**settings) -> jobs.Runtime:
    ctx = SimpleNamespace(
        crm=SimpleNamespace(api_calls=0),
        mappings=SimpleNamespace(names=["accounts", "contacts"]),
        engine=None,
    )
    return jobs.Runtime(
        settings=Settings(pull_interval=2.0, **settings), ctx=ctx, locks=LocalLocks()
    )


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setattr(jobs, "retry_delay", lambda attempt: 0.01)


def test_given_schedule_when_built_then_poll_ticks_within_interval_and_maintenance_follows():
    entries = {e.job: e for e in jobs.schedule(Settings(pull_interval=10.0))}

    assert entries[jobs.Job.POLL].every == 2.5
    assert entries[jobs.Job.RECONCILE].every == 3600.0
    assert entries[jobs.Job.PUSH].every == 10.0
    assert jobs.poll_tick(Settings(pull_interval=2.0)) == 0.5


def test_given_running_scheduler_when_ticking_then_poll_runs_repeatedly_never_overlapping(
    monkeypatch,
):
    active, overlaps, calls = [0], [0], [0]
    lock = threading.Lock()

    def slow_poll(rt, enqueue):
        with lock:
            active[0] += 1
            overlaps[0] = max(overlaps[0], active[0])
            calls[0] += 1
        time.sleep(0.7)  # longer than the 0.5 s tick
        with lock:
            active[0] -= 1
        return jobs.PollReport(polled=True, decision=None)

    monkeypatch.setattr(jobs, "poll", slow_poll)
    sched = InProcessScheduler(runtime(), heartbeat=False)
    sched.start()
    try:
        assert wait_until(lambda: calls[0] >= 3, timeout=5)
    finally:
        sched.stop()

    assert overlaps[0] == 1


def test_given_failing_pull_when_retried_then_succeeds_on_third_attempt(monkeypatch, fast_retries):
    attempts: list[str] = []

    def poll_once(rt, enqueue):
        if not attempts:
            enqueue("accounts")
        return jobs.PollReport(polled=True, decision=None)

    def flaky_pull(rt, name, full=False):
        attempts.append(name)
        if len(attempts) < 3:
            raise jobs.PassFailedError(name, "HTTP 503 SERVER_UNAVAILABLE")
        return SimpleNamespace(outcome="ok")

    monkeypatch.setattr(jobs, "poll", poll_once)
    monkeypatch.setattr(jobs, "pull", flaky_pull)
    sched = InProcessScheduler(runtime(), heartbeat=False)
    with sched:
        assert wait_until(lambda: sched.pulls == 1)

    assert attempts == ["accounts"] * 3


def test_given_pull_failing_forever_when_retried_then_gives_up_after_max_retries(
    monkeypatch, fast_retries
):
    attempts: list[str] = []
    enqueued = threading.Event()

    def poll_once(rt, enqueue):
        if not enqueued.is_set():
            enqueued.set()
            enqueue("accounts")
        return jobs.PollReport(polled=True, decision=None)

    def broken_pull(rt, name, full=False):
        attempts.append(name)
        raise jobs.PassFailedError(name, "down")

    monkeypatch.setattr(jobs, "poll", poll_once)
    monkeypatch.setattr(jobs, "pull", broken_pull)
    with InProcessScheduler(runtime(), heartbeat=False):
        assert wait_until(lambda: len(attempts) >= jobs.MAX_RETRIES + 1)
        time.sleep(0.3)

    assert len(attempts) == jobs.MAX_RETRIES + 1


def test_given_a_job_bug_when_it_raises_then_the_schedule_keeps_running(monkeypatch):
    calls = [0]

    def buggy_poll(rt, enqueue):
        calls[0] += 1
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(jobs, "poll", buggy_poll)
    with InProcessScheduler(runtime(), heartbeat=False):
        assert wait_until(lambda: calls[0] >= 2, timeout=3)
