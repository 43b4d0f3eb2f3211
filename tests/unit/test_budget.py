"""The API budget guard: pure rules, frozen clock."""

from __future__ import annotations

import datetime as dt

import pytest

from sync.service.budget import (
    BUCKET,
    DAY,
    BudgetPolicy,
    BudgetState,
    Limiter,
    decide,
    observe_usage,
    record_calls,
    record_poll_result,
    record_poll_started,
)

T0 = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def policy(base: float = 10.0, share: float = 0.2, poll_cost: float = 3.0) -> BudgetPolicy:
    return BudgetPolicy(base_interval=base, share=share, poll_cost=poll_cost)


def run_polls(
    state: BudgetState,
    pol: BudgetPolicy,
    *,
    start: float,
    seconds: float,
    cost: int,
    tick: float,
) -> tuple[BudgetState, list[float]]:
    """Simulate a timer ticking every ``tick`` s; each due poll spends ``cost`` calls."""
    polled_at: list[float] = []
    t = start
    while t < start + seconds:
        decision = decide(state, pol, at(t))
        if decision.due:
            state = record_poll_started(state, at(t))
            state = record_calls(state, at(t), cycle=cost)
            state = record_poll_result(state, at(t))
            polled_at.append(t)
        t += tick
    return state, polled_at


def test_given_unknown_limit_when_deciding_then_polls_at_configured_interval():
    decision = decide(BudgetState(), policy(), T0)

    assert decision.due
    assert decision.interval == 10.0
    assert decision.limiter is Limiter.CONFIGURED
    assert "not known yet" in decision.reason
    assert decision.budget is None


def test_given_ample_limit_when_deciding_then_configured_interval_and_projection_shown():
    state = observe_usage(BudgetState(), T0, used=1_000, limit=5_000_000)
    state = record_poll_started(state, T0)

    decision = decide(state, policy(), at(5))

    assert decision.limiter is Limiter.CONFIGURED
    assert decision.interval == 10.0
    assert not decision.due
    assert decision.next_poll_at == at(10)
    assert decision.budget == 1_000_000
    assert "as configured" in decision.reason


def test_given_poll_just_ran_when_tick_arrives_a_little_early_then_it_is_due():
    state = observe_usage(BudgetState(), T0, used=0, limit=5_000_000)
    state = record_poll_started(state, T0)

    assert decide(state, policy(), at(9.8)).due
    assert not decide(state, policy(), at(9.0)).due


def test_given_small_daily_limit_when_deciding_then_interval_stretches_to_fit_budget():
    # 1,000 calls/day, 20 % share = 200 calls; 3 calls per poll -> 86400 * 3 / 200 s.
    state = observe_usage(BudgetState(), T0, used=10, limit=1_000)

    decision = decide(state, policy(), T0)

    assert decision.limiter is Limiter.BUDGET
    assert decision.interval == pytest.approx(86400 * 3 / 200)
    assert decision.projected_per_day == 200
    assert "over the budget of 200" in decision.reason


def test_given_small_limit_when_polling_for_a_day_then_never_more_than_budget_in_any_window():
    pol = policy(base=2.0)
    state = observe_usage(BudgetState(), T0, used=0, limit=1_000)

    state, polled = run_polls(state, pol, start=0, seconds=2 * DAY, cost=3, tick=30.0)

    calls = [(t, 3) for t in polled]
    for i, (start, _) in enumerate(calls):
        in_window = sum(c for t, c in calls[i:] if t < start + DAY)
        assert in_window <= 200
    # and it does use most of the budget, it is not simply stopped
    assert sum(3 for t in polled if t < DAY) >= 150


def test_given_budget_stretched_when_limit_grows_then_interval_shrinks_back():
    state = observe_usage(BudgetState(), T0, used=0, limit=1_000)
    assert decide(state, policy(), T0).limiter is Limiter.BUDGET

    state = observe_usage(state, at(60), used=0, limit=10_000_000)

    decision = decide(state, policy(), at(60))
    assert decision.limiter is Limiter.CONFIGURED
    assert decision.interval == 10.0


def test_given_expensive_polls_when_changes_stop_then_interval_shrinks_back():
    # 100,000/day, 20 % = 20,000 calls; polls costing 10 calls need 43.2 s.
    pol = policy(base=10.0, poll_cost=3.0)
    state = observe_usage(BudgetState(), T0, used=0, limit=100_000)
    state, _ = run_polls(state, pol, start=0, seconds=1800, cost=10, tick=2.0)
    busy = decide(state, pol, at(1800))
    assert busy.limiter is Limiter.BUDGET
    assert busy.interval > 30

    state, _ = run_polls(state, pol, start=1800, seconds=2 * 3600, cost=1, tick=2.0)

    idle = decide(state, pol, at(1800 + 2 * 3600))
    assert idle.limiter is Limiter.CONFIGURED
    assert idle.interval == 10.0


def test_given_budget_spent_when_deciding_then_waits_until_old_calls_leave_the_window():
    pol = policy()
    state = observe_usage(BudgetState(), T0, used=0, limit=1_000)
    state = record_calls(state, T0, one_off=199)  # a full load spent the whole budget
    state = record_poll_started(state, at(10))

    decision = decide(state, pol, at(20))

    assert decision.limiter is Limiter.BUDGET_SPENT
    assert not decision.due
    assert decision.next_poll_at is not None
    assert decision.next_poll_at >= T0 + dt.timedelta(seconds=DAY)
    assert decision.used_24h == 199
    later = decide(state, pol, T0 + dt.timedelta(seconds=DAY + BUCKET))
    assert later.due


def test_given_org_near_its_limit_when_deciding_then_polls_at_the_maximum_interval():
    state = observe_usage(BudgetState(), T0, used=99_500, limit=100_000)
    state = record_poll_started(state, T0)

    decision = decide(state, policy(), at(60))

    assert decision.limiter is Limiter.ORG_LIMIT
    assert decision.interval == 3600.0
    assert not decision.due
    assert "99,500 of its 100,000" in decision.reason


def test_given_failed_polls_when_deciding_then_backs_off_exponentially_and_resets_on_success():
    pol = policy(base=2.0)
    state = observe_usage(BudgetState(), T0, used=0, limit=10_000_000)
    for n in range(1, 4):
        state = record_poll_started(state, at(n))
        state = record_poll_result(state, at(n), error="HTTP 503 SERVER_UNAVAILABLE")
    decision = decide(state, pol, at(4))
    assert decision.limiter is Limiter.CRM_FAILING
    assert decision.interval == 16.0
    assert "3 time(s)" in decision.reason
    assert "SERVER_UNAVAILABLE" in decision.reason
    assert state.failing_since == at(1).timestamp()

    for _ in range(20):
        state = record_poll_result(state, at(5), error="still down")
    assert decide(state, pol, at(5)).interval == pol.failure_backoff_max

    state = record_poll_result(state, at(6))
    assert decide(state, pol, at(6)).limiter is Limiter.CONFIGURED
    assert state.failures == 0 and state.last_error is None


def test_given_state_when_round_tripped_through_json_dict_then_equal():
    state = observe_usage(BudgetState(), T0, used=5, limit=1_000)
    state = record_calls(state, T0, cycle=3, one_off=7)
    state = record_poll_started(state, at(1))
    state = record_poll_result(state, at(1), error="boom")

    assert BudgetState.from_dict(state.to_dict()) == state
    assert BudgetState.from_dict(None) == BudgetState()


def test_given_ledger_older_than_a_day_when_recording_then_pruned():
    state = record_calls(BudgetState(), T0, cycle=5)
    state = record_calls(state, T0 + dt.timedelta(days=2), cycle=1)

    assert sum(v[0] for v in state.buckets.values()) == 1


def test_given_naive_datetime_when_recording_then_refused():
    with pytest.raises(ValueError, match="aware"):
        record_calls(BudgetState(), dt.datetime(2026, 1, 1), cycle=1)
