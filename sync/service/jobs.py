"""The background jobs, the same under Celery and in one process.

A job is one unit of scheduled work: the change check (:func:`poll`), one mapping's pull
(:func:`pull`), reconciliation (:func:`reconcile`) and the push of accepted changes
(:func:`push`). Celery tasks (workers/tasks.py) and the in-process scheduler
(sync/service/scheduler.py) are thin shells around these functions; the schedule they both
follow is :func:`schedule`.

Every job is idempotent, so a redelivered or retried job is harmless: a pull starts from
the stored watermark, the change check only queues work, a second pull of a mapping that
is already being pulled gives up at once (per-mapping lock).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import redis
import requests
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from sync import pull as pull_engine
from sync import push as push_engine
from sync.clock import utc_now
from sync.crm.errors import CrmError
from sync.db import repo, service_state
from sync.db.models import SyncState
from sync.service import budget as budget_rules
from sync.service import listener_status as events_status
from sync.service.budget_store import budget_policy, read_budget
from sync.service.listener_status import listening_mappings
from sync.service.locks import LockProvider

if TYPE_CHECKING:
    from sync.context import SyncContext
    from sync.pull import PassResult
    from sync.push import PushReport
    from sync.settings import Settings

log = logging.getLogger(__name__)

MAX_RETRIES = 5
"""How often a failed pull is retried before the next change check takes over."""
RETRY_BACKOFF = 2.0
RETRY_BACKOFF_MAX = 60.0

#: What a job may fail with and still be worth retrying: the CRM or a database or Redis
#: connection having a bad moment. Anything else is a bug and fails loudly.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    CrmError,
    SQLAlchemyError,
    redis.RedisError,
    requests.RequestException,
    OSError,
)


def retry_delay(attempt: int) -> float:
    """Seconds before retry number ``attempt`` (0-based): exponential, capped."""
    return float(min(RETRY_BACKOFF_MAX, RETRY_BACKOFF * 2.0**attempt))


class Job(StrEnum):
    """The scheduled jobs; the values are the Celery task names' suffixes."""

    POLL = "poll"
    RECONCILE = "reconcile"
    PUSH = "push"


@dataclass(frozen=True)
class ScheduleEntry:
    """One periodic job: run ``job`` every ``every`` seconds.

    ``expires`` drops a run that waited longer than that in the queue (workers were
    down): the next run does the same work, so a pile of stale runs is only load.
    """

    job: Job
    every: float
    expires: float


def poll_tick(settings: Settings) -> float:
    """How often the change check's timer fires.

    Several times per pull interval, so that the budget guard's stretched intervals are
    kept closely; a tick that is not due costs one small database read and no API call.
    """
    return max(0.5, min(settings.pull_interval / 4.0, 5.0))


def schedule(settings: Settings) -> list[ScheduleEntry]:
    """The periodic jobs: change check, hourly reconcile, push."""
    tick = poll_tick(settings)
    return [
        ScheduleEntry(Job.POLL, tick, expires=max(tick, 1.0)),
        ScheduleEntry(
            Job.RECONCILE, settings.reconcile_interval, expires=settings.reconcile_interval
        ),
        ScheduleEntry(Job.PUSH, settings.push_interval, expires=max(settings.push_interval, 5.0)),
    ]


class PassFailedError(RuntimeError):
    """A pull pass ended with outcome "failed"; the runner retries it (bounded)."""

    def __init__(self, mapping: str, error: str | None) -> None:
        self.mapping = mapping
        self.error = error
        super().__init__(f"pull of {mapping} failed: {error or 'unknown error'}")


#: What a failed pull is retried for.
RETRYABLE_ERRORS: tuple[type[BaseException], ...] = (PassFailedError, *TRANSIENT_ERRORS)


@dataclass
class Runtime:
    """What the jobs of one process share: the sync context, locks, clock.

    Attributes:
        settings: the process's settings.
        ctx: the sync context (engine, CRM client, mappings).
        locks: per-mapping locks (Redis under Celery, threading in one process).
        clock: the current time; tests pass a frozen one.
    """

    settings: Settings
    ctx: SyncContext
    locks: LockProvider
    clock: Callable[[], dt.datetime] = utc_now
    # Calls already in the ledger. Zero at start, so that the calls of the context's
    # start (login, describe) are counted by the first job.
    _counted: int = field(default=0, init=False)
    _usage_seen: Any = field(default=None, init=False)
    _count_lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    @property
    def mapping_names(self) -> list[str]:
        return list(self.ctx.mappings.names)

    def policy(self) -> budget_rules.BudgetPolicy:
        """The budget guard's policy for this deployment."""
        return budget_policy(self.settings, len(self.mapping_names))

    def queue_marker_ttl(self) -> float:
        """How long a queued pull keeps the poller from queueing the same mapping again."""
        return max(30.0, 3.0 * self.settings.pull_interval)

    def account(self, *, one_off: bool = False) -> None:
        """Add the CRM calls made since the last accounting to the budget ledger.

        Calls are counted from the client's counter, so calls of concurrent jobs in one
        process are each counted once. A failed write keeps them for the next time.
        """
        crm = self.ctx.crm
        with self._count_lock:
            total = int(getattr(crm, "api_calls", 0))
            delta = max(0, total - self._counted)
            usage = getattr(crm, "api_usage", None)
            if not delta and usage == self._usage_seen:
                return
            now = self.clock()

            def change(doc: dict[str, Any] | None) -> tuple[dict[str, Any], None]:
                state = budget_rules.BudgetState.from_dict(doc)
                if one_off:
                    state = budget_rules.record_calls(state, now, one_off=delta)
                else:
                    state = budget_rules.record_calls(state, now, cycle=delta)
                if usage is not None:
                    state = budget_rules.observe_usage(
                        state, now, used=int(usage.used), limit=int(usage.max)
                    )
                return state.to_dict(), None

            try:
                service_state.update_document(
                    self.ctx.engine, service_state.BUDGET_KEY, change, now
                )
                if usage is not None:
                    service_state.write(
                        self.ctx.engine,
                        service_state.API_USAGE_KEY,
                        {"used": usage.used, "max": usage.max, "seen_at": now.isoformat()},
                        now,
                    )
            except (SQLAlchemyError, service_state.StateConflictError) as exc:
                log.warning("API calls not recorded in the budget ledger yet: %s", exc)
                return
            self._counted = total
            self._usage_seen = usage


def paused_mappings(ctx: SyncContext) -> set[str]:
    """Names of the mappings whose polling is paused."""
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(SyncState.mapping).where(SyncState.paused.is_(True))).all()
    return {row.mapping for row in rows}


@dataclass(frozen=True)
class PollReport:
    """What one run of :func:`poll` did.

    Attributes:
        polled: False when the budget guard said the check was not due.
        decision: the guard's decision at the start.
        changed: mappings the check found changed.
        queued: mappings whose pull was queued (changed, not running, not yet queued).
        error: why the check failed, or None.
        checked: the mappings the check asked about (listening ones only at the safety
            interval).
        listening: mappings a healthy events listener covers.
    """

    polled: bool
    decision: budget_rules.Decision
    changed: list[str] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    error: str | None = None
    checked: list[str] = field(default_factory=list)
    listening: list[str] = field(default_factory=list)


def listening_now(rt: Runtime, now: dt.datetime) -> set[str]:
    """Mappings a healthy events listener covers now (empty: poll them all as configured)."""
    if not rt.settings.events_enabled:
        return set()

    try:
        return listening_mappings(rt.ctx.engine, now)
    except SQLAlchemyError as exc:
        log.warning("listener state unreadable; polling every mapping: %s", exc)
        return set()


def _claim_poll(rt: Runtime, now: dt.datetime) -> tuple[bool, budget_rules.Decision]:
    """Atomically: decide, and if due, mark the check as started (one poller wins)."""
    policy = rt.policy()

    def change(doc: dict[str, Any] | None) -> tuple[dict[str, Any], tuple[bool, Any]]:
        state = budget_rules.BudgetState.from_dict(doc)
        decision = budget_rules.decide(state, policy, now)
        if decision.due:
            state = budget_rules.record_poll_started(state, now)
        return state.to_dict(), (decision.due, decision)

    due, decision = service_state.update_document(
        rt.ctx.engine, service_state.BUDGET_KEY, change, now
    )
    return bool(due), decision


def _record_poll_result(rt: Runtime, error: str | None) -> None:
    now = rt.clock()

    def change(doc: dict[str, Any] | None) -> tuple[dict[str, Any], None]:
        state = budget_rules.record_poll_result(
            budget_rules.BudgetState.from_dict(doc), now, error=error
        )
        return state.to_dict(), None

    try:
        service_state.update_document(rt.ctx.engine, service_state.BUDGET_KEY, change, now)
    except (SQLAlchemyError, service_state.StateConflictError) as exc:
        log.warning("result of the change check not recorded: %s", exc)


def _learn_limit(rt: Runtime, now: dt.datetime) -> None:
    """Ask ``/limits`` once when the guard does not know the org's daily limit yet."""
    state = read_budget(rt.ctx.engine)
    if state.org_max is not None or getattr(rt.ctx.crm, "api_usage", None) is not None:
        return
    limits = rt.ctx.crm.limits()
    rt.account(one_off=True)
    daily = limits.get("DailyApiRequests") or {}
    limit = int(daily.get("Max") or 0)
    if limit > 0:
        used = limit - int(daily.get("Remaining") or 0)

        def change(doc: dict[str, Any] | None) -> tuple[dict[str, Any], None]:
            st = budget_rules.observe_usage(
                budget_rules.BudgetState.from_dict(doc), now, used=used, limit=limit
            )
            return st.to_dict(), None

        service_state.update_document(rt.ctx.engine, service_state.BUDGET_KEY, change, now)


def _mark_in_step(rt: Runtime, unchanged: list[str], now: dt.datetime) -> None:
    """Record that the check found ``unchanged`` in step with the CRM (for monitoring)."""
    if not unchanged:
        return

    try:
        with rt.ctx.engine.begin() as conn:
            repo.mark_in_step(conn, unchanged, now)
    except SQLAlchemyError as exc:
        log.warning("last successful check not recorded: %s", exc)


def poll(rt: Runtime, enqueue: Callable[[str], None]) -> PollReport:
    """The change check: ask the CRM which mappings changed, queue a pull for each.

    It runs only when the budget guard says a check is due; the question costs one
    ``/composite`` call per five mappings.
    A mapping is not queued while its pull runs (it holds the lock) or is already
    queued; the next check queues it again if it still has changes.

    Args:
        rt: the process's runtime.
        enqueue: queues one mapping's pull (a Celery task, or a thread pool).

    Returns:
        What was done; a failed check is reported (and recorded for the guard's
        backoff and for status), not raised: the next tick is the retry.
    """
    now = rt.clock()
    # While the events listener is healthy, the mappings it covers are checked only at
    # the safety interval; the others (refused channels, events: false) as configured.
    listening = listening_now(rt, now)
    safety = False
    if listening:
        paused = paused_mappings(rt.ctx)
        others = [n for n in rt.mapping_names if n not in paused and n not in listening]
        safety = events_status.safety_due(rt.ctx.engine, now, rt.settings.safety_interval)
        if not others and not safety:
            decision = budget_rules.decide(read_budget(rt.ctx.engine), rt.policy(), now)
            return PollReport(polled=False, decision=decision, listening=sorted(listening))
    due, decision = _claim_poll(rt, now)
    if not due:
        return PollReport(polled=False, decision=decision, listening=sorted(listening))
    paused = paused_mappings(rt.ctx)
    names = [n for n in rt.mapping_names if n not in paused]
    if listening and not safety:
        names = [n for n in names if n not in listening]
    elif listening:
        events_status.record_safety_check(rt.ctx.engine, now)
    if not names:
        _record_poll_result(rt, None)
        return PollReport(polled=True, decision=decision)
    try:
        _learn_limit(rt, now)
        changed = pull_engine.changed_mappings(rt.ctx, names, now=now)
    except TRANSIENT_ERRORS as exc:
        message = f"{type(exc).__name__}: {exc}"
        log.warning("change check failed: %s", message)
        rt.account()
        _record_poll_result(rt, message)
        return PollReport(polled=True, decision=decision, error=message)
    rt.account()
    _record_poll_result(rt, None)
    _mark_in_step(rt, [n for n in names if n not in set(changed)], now)
    queued = queue_pulls(rt, changed, enqueue)
    return PollReport(
        polled=True,
        decision=decision,
        changed=list(changed),
        queued=queued,
        checked=names,
        listening=sorted(listening),
    )


def queue_pulls(rt: Runtime, names: Iterable[str], enqueue: Callable[[str], None]) -> list[str]:
    """Queue a pull of each mapping in ``names`` that is neither running nor queued.

    Returns:
        The mappings queued.
    """
    queued: list[str] = []
    ttl = rt.queue_marker_ttl()
    for name in names:
        if rt.locks.holder(name) is not None:
            continue
        if not rt.locks.mark_queued(name, ttl):
            continue
        try:
            enqueue(name)
        except BaseException:
            # Not queued after all: let the next check queue it instead of waiting out
            # the marker.
            with contextlib.suppress(*TRANSIENT_ERRORS):
                rt.locks.clear_queued(name)
            raise
        queued.append(name)
    if queued:
        log.info("queued pulls: %s", ", ".join(queued))
    return queued


def pull(rt: Runtime, name: str, *, full: bool = False) -> PassResult | None:
    """One pull pass of mapping ``name`` under its lock.

    Returns:
        The pass's result, or None when another worker holds the mapping's lock (that
        worker's pass does the work; nothing to retry).

    Raises:
        PassFailedError: the pass failed (CRM or database trouble); the runner retries.
        redis.RedisError: the lock could not be taken (Redis unreachable); retried too.
    """
    rt.locks.clear_queued(name)
    lock = rt.locks.lock(name)
    if not lock.acquire():
        log.info("%s is being pulled by another worker; skipped", name)
        return None
    try:
        result = pull_engine.pull_mapping(rt.ctx, name, full=full, now=rt.clock())
    except BaseException:
        lock.release()
        rt.account(one_off=full)
        raise
    lock.release()
    # A first load (no watermark yet) is a one-off cost, not the price of a poll cycle;
    # so is a pull of a mapping the events listener covers (a change event asked for
    # it): counted as poll cycles, such pulls would stretch the polling interval the
    # mappings fall back to when the stream stops.
    rt.account(one_off=result.full or name in listening_now(rt, rt.clock()))
    if lock.lost:
        log.error("the lock of %s was lost during the pass", name)
    if result.outcome == "failed":
        raise PassFailedError(name, result.error)
    if result.outcome == "limit_exceeded":
        log.error("%s: the org's API limit is exceeded; polling slows down", name)
    return result


@dataclass(frozen=True)
class ReconcileReport:
    """What one reconciliation run did: results by mapping, and mappings skipped."""

    results: dict[str, Any]
    skipped: list[str]


def reconcile(rt: Runtime) -> ReconcileReport:
    """Reconcile every mapping that is not paused, each under its lock.

    A mapping whose lock is held is skipped this time (its pull is running); the next
    run takes it.
    """
    paused = paused_mappings(rt.ctx)
    results: dict[str, Any] = {}
    skipped: list[str] = []
    for name in rt.mapping_names:
        if name in paused:
            continue
        lock = rt.locks.lock(name)
        if not lock.acquire():
            skipped.append(name)
            continue
        try:
            results[name] = pull_engine.reconcile_mapping(rt.ctx, name, now=rt.clock())
        finally:
            lock.release()
            rt.account(one_off=True)
    return ReconcileReport(results=results, skipped=skipped)


def push(rt: Runtime, enqueue: Callable[[str], None] | None = None) -> PushReport:
    """Push the accepted changes waiting in the outbox to the CRM (one pass).

    Args:
        rt: the process's runtime.
        enqueue: queues one mapping's pull; the mappings a pass wrote to are pulled at
            once, so the portal shows CRM-confirmed values within seconds.

    Returns:
        What the pass did.
    """
    try:
        report = push_engine.push_pending(rt.ctx)
    finally:
        rt.account(one_off=True)
    if enqueue is not None and report.touched_mappings:
        queue_pulls(rt, sorted(report.touched_mappings), enqueue)
    return report
