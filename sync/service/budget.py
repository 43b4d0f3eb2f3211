"""The API budget guard: how often polling may run without overspending the org's API calls.

Salesforce counts API calls per org over a rolling 24 hours, and every other integration
of the org draws from the same allowance. billing-sync may spend ``share`` of the daily
limit (``BILLING_SYNC_API_BUDGET``). The guard learns the limit and the org's use from
``/limits`` and the ``Sforce-Limit-Info`` header, keeps a small ledger of its own calls,
and stretches the polling interval when polling at the configured pace would overspend;
it shrinks back as soon as the projection allows.

Everything here is pure: a :class:`BudgetState` (small, JSON-serialisable), functions that
return an updated copy, and :func:`decide`, which turns a state, a policy and the current
time into a :class:`Decision`. Where the state is kept (the database) is the caller's
business.

The rules, strictest wins:

- *configured*: never poll faster than ``BILLING_SYNC_PULL_INTERVAL``.
- *budget*: a poll cycle (the cheap change check plus the incremental pulls it triggers)
  costs ``c`` calls, measured over the last hour. Polling every ``i`` seconds spends
  ``c * 86400 / i`` calls a day, on top of the one-off calls (full pulls, reconcile,
  push) already spent in the window. The interval is stretched until that projection
  fits in the budget.
- *budget spent*: if the ledger already holds the whole budget for the last 24 hours,
  polling waits until enough old calls leave the window.
- *org limit*: if the org as a whole is within a small reserve of its daily limit
  (other integrations count too), polling slows to the maximum interval.
- *CRM failing*: consecutive failed polls back off exponentially, capped.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

DAY = 86400.0
HOUR = 3600.0
BUCKET = 300
"""Ledger granularity in seconds: 288 buckets cover a day."""


class Limiter(StrEnum):
    """Which rule set the effective interval."""

    CONFIGURED = "configured"
    BUDGET = "budget"
    BUDGET_SPENT = "budget_spent"
    ORG_LIMIT = "org_limit"
    CRM_FAILING = "crm_failing"


@dataclass(frozen=True)
class BudgetPolicy:
    """The fixed inputs of the guard.

    Attributes:
        base_interval: the configured polling interval in seconds; the floor.
        share: the fraction of the org's daily limit billing-sync may spend.
        poll_cost: calls one idle change check costs (one per five mappings), used
            until the ledger has measured polls.
        max_interval: the slowest polling the org-limit rule falls back to.
        failure_backoff_max: the cap of the exponential backoff after failed polls.
        org_reserve: fraction of the org's daily limit left untouched for everyone else.
    """

    base_interval: float
    share: float
    poll_cost: float = 1.0
    max_interval: float = 3600.0
    failure_backoff_max: float = 60.0
    org_reserve: float = 0.02


@dataclass
class BudgetState:
    """What the guard remembers between polls.

    Attributes:
        buckets: ledger of billing-sync's own calls: bucket start (epoch seconds, a
            multiple of :data:`BUCKET`) to ``[cycle calls, one-off calls, polls]``.
        org_used: the org's calls in the last 24 hours, as last reported.
        org_max: the org's daily limit, as last reported.
        org_seen_at: when they were reported (epoch seconds).
        last_poll_at: when the last change check started (epoch seconds).
        failures: consecutive failed change checks.
        failing_since: when the first of them failed (epoch seconds).
        last_error: what the last failure said.
    """

    buckets: dict[int, list[int]] = field(default_factory=dict)
    org_used: int | None = None
    org_max: int | None = None
    org_seen_at: float | None = None
    last_poll_at: float | None = None
    failures: int = 0
    failing_since: float | None = None
    last_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (bucket keys become strings)."""
        return {
            "buckets": {str(k): list(v) for k, v in sorted(self.buckets.items())},
            "org_used": self.org_used,
            "org_max": self.org_max,
            "org_seen_at": self.org_seen_at,
            "last_poll_at": self.last_poll_at,
            "failures": self.failures,
            "failing_since": self.failing_since,
            "last_error": self.last_error,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> BudgetState:
        """The inverse of :meth:`to_dict`; an empty or missing dict gives a fresh state."""
        if not data:
            return cls()
        buckets = {
            int(k): [int(x) for x in [*list(v), 0, 0, 0][:3]]
            for k, v in dict(data.get("buckets") or {}).items()
        }
        return cls(
            buckets=buckets,
            org_used=_opt_int(data.get("org_used")),
            org_max=_opt_int(data.get("org_max")),
            org_seen_at=_opt_float(data.get("org_seen_at")),
            last_poll_at=_opt_float(data.get("last_poll_at")),
            failures=int(data.get("failures") or 0),
            failing_since=_opt_float(data.get("failing_since")),
            last_error=data.get("last_error"),
        )


@dataclass(frozen=True)
class Decision:
    """The guard's answer for one moment.

    Attributes:
        interval: effective polling interval in seconds.
        limiter: the rule that set it.
        reason: one sentence for people (shown by ``billing-sync status``).
        due: whether a change check may run now.
        next_poll_at: when the next check may run (None: now).
        budget: calls per 24 hours billing-sync may spend (None: limit not known yet).
        used_24h: billing-sync's own calls in the last 24 hours.
        cost_per_poll: measured calls per poll cycle.
        projected_per_day: calls per day at the effective interval (None: limit unknown).
    """

    interval: float
    limiter: Limiter
    reason: str
    due: bool
    next_poll_at: dt.datetime | None
    budget: int | None
    used_24h: int
    cost_per_poll: float
    projected_per_day: int | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form."""
        return {
            "interval": round(self.interval, 1),
            "limiter": self.limiter.value,
            "reason": self.reason,
            "due": self.due,
            "next_poll_at": self.next_poll_at.isoformat() if self.next_poll_at else None,
            "budget": self.budget,
            "used_24h": self.used_24h,
            "cost_per_poll": round(self.cost_per_poll, 2),
            "projected_per_day": self.projected_per_day,
        }


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _epoch(now: dt.datetime) -> float:
    if now.tzinfo is None:
        raise ValueError("the budget guard needs an aware datetime")
    return now.timestamp()


def _bucket(ts: float) -> int:
    return int(ts // BUCKET) * BUCKET


def _prune(buckets: Mapping[int, list[int]], ts: float) -> dict[int, list[int]]:
    oldest = _bucket(ts - DAY)
    return {k: list(v) for k, v in buckets.items() if k >= oldest}


def _add(state: BudgetState, ts: float, cycle: int, one_off: int, polls: int) -> BudgetState:
    buckets = _prune(state.buckets, ts)
    row = buckets.setdefault(_bucket(ts), [0, 0, 0])
    row[0] += cycle
    row[1] += one_off
    row[2] += polls
    return replace(state, buckets=buckets)


def record_calls(
    state: BudgetState, now: dt.datetime, *, cycle: int = 0, one_off: int = 0
) -> BudgetState:
    """Add calls billing-sync made to the ledger.

    Args:
        state: the current state.
        now: when they were made.
        cycle: calls of change checks and the incremental pulls they trigger.
        one_off: calls of full pulls, reconciliation and push.
    """
    if cycle < 0 or one_off < 0:
        raise ValueError("call counts cannot be negative")
    if not cycle and not one_off:
        return state
    return _add(state, _epoch(now), cycle, one_off, 0)


def record_poll_started(state: BudgetState, now: dt.datetime) -> BudgetState:
    """Note that a change check starts now (it counts as one poll cycle)."""
    ts = _epoch(now)
    return replace(_add(state, ts, 0, 0, 1), last_poll_at=ts)


def record_poll_result(
    state: BudgetState, now: dt.datetime, *, error: str | None = None
) -> BudgetState:
    """Note how a change check ended: ``error`` None for success."""
    if error is None:
        return replace(state, failures=0, failing_since=None, last_error=None)
    return replace(
        state,
        failures=state.failures + 1,
        failing_since=state.failing_since if state.failures else _epoch(now),
        last_error=error[:500],
    )


def observe_usage(state: BudgetState, now: dt.datetime, *, used: int, limit: int) -> BudgetState:
    """Take in the org's usage as ``Sforce-Limit-Info`` or ``/limits`` reported it."""
    if limit <= 0 or used < 0:
        return state
    return replace(state, org_used=used, org_max=limit, org_seen_at=_epoch(now))


def _window_sums(state: BudgetState, ts: float) -> tuple[int, int, int, int, int]:
    """(cycle calls 24 h, one-off calls 24 h, cycle calls 1 h, polls 1 h, total 24 h)."""
    day_start = ts - DAY
    hour_start = ts - HOUR
    cycle_day = one_off_day = cycle_hour = polls_hour = 0
    for start, (cycle, one_off, polls) in state.buckets.items():
        if start + BUCKET <= day_start:
            continue
        cycle_day += cycle
        one_off_day += one_off
        if start + BUCKET > hour_start:
            cycle_hour += cycle
            polls_hour += polls
    return cycle_day, one_off_day, cycle_hour, polls_hour, cycle_day + one_off_day


def _cost_per_poll(state: BudgetState, policy: BudgetPolicy, ts: float) -> float:
    _, _, cycle_hour, polls_hour, _ = _window_sums(state, ts)
    # One imaginary poll at the estimated cost keeps a single expensive first pass (or a
    # lucky cheap one) from swinging the measured cost.
    return max(0.1, (cycle_hour + policy.poll_cost) / (polls_hour + 1))


def _room_at(state: BudgetState, ts: float, needed: float, budget: float) -> float:
    """Earliest time ≥ ts when calls in the trailing 24 h leave ``needed`` calls of room."""
    spent = _window_sums(state, ts)[4]
    if spent + needed <= budget:
        return ts
    for start in sorted(state.buckets):
        end = start + BUCKET
        if end <= ts - DAY:
            continue
        spent -= sum(state.buckets[start][:2])
        if spent + needed <= budget:
            return end + DAY
    return ts + DAY


def _fmt_ts(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%H:%M:%S UTC")


def decide(state: BudgetState, policy: BudgetPolicy, now: dt.datetime) -> Decision:
    """The effective polling interval now, why, and whether a change check is due."""
    ts = _epoch(now)
    base = policy.base_interval
    cost = _cost_per_poll(state, policy, ts)
    _, one_off_day, _, _, used = _window_sums(state, ts)
    candidates: list[tuple[float, Limiter, str]] = []
    budget: float | None = None
    projected_base: float | None = None
    if state.org_max:
        budget = policy.share * state.org_max
        projected_base = one_off_day + cost * DAY / base
        candidates.append(
            (
                base,
                Limiter.CONFIGURED,
                f"every {base:g} s as configured: about {projected_base:,.0f} of the "
                f"{budget:,.0f} calls/day budget ({policy.share:.0%} of the org's "
                f"{state.org_max:,})",
            )
        )
        available = max(budget - one_off_day, 1.0)
        rate_interval = cost * DAY / available
        if rate_interval > base:
            candidates.append(
                (
                    rate_interval,
                    Limiter.BUDGET,
                    f"stretched from {base:g} s: at that pace polling would spend about "
                    f"{projected_base:,.0f} calls/day, over the budget of {budget:,.0f} "
                    f"({policy.share:.0%} of the org's {state.org_max:,}); "
                    f"{cost:.1f} calls per poll",
                )
            )
        room = _room_at(state, ts, cost, budget)
        if room > ts:
            since_last = (ts - state.last_poll_at) if state.last_poll_at is not None else 0.0
            candidates.append(
                (
                    since_last + (room - ts),
                    Limiter.BUDGET_SPENT,
                    f"{used:,} of the {budget:,.0f}-call budget spent in the last 24 h: "
                    f"next poll at {_fmt_ts(room)}, when older calls leave the window",
                )
            )
        org_used = state.org_used or 0
        headroom = state.org_max * (1 - policy.org_reserve) - org_used
        if headroom < cost:
            candidates.append(
                (
                    policy.max_interval,
                    Limiter.ORG_LIMIT,
                    f"the org has used {org_used:,} of its {state.org_max:,} daily API "
                    f"calls: polling every {policy.max_interval:g} s until it has room",
                )
            )
    else:
        candidates.append(
            (
                base,
                Limiter.CONFIGURED,
                f"every {base:g} s as configured (daily limit not known yet)",
            )
        )
    if state.failures:
        backoff = min(base * 2.0**state.failures, max(policy.failure_backoff_max, base))
        since = _fmt_ts(state.failing_since) if state.failing_since else "now"
        candidates.append(
            (
                backoff,
                Limiter.CRM_FAILING,
                f"the CRM check failed {state.failures} time(s) in a row since {since}: "
                f"backing off ({state.last_error or 'unknown error'})",
            )
        )
    # Every rule but "budget spent" is capped at the maximum interval; that one is a hard
    # stop until old calls leave the window, and it wins when it is the longer wait.
    cap = max(policy.max_interval, base)
    capped = [
        (i if lim is Limiter.BUDGET_SPENT else min(i, cap), lim, why) for i, lim, why in candidates
    ]
    interval, limiter, reason = max(capped, key=lambda c: c[0])
    if state.last_poll_at is None:
        due, next_ts = True, None
    else:
        # Polls are triggered by a timer ticking several times per interval; a tick that
        # arrives a few milliseconds early must not skip to the next tick. Only the
        # configured pace gets that slack: the budget rules are kept exactly.
        slack = min(0.5, 0.1 * base) if limiter is Limiter.CONFIGURED else 0.0
        next_ts = state.last_poll_at + interval
        due = ts >= next_ts - slack
    projected = None if budget is None else round(one_off_day + cost * DAY / interval)
    return Decision(
        interval=interval,
        limiter=limiter,
        reason=reason,
        due=due,
        next_poll_at=None if next_ts is None else dt.datetime.fromtimestamp(next_ts, dt.UTC),
        budget=None if budget is None else math.floor(budget),
        used_24h=used,
        cost_per_poll=cost,
        projected_per_day=projected,
    )
