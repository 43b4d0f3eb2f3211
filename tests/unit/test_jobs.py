"""The jobs both runners execute: change check, pull under lock, budget bookkeeping."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

import sync.pull
from sync.crm.errors import TransientCrmError
from sync.crm.usage import ApiUsage
from sync.db.engine import make_engine
from sync.db.repo import set_paused
from sync.service import jobs
from sync.service.budget import Limiter
from sync.service.locks import LocalLocks
from sync.settings import Settings

T0 = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
NAMES = ["accounts", "contacts", "orders"]


class FakeCrm:
    def __init__(self) -> None:
        self.api_calls = 0
        self.api_usage: ApiUsage | None = None
        self.limits_calls = 0

    def spend(self, n: int, used: int = 100, limit: int = 5_000_000) -> None:
        self.api_calls += n
        self.api_usage = ApiUsage(used=used, max=limit)

    def limits(self) -> dict:
        self.limits_calls += 1
        self.api_calls += 1
        return {"DailyApiRequests": {"Max": 5_000_000, "Remaining": 4_999_000}}


@pytest.fixture
def rt(tmp_path, migrate):
    migrate(f"sqlite:///{tmp_path / 'jobs.db'}")
    engine = make_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    clock = [T0]
    ctx = SimpleNamespace(engine=engine, crm=FakeCrm(), mappings=SimpleNamespace(names=NAMES))
    runtime = jobs.Runtime(
        settings=Settings(pull_interval=10.0),
        ctx=ctx,
        locks=LocalLocks(clock=lambda: (clock[0] - T0).total_seconds()),
        clock=lambda: clock[0],
    )
    runtime.advance = lambda seconds: clock.__setitem__(0, clock[0] + dt.timedelta(seconds=seconds))
    yield runtime
    engine.dispose()


@pytest.fixture
def changed(monkeypatch):
    calls: list[list[str]] = []
    answer: dict[str, object] = {"names": ["accounts"], "error": None, "cost": 1}

    def fake(ctx, names=None, *, now=None):
        calls.append(list(names or []))
        ctx.crm.spend(int(answer["cost"]))
        if answer["error"] is not None:
            raise answer["error"]
        return [n for n in answer["names"] if n in names]

    monkeypatch.setattr(sync.pull, "changed_mappings", fake)
    return SimpleNamespace(calls=calls, answer=answer)


def test_given_due_check_when_polling_then_changed_mappings_queued_and_calls_recorded(rt, changed):
    queued: list[str] = []

    report = jobs.poll(rt, queued.append)

    assert report.polled and report.error is None
    assert report.changed == ["accounts"] and queued == ["accounts"]
    assert changed.calls == [NAMES]
    state = jobs.read_budget(rt.ctx.engine)
    assert state.org_max == 5_000_000
    assert sum(b[0] for b in state.buckets.values()) == 1  # the check's call, as cycle cost
    assert sum(b[1] for b in state.buckets.values()) == 1  # /limits, once, as one-off
    assert rt.ctx.crm.limits_calls == 1


def test_given_check_just_ran_when_ticking_again_then_not_due_and_no_crm_call(rt, changed):
    jobs.poll(rt, lambda name: None)
    rt.advance(2.5)

    report = jobs.poll(rt, lambda name: None)

    assert not report.polled
    assert len(changed.calls) == 1
    rt.advance(7.5)
    assert jobs.poll(rt, lambda name: None).polled


def test_given_mapping_running_or_queued_when_polling_then_not_queued_twice(rt, changed):
    changed.answer["names"] = ["accounts", "contacts", "orders"]
    lock = rt.locks.lock("accounts")
    assert lock.acquire()
    assert rt.locks.mark_queued("contacts", 60)
    queued: list[str] = []

    report = jobs.poll(rt, queued.append)

    assert report.changed == ["accounts", "contacts", "orders"]
    assert queued == ["orders"]
    lock.release()


def test_given_paused_mapping_when_polling_then_left_out_of_the_check(rt, changed):
    set_paused(rt.ctx.engine, "contacts", True, now=T0)

    jobs.poll(rt, lambda name: None)

    assert changed.calls == [["accounts", "orders"]]


def test_given_crm_down_when_polling_then_failure_recorded_and_checks_back_off(rt, changed):
    changed.answer["error"] = TransientCrmError(
        "unavailable", status=503, error_code="SERVER_UNAVAILABLE"
    )

    report = jobs.poll(rt, lambda name: None)

    assert report.polled and "SERVER_UNAVAILABLE" in (report.error or "")
    state = jobs.read_budget(rt.ctx.engine)
    assert state.failures == 1 and "503" in (state.last_error or "")
    rt.advance(10)
    assert not jobs.poll(rt, lambda name: None).polled  # backing off: 20 s after one failure
    rt.advance(10)
    changed.answer["error"] = None
    report = jobs.poll(rt, lambda name: None)
    assert report.polled and report.error is None
    assert jobs.read_budget(rt.ctx.engine).failures == 0


def result(outcome: str, *, full: bool = False) -> SimpleNamespace:
    return SimpleNamespace(
        outcome=outcome, error="boom" if outcome == "failed" else None, full=full
    )


def test_given_lock_held_elsewhere_when_pulling_then_skipped_without_calling_the_engine(
    rt, monkeypatch
):
    called: list[str] = []
    monkeypatch.setattr(sync.pull, "pull_mapping", lambda *a, **k: called.append("x"))
    other = rt.locks.lock("accounts")
    assert other.acquire()

    assert jobs.pull(rt, "accounts") is None
    assert called == []
    other.release()


def test_given_failed_pass_when_pulling_then_raises_for_retry_and_releases_the_lock(
    rt, monkeypatch
):
    monkeypatch.setattr(sync.pull, "pull_mapping", lambda ctx, name, **k: result("failed"))
    rt.locks.mark_queued("accounts", 60)

    with pytest.raises(jobs.PassFailedError, match="boom"):
        jobs.pull(rt, "accounts")

    assert rt.locks.holder("accounts") is None
    assert rt.locks.mark_queued("accounts", 60)  # the marker was cleared when it started


def test_given_first_load_when_pulled_then_its_calls_count_as_one_off_not_poll_cost(
    rt, monkeypatch
):
    def first_load(ctx, name, **kwargs):
        ctx.crm.spend(40)
        return result("ok", full=True)

    monkeypatch.setattr(sync.pull, "pull_mapping", first_load)

    jobs.pull(rt, "accounts")

    state = jobs.read_budget(rt.ctx.engine)
    assert sum(b[1] for b in state.buckets.values()) == 40
    assert sum(b[0] for b in state.buckets.values()) == 0


def test_given_small_org_when_polling_then_guard_stretches_the_interval(rt, changed):
    changed.answer["cost"] = 3

    def tiny_org(n: int, used: int = 10, limit: int = 1_000) -> None:
        rt.ctx.crm.api_calls += n
        rt.ctx.crm.api_usage = ApiUsage(used=used, max=limit)

    rt.ctx.crm.spend = tiny_org
    first = jobs.poll(rt, lambda name: None)
    rt.advance(60)

    second = jobs.poll(rt, lambda name: None)

    assert first.polled and not second.polled
    assert second.decision.limiter is Limiter.BUDGET
    assert second.decision.interval > 600
