"""One pull pass over many mappings: the idle check first, then each changed mapping.

A failure that every mapping would meet the same way (the API limit spent, the CRM
unreachable, the login refused) stops the run; the mappings not yet pulled get that
outcome without being attempted. Other failures stay with their mapping.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace

from sync.context import SyncContext
from sync.crm.errors import (
    CrmConfigurationError,
    CrmError,
    LoginError,
    RequestLimitExceededError,
    TransientCrmError,
)
from sync.db import repo
from sync.pull.engine import ProgressCallback, pull_with_failure, result_of
from sync.pull.idle import ChangeCheck, check_changes, count_full_windows
from sync.pull.reconcile import reconcile_mapping
from sync.pull.result import Outcome, PassResult, ReconcileResult

logger = logging.getLogger("sync.pull")


# Failures after which the other mappings would fail the same way: stop the whole run.
_STOP_ALL = (RequestLimitExceededError, TransientCrmError, LoginError, CrmConfigurationError)


def _not_attempted(
    ctx: SyncContext,
    names: Sequence[str],
    outcome: Outcome,
    error: str,
    started_at: dt.datetime,
) -> list[PassResult]:
    now = ctx.now()
    results = []
    with ctx.engine.begin() as conn:
        for name in names:
            state = repo.get_state(conn, name)
            repo.save_state(conn, name, now, last_outcome=outcome.value, last_error=error)
            results.append(
                result_of(
                    None,
                    name,
                    outcome,
                    started_at=started_at,
                    finished_at=now,
                    api_calls=0,
                    error=error,
                    watermark=state.watermark,
                )
            )
    return results


def _mark_unchanged(
    ctx: SyncContext, names: Sequence[str], started_at: dt.datetime, api_calls: int
) -> list[PassResult]:
    now = ctx.now()
    results = []
    with ctx.engine.begin() as conn:
        states = repo.all_states(conn)
        for i, name in enumerate(names):
            state = states.get(name)
            if state is not None and state.paused:
                results.append(
                    result_of(
                        None,
                        name,
                        Outcome.PAUSED,
                        started_at=started_at,
                        finished_at=now,
                        api_calls=0,
                        watermark=state.watermark,
                    )
                )
                continue
            repo.close_stale_passes(conn, name, now)
            repo.mark_in_step(conn, [name], started_at)
            repo.save_state(
                conn,
                name,
                now,
                last_pass_started_at=started_at,
                last_pass_finished_at=now,
                last_outcome=Outcome.UNCHANGED.value,
                last_error=None,
            )
            results.append(
                result_of(
                    None,
                    name,
                    Outcome.UNCHANGED,
                    started_at=started_at,
                    finished_at=now,
                    # The idle check's calls are shared; they are counted on the first.
                    api_calls=api_calls if i == 0 else 0,
                    watermark=state.watermark if state else None,
                )
            )
    return results


def _paused(ctx: SyncContext, names: Sequence[str]) -> set[str]:
    with ctx.engine.connect() as conn:
        states = repo.all_states(conn)
    return {n for n in names if (state := states.get(n)) is not None and state.paused}


def pull_all(
    ctx: SyncContext,
    *,
    names: Sequence[str] | None = None,
    full: bool = False,
    reconcile: bool = False,
    now: dt.datetime | None = None,
    progress: ProgressCallback | None = None,
    on_result: Callable[[PassResult], None] | None = None,
) -> list[PassResult]:
    """One pass over the mappings (``names``, default all), in mapping order.

    Incremental passes first ask the CRM which mappings changed
    (:func:`~sync.pull.idle.check_changes`) and read only those, each pass handed what
    the check learned for it; the others end
    UNCHANGED. A full pass reads every mapping. REQUEST_LIMIT_EXCEEDED, an unreachable
    CRM or a refused login stop the run: the mappings not yet pulled get the same
    outcome without being attempted.

    Args:
        ctx: the context.
        names: the mappings to pull (default: all).
        full: reload instead of reading the windows after the watermarks.
        reconcile: afterwards, compare each mapping's Ids with the CRM's and tombstone
            rows whose CRM record is gone (:func:`~sync.pull.reconcile.reconcile_mapping`).
        now: the run's start (default: the context's clock).
        progress: called after each stored page.
        on_result: called with each mapping's result as soon as it is known.

    Returns:
        One result per mapping, in mapping order (with its reconcile result attached
        when asked).

    Raises:
        KeyError: an unknown mapping name.
    """
    started_at = now or ctx.now()
    selected = list(names) if names is not None else ctx.mappings.names
    for name in selected:
        ctx.mapping(name)
    results: dict[str, PassResult] = {}

    def done(result: PassResult) -> None:
        results[result.mapping] = result
        if on_result is not None:
            on_result(result)

    to_pull = selected
    check = ChangeCheck(tuple(selected))
    if full:
        try:
            # for the choice between REST and Bulk: five counts per call, not one each
            check = count_full_windows(
                ctx, [n for n in selected if n not in _paused(ctx, selected)]
            )
        except CrmError as exc:
            logger.warning("counting the full windows failed (%s); each pass counts its own", exc)
    if not full:
        calls = ctx.crm.api_calls
        try:
            check = check_changes(ctx, selected, now=started_at)
            to_pull = list(check.changed)
        except _STOP_ALL as exc:
            outcome = (
                Outcome.LIMIT_EXCEEDED
                if isinstance(exc, RequestLimitExceededError)
                else Outcome.FAILED
            )
            for result in _not_attempted(ctx, selected, outcome, str(exc), started_at):
                done(result)
            return [results[n] for n in selected]
        except CrmError as exc:
            logger.warning("idle check failed (%s); pulling every mapping", exc)
            to_pull = selected
        unchanged = [n for n in selected if n not in to_pull]
        for result in _mark_unchanged(ctx, unchanged, started_at, ctx.crm.api_calls - calls):
            done(result)

    stop: tuple[Outcome, str] | None = None
    for name in to_pull:
        if stop is not None:
            for result in _not_attempted(ctx, [name], stop[0], stop[1], started_at):
                done(result)
            continue
        result, failure = pull_with_failure(
            ctx, name, full=full, now=None, progress=progress, hints=check.hint(name)
        )
        done(result)
        if isinstance(failure, _STOP_ALL):
            stop = (result.outcome, f"not attempted: {result.error}")

    ordered = [results[n] for n in selected]
    if reconcile and stop is None:
        ordered = [_with_reconcile(ctx, r) for r in ordered]
    return ordered


def _with_reconcile(ctx: SyncContext, result: PassResult) -> PassResult:
    if result.outcome not in (Outcome.OK, Outcome.UNCHANGED):
        return result
    reconciled: ReconcileResult = reconcile_mapping(ctx, result.mapping)
    return replace(result, reconciled=reconciled)
