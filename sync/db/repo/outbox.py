"""SQL of the outbox: change sets with their items, claims under a lease, state moves.

Every function runs in the caller's connection; the caller's ``with engine.begin()`` is
the unit of work (a claim in one transaction, the outcome of the attempt in another).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, and_, func, or_, select, update

from sync.db.models import Contact
from sync.db.repo.changes import ITEMS, SETS, from_json, to_json
from sync.db.states import PENDING_STATES, ChangeState, ItemOutcome, Operation

_contacts: Table = Contact.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class ItemView:
    """One CRM write of a change set."""

    id: int
    position: int
    operation: Operation
    sobject: str
    record_sfid: str | None
    external_key: str | None
    field: str | None
    old_value: Any
    new_value: Any
    crm_value: Any
    has_crm_value: bool
    outcome: ItemOutcome | None
    label: str


@dataclass(frozen=True)
class SetView:
    """A change set with its items."""

    id: int
    key: str
    account_sfid: str
    contact_sfid: str
    contact_name: str | None
    typed_name: str
    terms_version: str
    summary: str
    accepted_at: dt.datetime
    state: ChangeState
    attempts: int
    next_attempt_at: dt.datetime | None
    sent_at: dt.datetime | None
    finished_at: dt.datetime | None
    message: str | None
    authorization_sfid: str | None
    client_ip: str | None
    items: list[ItemView] = field(default_factory=list)

    @property
    def conflicts(self) -> list[ItemView]:
        """The items whose CRM value differed from what the admin saw."""
        return [i for i in self.items if i.outcome is ItemOutcome.CONFLICT]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document (``changes --json``)."""
        return {
            "id": self.id,
            "key": self.key,
            "account": self.account_sfid,
            "contact": self.contact_sfid,
            "typed_name": self.typed_name,
            "terms_version": self.terms_version,
            "state": self.state.value,
            "accepted_at": self.accepted_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at.isoformat() if self.next_attempt_at else None,
            "message": self.message,
            "authorization": self.authorization_sfid,
            "items": [
                {
                    "operation": i.operation.value,
                    "object": i.sobject,
                    "record": i.record_sfid,
                    "external_key": i.external_key,
                    "field": i.field,
                    "old": i.old_value,
                    "new": i.new_value,
                    "crm": i.crm_value if i.has_crm_value else None,
                    "outcome": i.outcome.value if i.outcome is not None else None,
                    "label": i.label,
                }
                for i in self.items
            ],
        }


def _items_of(conn: Connection, set_ids: Sequence[int]) -> dict[int, list[ItemView]]:
    out: dict[int, list[ItemView]] = {i: [] for i in set_ids}
    if not set_ids:
        return out
    rows = conn.execute(
        select(ITEMS)
        .where(ITEMS.c.change_set_id.in_(list(set_ids)))
        .order_by(ITEMS.c.change_set_id, ITEMS.c.position)
    ).all()
    for r in rows:
        out[r.change_set_id].append(
            ItemView(
                id=r.id,
                position=r.position,
                operation=Operation(r.operation),
                sobject=r.sobject,
                record_sfid=r.record_sfid,
                external_key=r.external_key,
                field=r.field,
                old_value=from_json(r.old_value),
                new_value=from_json(r.new_value),
                crm_value=from_json(r.crm_value),
                has_crm_value=r.crm_value is not None,
                outcome=ItemOutcome(r.outcome) if r.outcome is not None else None,
                label=r.label,
            )
        )
    return out


def list_sets(
    conn: Connection,
    *,
    state: str | None = None,
    account_sfid: str | None = None,
    set_ids: Sequence[int] | None = None,
    limit: int = 100,
    newest_first: bool = True,
) -> list[SetView]:
    """Change sets with their items, filtered by state, account or ids."""
    name = func.trim(
        func.coalesce(_contacts.c.first_name, "") + " " + func.coalesce(_contacts.c.last_name, "")
    )
    query = select(SETS, name.label("contact_name")).select_from(
        SETS.outerjoin(_contacts, _contacts.c.sfid == SETS.c.contact_sfid)
    )
    if state:
        query = query.where(SETS.c.state == state)
    if account_sfid:
        query = query.where(SETS.c.account_sfid == account_sfid)
    if set_ids is not None:
        query = query.where(SETS.c.id.in_(list(set_ids)))
    query = query.order_by(SETS.c.id.desc() if newest_first else SETS.c.id).limit(limit)
    rows = conn.execute(query).all()
    items = _items_of(conn, [r.id for r in rows])
    return [
        SetView(
            id=r.id,
            key=r.key,
            account_sfid=r.account_sfid,
            contact_sfid=r.contact_sfid,
            contact_name=r.contact_name or None,
            typed_name=r.typed_name,
            terms_version=r.terms_version,
            summary=r.summary,
            accepted_at=r.accepted_at,
            state=ChangeState(r.state),
            attempts=r.attempts,
            next_attempt_at=r.next_attempt_at,
            sent_at=r.sent_at,
            finished_at=r.finished_at,
            message=r.message,
            authorization_sfid=r.authorization_sfid,
            client_ip=r.client_ip,
            items=items[r.id],
        )
        for r in rows
    ]


def get_set(conn: Connection, set_id: int) -> SetView | None:
    """One change set, or None."""
    found = list_sets(conn, set_ids=[set_id], limit=1)
    return found[0] if found else None


def counts(conn: Connection) -> dict[str, int]:
    """Change sets by state, every state present (zeros included)."""
    out = {s.value: 0 for s in ChangeState}
    for state, count in conn.execute(
        select(SETS.c.state, func.count()).group_by(SETS.c.state)
    ).all():
        out[state] = int(count)
    return out


def oldest_pending(conn: Connection) -> dt.datetime | None:
    """When the oldest set still waiting to be pushed was accepted."""
    value: dt.datetime | None = conn.execute(
        select(func.min(SETS.c.accepted_at)).where(
            SETS.c.state.in_([s.value for s in PENDING_STATES])
        )
    ).scalar()
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value


# -- claims and outcomes ---------------------------------------------------------------


@dataclass(frozen=True)
class PendingSet:
    """A set still waiting to reach the CRM, with what decides whether it is due."""

    id: int
    account_sfid: str
    state: ChangeState
    next_attempt_at: dt.datetime | None
    lease_until: dt.datetime | None


def pending_sets(conn: Connection) -> list[PendingSet]:
    """Every accepted or sending set, by account, oldest first within an account."""
    rows = conn.execute(
        select(
            SETS.c.id,
            SETS.c.account_sfid,
            SETS.c.state,
            SETS.c.next_attempt_at,
            SETS.c.lease_until,
        )
        .where(SETS.c.state.in_([s.value for s in PENDING_STATES]))
        .order_by(SETS.c.account_sfid, SETS.c.id)
    ).all()
    return [
        PendingSet(r.id, r.account_sfid, ChangeState(r.state), r.next_attempt_at, r.lease_until)
        for r in rows
    ]


def claim(conn: Connection, set_id: int, now: dt.datetime, lease: float) -> bool:
    """Take ``set_id`` for one push attempt (state sending, a lease, one more attempt).

    The set must be accepted and not waiting for a retry, or sending under an expired
    lease (its push died); the conditional update makes two pushes race safely.

    Returns:
        False when another push took it first or it is not due any more.
    """
    due = or_(
        and_(
            SETS.c.state == ChangeState.ACCEPTED.value,
            or_(SETS.c.next_attempt_at.is_(None), SETS.c.next_attempt_at <= now),
        ),
        and_(
            SETS.c.state == ChangeState.SENDING.value,
            or_(SETS.c.lease_until.is_(None), SETS.c.lease_until <= now),
        ),
    )
    result = conn.execute(
        update(SETS)
        .where(SETS.c.id == set_id, due)
        .values(
            state=ChangeState.SENDING.value,
            lease_until=now + dt.timedelta(seconds=lease),
            attempts=SETS.c.attempts + 1,
            sent_at=func.coalesce(SETS.c.sent_at, now),
            updated_at=now,
        )
    )
    return result.rowcount == 1


def set_item_outcomes(
    conn: Connection, outcomes: Mapping[int, tuple[ItemOutcome, Any, bool]]
) -> None:
    """Record per item: outcome, and the CRM's value when ``has_crm`` (conflicts)."""
    for item_id, (outcome, crm_value, has_crm) in outcomes.items():
        conn.execute(
            update(ITEMS)
            .where(ITEMS.c.id == item_id)
            .values(outcome=outcome.value, crm_value=to_json(crm_value) if has_crm else None)
        )


def finish_set(
    conn: Connection,
    set_id: int,
    state: ChangeState,
    now: dt.datetime,
    *,
    message: str | None,
    authorization_sfid: str | None,
) -> None:
    """Write the end of a push attempt: ``state``, its message, no lease, no retry."""
    conn.execute(
        update(SETS)
        .where(SETS.c.id == set_id)
        .values(
            state=state.value,
            finished_at=now,
            lease_until=None,
            next_attempt_at=None,
            message=message,
            authorization_sfid=authorization_sfid,
            updated_at=now,
        )
    )


def defer(conn: Connection, set_id: int, now: dt.datetime, delay: float, message: str) -> None:
    """Put a set back to accepted, to be tried again after ``delay`` seconds."""
    conn.execute(
        update(SETS)
        .where(SETS.c.id == set_id)
        .values(
            state=ChangeState.ACCEPTED.value,
            lease_until=None,
            next_attempt_at=now + dt.timedelta(seconds=delay),
            message=message,
            updated_at=now,
        )
    )


# -- ops moves -------------------------------------------------------------------------


def state_of(conn: Connection, set_id: int) -> ChangeState | None:
    """The set's state; None when there is no such set."""
    value = conn.execute(select(SETS.c.state).where(SETS.c.id == set_id)).scalar()
    return None if value is None else ChangeState(value)


def move(
    conn: Connection, set_id: int, *, from_state: ChangeState, to: ChangeState, now: dt.datetime
) -> bool:
    """Move a set from ``from_state`` to ``to``, without a lease.

    Cancelled is finished; any other state starts afresh (not finished, due now).

    Returns:
        False when the set was no longer in ``from_state``.
    """
    values: dict[str, Any] = {"state": to.value, "updated_at": now, "lease_until": None}
    if to is ChangeState.CANCELLED:
        values["finished_at"] = now
    else:
        values.update(finished_at=None, next_attempt_at=None)
    moved = conn.execute(
        update(SETS).where(SETS.c.id == set_id, SETS.c.state == from_state.value).values(**values)
    ).rowcount
    return bool(moved == 1)
