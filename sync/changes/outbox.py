"""The outbox: accepted change sets, their states, and what ops can do with them.

A set moves accepted -> sending (claimed by one push, under a lease) -> applied |
conflict | failed; ops may cancel a set that is not applied, or send a conflicted or
failed one again. Sets of one account are pushed in acceptance order: only the oldest
pending set of an account is ever claimed. The SQL is :mod:`sync.db.repo.outbox`'s; the
reads and the claim are re-exported here as the outbox's own.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, Engine

from sync.changes.rules import FINAL_STATES, ChangeState
from sync.db import service_state
from sync.db.repo import outbox as repo
from sync.db.repo.changes import audit
from sync.db.repo.outbox import (
    ItemView,
    SetView,
    claim,
    counts,
    defer,
    get_set,
    list_sets,
    oldest_pending,
    set_item_outcomes,
)

__all__ = [
    "PAUSE_KEY",
    "ItemView",
    "OutboxError",
    "SetView",
    "cancel",
    "claim",
    "counts",
    "defer",
    "due_sets",
    "finish",
    "get_set",
    "list_sets",
    "oldest_pending",
    "push_paused_until",
    "retry",
    "set_item_outcomes",
    "status",
]


class OutboxError(ValueError):
    """An ops action that does not apply to the set's state; the message says why."""


PAUSE_KEY = "push:paused_until"


def push_paused_until(engine: Engine, now: dt.datetime) -> dt.datetime | None:
    """When the push may run again after REQUEST_LIMIT_EXCEEDED (None: not paused)."""
    return paused_until(service_state.read(engine, PAUSE_KEY), now)


def paused_until(doc: dict[str, Any] | None, now: dt.datetime) -> dt.datetime | None:
    """:func:`push_paused_until` from the stored document (``PAUSE_KEY``, None: none)."""
    if not doc or not doc.get("until"):
        return None
    until = dt.datetime.fromisoformat(doc["until"])
    return until if until > now else None


def status(engine: Engine, now: dt.datetime) -> dict[str, Any]:
    """The outbox part of ``billing-sync status``: counts by state, oldest pending age."""
    with engine.connect() as conn:
        by_state = counts(conn)
        oldest = oldest_pending(conn)
    paused = push_paused_until(engine, now)
    return {
        "counts": by_state,
        "oldest_pending_seconds": (now - oldest).total_seconds() if oldest else None,
        "paused_until": paused.isoformat() if paused else None,
    }


# -- the push's side -------------------------------------------------------------------


def due_sets(conn: Connection, now: dt.datetime) -> list[int]:
    """Sets a push may claim now: per account, the oldest pending set, if it is due.

    Due means accepted and not waiting for a retry, or sending under an expired lease
    (its push died).
    """
    seen: set[str] = set()
    due: list[int] = []
    for pending in repo.pending_sets(conn):
        if pending.account_sfid in seen:
            continue
        seen.add(pending.account_sfid)
        if pending.state is ChangeState.ACCEPTED:
            if pending.next_attempt_at is None or pending.next_attempt_at <= now:
                due.append(pending.id)
        elif pending.lease_until is None or pending.lease_until <= now:
            due.append(pending.id)
    return sorted(due)


def finish(
    conn: Connection,
    set_id: int,
    state: ChangeState,
    now: dt.datetime,
    *,
    message: str | None = None,
    authorization_sfid: str | None = None,
) -> None:
    """End a push attempt in a final state (applied, conflict or failed), audited."""
    assert state in FINAL_STATES
    repo.finish_set(
        conn, set_id, state, now, message=message, authorization_sfid=authorization_sfid
    )
    audit(
        conn,
        actor="billing-sync",
        action=f"push_{state.value}",
        now=now,
        change_set_id=set_id,
        detail=message,
    )


# -- ops -------------------------------------------------------------------------------


def retry(conn: Connection, set_id: int, actor: str, now: dt.datetime) -> None:
    """Send a conflicted or failed set again (its conflicts are decided anew).

    Raises:
        OutboxError: no such set, or it is not conflicted or failed.
    """
    _ops_move(
        conn,
        set_id,
        actor,
        now,
        allowed=(ChangeState.CONFLICT, ChangeState.FAILED),
        to=ChangeState.ACCEPTED,
    )


def cancel(conn: Connection, set_id: int, actor: str, now: dt.datetime) -> None:
    """Cancel a set that is not applied: it is never pushed.

    Raises:
        OutboxError: no such set, or it is applied, already cancelled or being sent.
    """
    _ops_move(
        conn,
        set_id,
        actor,
        now,
        allowed=(ChangeState.ACCEPTED, ChangeState.CONFLICT, ChangeState.FAILED),
        to=ChangeState.CANCELLED,
    )


def _ops_move(
    conn: Connection,
    set_id: int,
    actor: str,
    now: dt.datetime,
    *,
    allowed: tuple[ChangeState, ...],
    to: ChangeState,
) -> None:
    state = repo.state_of(conn, set_id)
    if state is None:
        raise OutboxError(f"no change set {set_id}")
    if state not in allowed:
        names = ", ".join(s.value for s in allowed)
        raise OutboxError(
            f"change set {set_id} is {state.value}; only {names} sets can be {to.value}"
        )
    if not repo.move(conn, set_id, from_state=state, to=to, now=now):
        raise OutboxError(f"change set {set_id} changed state meanwhile; look again")
    audit(
        conn,
        actor=actor,
        action="retry" if to is ChangeState.ACCEPTED else "cancel",
        now=now,
        change_set_id=set_id,
        detail=f"{state.value} -> {to.value}",
    )
