"""One push pass: claim due change sets and send each as ONE atomic Composite Graph.

For each set, in acceptance order per account:

1. read the current CRM values of the fields it updates (one /composite of GETs per 25
   records, one API call each; skipped when the set only creates records);
2. decide per field (:func:`sync.changes.rules.decide`): the CRM still holds what the
   admin saw -> send; it holds the new value -> nothing to do; anything else -> the set is
   a conflict and nothing is sent;
3. send the Billing_Authorization__c upsert, the updates (each with ``If-Unmodified-Since``
   the LastModifiedDate just read) and the creates (upserts by Billing_Sync_Key__c) as
   one graph of ``/composite/graph`` (:class:`~sync.crm.graph.AtomicWrite`): the CRM
   applies all of it or nothing. A 412 means someone wrote the record between 1 and 3:
   read again.

Every write is an upsert on a key derived from the set, or a conditional update whose
second sending finds "nothing to do": a set resent after a timeout, a crash or a
redelivered task changes nothing twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from sync.changes import outbox
from sync.changes.plan import WriteTargets, authorization_record
from sync.changes.pricing import money_text
from sync.changes.rules import (
    ChangeState,
    Decision,
    ItemOutcome,
    Operation,
    PushOutcome,
    decide,
    external_key,
    same_value,
    shown,
)
from sync.changes.staging import drop_revoked
from sync.context import SyncContext
from sync.crm.composite import RecordRead
from sync.crm.errors import (
    CrmError,
    CrmRequestError,
    RequestLimitExceededError,
)
from sync.crm.graph import AtomicWrite
from sync.db import service_state
from sync.mapping.transform import parse_sf_datetime

log = logging.getLogger(__name__)

#: How long the push rests after the org's daily API allowance ran out.
LIMIT_PAUSE = 300.0
#: Reads again after a 412 (someone wrote between our read and our write).
MAX_REREADS = 3
RETRY_BASE = 1.0
RETRY_MAX = 300.0


class _Reread(Exception):
    """A conditional update answered 412: read the current values again."""


@dataclass
class PushReport:
    """What one pass did."""

    pushed: int = 0
    conflicts: int = 0
    failed: int = 0
    deferred: int = 0
    pending: int = 0
    dropped_staged: int = 0
    api_calls: int = 0
    paused_until: dt.datetime | None = None
    applied_sets: list[int] = field(default_factory=list)
    touched_mappings: set[str] = field(default_factory=set)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``billing-sync push --json``."""
        return {
            "pushed": self.pushed,
            "conflicts": self.conflicts,
            "failed": self.failed,
            "deferred": self.deferred,
            "pending": self.pending,
            "dropped_staged": self.dropped_staged,
            "api_calls": self.api_calls,
            "paused_until": self.paused_until.isoformat() if self.paused_until else None,
            "applied": self.applied_sets,
            "pull": sorted(self.touched_mappings),
        }


def retry_delay(attempts: int) -> float:
    """Seconds before a set that failed transiently is tried again (jittered, capped)."""
    step = min(RETRY_MAX, RETRY_BASE * 2.0 ** max(0, attempts - 1))
    return step * (0.5 + random.random() / 2)


def push_pending(
    ctx: SyncContext, *, now: dt.datetime | None = None, limit: int = 200
) -> PushReport:
    """One pass over the outbox: every due set is sent, accounts in acceptance order.

    Args:
        ctx: the sync context (database, CRM client, mappings).
        now: the pass's time (default: the context clock).
        limit: at most this many sets per pass; the next pass takes the rest.

    Returns:
        What the pass did; ``touched_mappings`` names the mappings to pull now.

    Raises:
        CrmError, SQLAlchemyError: only for trouble outside one set's push (a set that
            fails is deferred, failed or conflicted, never lost).
    """
    started = now or ctx.now()
    report = PushReport()
    calls_before = ctx.crm.api_calls
    with ctx.engine.begin() as conn:
        report.dropped_staged = drop_revoked(conn, ctx.settings.billing_admin_role, started)
    report.paused_until = outbox.push_paused_until(ctx.engine, started)
    if report.paused_until is None:
        targets = WriteTargets.from_mappings(ctx.mappings)
        tried: set[int] = set()
        while len(tried) < limit:
            clock = ctx.now() if now is None else started
            with ctx.engine.connect() as conn:
                due = [i for i in outbox.due_sets(conn, clock) if i not in tried]
            if not due:
                break
            for set_id in due[: limit - len(tried)]:
                tried.add(set_id)
                if not _push_one(ctx, targets, set_id, report, now):
                    break
            if report.paused_until is not None:
                break
    with ctx.engine.connect() as conn:
        counts = outbox.counts(conn)
    report.pending = counts[ChangeState.ACCEPTED] + counts[ChangeState.SENDING]
    report.api_calls = ctx.crm.api_calls - calls_before
    return report


def _mapping_of(ctx: SyncContext, sobject: str) -> str | None:
    for mapping in ctx.mappings:
        if mapping.crm_object.lower() == sobject.lower():
            return mapping.name
    return None


def _push_one(
    ctx: SyncContext,
    targets: WriteTargets,
    set_id: int,
    report: PushReport,
    now: dt.datetime | None,
) -> bool:
    """Claim and send one set; False when the pass must stop (API limit)."""
    claimed_at = now or ctx.now()
    with ctx.engine.begin() as conn:
        if not outbox.claim(conn, set_id, claimed_at, ctx.settings.push_lease):
            return True
        view = outbox.get_set(conn, set_id)
    assert view is not None
    try:
        outcome = _send(ctx, targets, view)
    except RequestLimitExceededError as exc:
        until = claimed_at + dt.timedelta(seconds=LIMIT_PAUSE)
        service_state.write(ctx.engine, outbox.PAUSE_KEY, {"until": until.isoformat()}, claimed_at)
        with ctx.engine.begin() as conn:
            outcome_now = now or ctx.now()
            outbox.defer(conn, set_id, outcome_now, LIMIT_PAUSE, f"paused: {exc.message}")
        log.error("push paused until %s: the org's API limit is spent", until.isoformat())
        report.deferred += 1
        report.paused_until = until
        return False
    except CrmRequestError as exc:
        outcome = _Outcome(PushOutcome.FAILED, f"The CRM refused the changes: {exc.message}")
    except CrmError as exc:
        delay = retry_delay(view.attempts)
        with ctx.engine.begin() as conn:
            outbox.defer(conn, set_id, now or ctx.now(), delay, f"will retry: {exc}")
        log.warning("change set %s: %s; retrying in %.0f s", set_id, exc, delay)
        report.deferred += 1
        return True
    finished_at = now or ctx.now()
    with ctx.engine.begin() as conn:
        outbox.set_item_outcomes(conn, outcome.items)
        final_state = outcome.result.state
        if final_state is None:
            outbox.defer(
                conn, set_id, finished_at, retry_delay(view.attempts), outcome.message or ""
            )
        else:
            outbox.finish(
                conn,
                set_id,
                final_state,
                finished_at,
                message=outcome.message,
                authorization_sfid=outcome.authorization_sfid,
            )
    if outcome.result is PushOutcome.APPLIED:
        report.pushed += 1
        report.applied_sets.append(set_id)
        for sobject in {i.sobject for i in view.items} | {targets.authorizations.crm_object}:
            name = _mapping_of(ctx, sobject)
            if name:
                report.touched_mappings.add(name)
        log.info("change set %s applied (%d items)", set_id, len(view.items))
    elif outcome.result is PushOutcome.CONFLICT:
        report.conflicts += 1
        for sobject in {i.sobject for i in view.items if i.operation is Operation.CHECK}:
            name = _mapping_of(ctx, sobject)
            if name:
                report.touched_mappings.add(name)
        log.info("change set %s: conflict: %s", set_id, outcome.message)
    elif outcome.result is PushOutcome.FAILED:
        report.failed += 1
        log.warning("change set %s failed: %s", set_id, outcome.message)
    else:
        report.deferred += 1
    return True


@dataclass
class _Outcome:
    result: PushOutcome
    message: str | None = None
    authorization_sfid: str | None = None
    items: dict[int, tuple[ItemOutcome, Any, bool]] = field(default_factory=dict)


@dataclass
class _Current:
    values: dict[str, Any]
    last_modified: dt.datetime | None
    exists: bool = True


def _lower_keys(record: dict[str, Any]) -> dict[str, Any]:
    return {k.lower(): v for k, v in record.items() if k != "attributes"}


def _read_current(ctx: SyncContext, view: outbox.SetView) -> dict[tuple[str, str], _Current]:
    """The CRM's current values of every record the set updates (one API call per 25)."""
    wanted: dict[tuple[str, str], set[str]] = {}
    for item in view.items:
        if (
            item.operation in (Operation.UPDATE, Operation.CHECK)
            and item.record_sfid
            and item.field
        ):
            wanted.setdefault((item.sobject, item.record_sfid), set()).add(item.field)
    reads = [
        RecordRead(sobject, record_id, (*sorted(fields), "LastModifiedDate"))
        for (sobject, record_id), fields in wanted.items()
    ]
    out: dict[tuple[str, str], _Current] = {}
    for answer in ctx.crm.get_many(reads):
        key = (answer.request.sobject, answer.request.record_id)
        if not answer.found:
            out[key] = _Current({}, None, exists=False)
            continue
        if answer.error is not None:
            raise answer.error
        record = _lower_keys(answer.record or {})
        stamp = record.get("lastmodifieddate")
        out[key] = _Current(record, parse_sf_datetime(stamp) if isinstance(stamp, str) else None)
    return out


def _check(item: outbox.ItemView, cur: _Current) -> tuple[Any, str] | None:
    """None when the CRM still holds what the admin accepted; else (its value, why).

    A price is compared as an exact decimal: the CRM's number against the text of the
    unit price the admin saw.
    """
    if not cur.exists:
        return None, f"{item.label}: the price was deleted in the CRM"
    value = cur.values.get((item.field or "").lower())
    if isinstance(item.old_value, str):
        try:
            same = value is not None and Decimal(str(value)) == Decimal(item.old_value)
        except InvalidOperation:
            same = False
        if same:
            return None
        now = str(Decimal(str(value))) if isinstance(value, int | float) else value
        shown_now = money_text(Decimal(now)) if isinstance(now, str) and now else "(none)"
        return now, (
            f"{item.label}: the price changed in the CRM, from "
            f"{money_text(Decimal(item.old_value))} to {shown_now}"
        )
    if same_value(value, item.old_value):
        return None
    return value, f"{item.label}: no longer, the CRM now has {shown(value)}"


def _without(record: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k.lower() != name.lower()}


def _send(ctx: SyncContext, targets: WriteTargets, view: outbox.SetView) -> _Outcome:
    for _ in range(MAX_REREADS):
        try:
            return _attempt(ctx, targets, view)
        except _Reread:
            log.info("change set %s: a record changed during the push; reading again", view.id)
    return _Outcome(
        PushOutcome.DEFERRED, "The CRM records kept changing during the push; trying again."
    )


def _attempt(ctx: SyncContext, targets: WriteTargets, view: outbox.SetView) -> _Outcome:
    current = _read_current(ctx, view)
    outcomes: dict[int, tuple[ItemOutcome, Any, bool]] = {}
    updates: dict[tuple[str, str], dict[str, Any]] = {}
    conflicts: list[str] = []
    for item in view.items:
        if item.operation is Operation.CHECK and item.record_sfid and item.field:
            problem = _check(item, current[(item.sobject, item.record_sfid)])
            if problem is None:
                outcomes[item.id] = (ItemOutcome.UNCHANGED, None, False)
            else:
                outcomes[item.id] = (ItemOutcome.CONFLICT, problem[0], True)
                conflicts.append(problem[1])
            continue
        if item.operation is not Operation.UPDATE or not item.record_sfid or not item.field:
            continue
        cur = current[(item.sobject, item.record_sfid)]
        if not cur.exists:
            outcomes[item.id] = (ItemOutcome.CONFLICT, None, True)
            conflicts.append(f"{item.label}: the record was deleted in the CRM")
            continue
        value = cur.values.get(item.field.lower())
        decision = decide(item.old_value, item.new_value, value)
        if decision is Decision.CONFLICT:
            outcomes[item.id] = (ItemOutcome.CONFLICT, value, True)
            conflicts.append(f"{item.label}: the CRM now has {shown(value)}")
        elif decision is Decision.NOTHING:
            outcomes[item.id] = (ItemOutcome.UNCHANGED, None, False)
        else:
            updates.setdefault((item.sobject, item.record_sfid), {})[item.field] = item.new_value
            outcomes[item.id] = (ItemOutcome.APPLIED, None, False)
    if conflicts:
        for item in view.items:
            if item.id not in outcomes or outcomes[item.id][0] is not ItemOutcome.CONFLICT:
                outcomes[item.id] = (ItemOutcome.NOT_SENT, None, False)
        return _Outcome(
            PushOutcome.CONFLICT,
            "Changed in the CRM since you saw it: " + "; ".join(conflicts),
            items=outcomes,
        )
    auth = targets.authorizations
    key_field = targets.crm_field(auth, "sync_key")
    set_key = external_key(view.key)
    record = authorization_record(
        targets,
        account_sfid=view.account_sfid,
        contact_sfid=view.contact_sfid,
        typed_name=view.typed_name,
        accepted_at=view.accepted_at,
        summary=view.summary,
        key=set_key,
    )
    write = AtomicWrite()
    authorization = write.upsert(
        auth.crm_object, key_field, set_key, record, label="Billing authorization"
    )
    for (sobject, record_id), fields in updates.items():
        write.update(
            sobject,
            record_id,
            fields,
            label=f"{sobject} {record_id}",
            unmodified_since=current[(sobject, record_id)].last_modified,
        )
    for item in view.items:
        if item.operation is not Operation.CREATE or not item.external_key or not item.field:
            continue
        # Later items name this one as @{create<position>.id} (see sync.changes.plan).
        write.upsert(
            item.sobject,
            item.field,
            item.external_key,
            dict(item.new_value),
            label=item.label,
            reference=f"create{item.position}",
        )
        outcomes[item.id] = (ItemOutcome.APPLIED, None, False)
    too_big = write.shape.problem()
    if too_big is not None:
        return _Outcome(
            PushOutcome.FAILED,
            f"This change set cannot be sent as one all-or-nothing request: {too_big}.",
            items=_failed(outcomes),
        )
    result = ctx.crm.write_atomic(write)
    if result.stale:
        raise _Reread
    if not result.committed:
        failures = []
        for failed in result.results:
            if failed.error is None:
                continue
            if not isinstance(failed.error, CrmRequestError):
                raise failed.error
            failures.append(f"{failed.label}: {failed.error.error_code}: {failed.error.message}")
        if not failures:
            raise CrmError("the CRM applied none of the change set and named no reason")
        return _Outcome(PushOutcome.FAILED, "; ".join(failures), items=_failed(outcomes))
    return _Outcome(PushOutcome.APPLIED, None, result.get(authorization).record_id, outcomes)


def _failed(
    outcomes: dict[int, tuple[ItemOutcome, Any, bool]],
) -> dict[int, tuple[ItemOutcome, Any, bool]]:
    """Nothing was written: an item that would have been applied was not sent."""
    return {
        k: (ItemOutcome.NOT_SENT if v[0] is ItemOutcome.APPLIED else v[0], v[1], v[2])
        for k, v in outcomes.items()
    }
