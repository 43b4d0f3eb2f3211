"""SQL of the write side before the push: staged changes, new change sets, the audit log.

Every function runs in the caller's connection (its transaction is the caller's unit of
work). Values of staged changes and change items are stored as JSON text
(:func:`to_json` / :func:`from_json`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, Table, delete, exists, func, insert, select, update

from sync.db.models import (
    Account,
    AccountContactRole,
    AuditEntry,
    ChangeItem,
    ChangeSet,
    Contact,
    PaymentMethod,
    StagedChange,
)
from sync.db.states import ChangeKind, ChangeState, ItemOutcome, Operation

STAGED: Table = StagedChange.__table__  # type: ignore[assignment]
SETS: Table = ChangeSet.__table__  # type: ignore[assignment]
ITEMS: Table = ChangeItem.__table__  # type: ignore[assignment]
AUDIT: Table = AuditEntry.__table__  # type: ignore[assignment]
_pm: Table = PaymentMethod.__table__  # type: ignore[assignment]
_acr: Table = AccountContactRole.__table__  # type: ignore[assignment]
_acc: Table = Account.__table__  # type: ignore[assignment]
_con: Table = Contact.__table__  # type: ignore[assignment]


def to_json(value: Any) -> str:
    """A change value as stored (JSON)."""
    return json.dumps(value, sort_keys=True, default=str)


def from_json(text: str | None) -> Any:
    """A stored change value."""
    return None if text is None else json.loads(text)


def audit(
    conn: Connection,
    *,
    actor: str,
    action: str,
    now: dt.datetime,
    account_sfid: str | None = None,
    change_set_id: int | None = None,
    detail: str | None = None,
) -> None:
    """Append one entry to the audit log (never card data)."""
    conn.execute(
        insert(AUDIT).values(
            at=now,
            actor=actor[:120],
            action=action,
            account_sfid=account_sfid,
            change_set_id=change_set_id,
            detail=detail,
        )
    )


# -- staged changes --------------------------------------------------------------------


@dataclass(frozen=True)
class StagedView:
    """A staged change as stored (and as the portal lists it)."""

    id: int
    kind: ChangeKind
    target: str | None
    payload: dict[str, Any]
    description: str
    created_at: dt.datetime


def list_staged(conn: Connection, contact_sfid: str, account_sfid: str) -> list[StagedView]:
    """The contact's staged changes for the account, oldest first."""
    rows = conn.execute(
        select(STAGED)
        .where(STAGED.c.contact_sfid == contact_sfid, STAGED.c.account_sfid == account_sfid)
        .order_by(STAGED.c.id)
    ).all()
    return [
        StagedView(
            r.id, ChangeKind(r.kind), r.target, json.loads(r.payload), r.description, r.created_at
        )
        for r in rows
    ]


def count_staged(conn: Connection, contact_sfid: str, account_sfid: str) -> int:
    """How many changes the contact has staged for the account (without reading them)."""
    return int(
        conn.execute(
            select(func.count())
            .select_from(STAGED)
            .where(STAGED.c.contact_sfid == contact_sfid, STAGED.c.account_sfid == account_sfid)
        ).scalar_one()
    )


def add_staged(
    conn: Connection,
    contact_sfid: str,
    account_sfid: str,
    kind: ChangeKind,
    target: str | None,
    payload: dict[str, Any],
    description: str,
    now: dt.datetime,
) -> None:
    """Write one staged change."""
    conn.execute(
        insert(STAGED).values(
            account_sfid=account_sfid,
            contact_sfid=contact_sfid,
            kind=kind.value,
            target=target,
            payload=json.dumps(payload, sort_keys=True),
            description=description,
            created_at=now,
        )
    )


def delete_staged(conn: Connection, staged_ids: Sequence[int]) -> int:
    """Delete staged changes by id.

    Returns:
        How many rows were deleted (fewer than asked when another transaction took some).
    """
    if not staged_ids:
        return 0
    result = conn.execute(delete(STAGED).where(STAGED.c.id.in_(list(staged_ids))))
    return int(result.rowcount)


def staged_description(
    conn: Connection, staged_id: int, contact_sfid: str, account_sfid: str
) -> str | None:
    """The description of one staged change of this contact and account; None if none."""
    row = conn.execute(
        select(STAGED.c.description).where(
            STAGED.c.id == staged_id,
            STAGED.c.contact_sfid == contact_sfid,
            STAGED.c.account_sfid == account_sfid,
        )
    ).first()
    return None if row is None else str(row.description)


@dataclass(frozen=True)
class RevokedStaged:
    """A staged change whose contact is no longer Billing Admin of its account."""

    id: int
    contact_sfid: str
    account_sfid: str


def revoked_staged(conn: Connection, role: str) -> list[RevokedStaged]:
    """Staged changes whose contact holds no live ``role`` on a live account any more."""
    still_admin = exists().where(
        _acr.c.contact_sfid == STAGED.c.contact_sfid,
        _acr.c.account_sfid == STAGED.c.account_sfid,
        _acr.c.role == role,
        _acr.c.is_deleted.is_(False),
        exists().where(_acc.c.sfid == _acr.c.account_sfid, _acc.c.is_deleted.is_(False)),
        exists().where(_con.c.sfid == _acr.c.contact_sfid, _con.c.is_deleted.is_(False)),
    )
    rows = conn.execute(
        select(STAGED.c.id, STAGED.c.contact_sfid, STAGED.c.account_sfid).where(~still_admin)
    ).all()
    return [RevokedStaged(r.id, r.contact_sfid, r.account_sfid) for r in rows]


@dataclass(frozen=True)
class MethodRow:
    """A live mirrored payment method, as the write side reads it."""

    sfid: str
    is_default: bool
    status: str | None
    brand: str | None
    last_four: str | None
    exp_month: int | None
    exp_year: int | None


def live_payment_methods(conn: Connection, account_sfid: str) -> list[MethodRow]:
    """The account's payment methods that are not deleted, by sfid."""
    rows = conn.execute(
        select(
            _pm.c.sfid,
            _pm.c.is_default,
            _pm.c.status,
            _pm.c.card_type,
            _pm.c.type,
            _pm.c.card_last_four,
            _pm.c.card_expiration_month,
            _pm.c.card_expiration_year,
        )
        .where(_pm.c.account_sfid == account_sfid, _pm.c.is_deleted.is_(False))
        .order_by(_pm.c.sfid)
    ).all()
    return [
        MethodRow(
            sfid=r.sfid,
            is_default=bool(r.is_default),
            status=r.status,
            brand=r.card_type or r.type,
            last_four=r.card_last_four,
            exp_month=r.card_expiration_month,
            exp_year=r.card_expiration_year,
        )
        for r in rows
    ]


# -- new change sets -------------------------------------------------------------------


class PlannedItem(Protocol):
    """One CRM write of a change set as planned (:class:`sync.changes.plan.Item`)."""

    @property
    def operation(self) -> Operation: ...
    @property
    def sobject(self) -> str: ...
    @property
    def record_sfid(self) -> str | None: ...
    @property
    def external_key(self) -> str | None: ...
    @property
    def field(self) -> str | None: ...
    @property
    def old_value(self) -> Any: ...
    @property
    def new_value(self) -> Any: ...
    @property
    def label(self) -> str: ...


@dataclass(frozen=True)
class NewSet:
    """An accepted change set before it is stored."""

    key: str
    account_sfid: str
    contact_sfid: str
    typed_name: str
    terms_version: str
    summary: str
    staged: list[dict[str, Any]]
    """The staged changes it was accepted from (kind, target, payload, description)."""
    accepted_at: dt.datetime
    client_ip: str | None
    user_agent: str | None


def insert_set(conn: Connection, new: NewSet, items: Sequence[PlannedItem]) -> int:
    """Store an accepted change set with its items (positions from 1).

    Returns:
        The change set's id.
    """
    set_id = conn.execute(
        insert(SETS)
        .values(
            key=new.key,
            account_sfid=new.account_sfid,
            contact_sfid=new.contact_sfid,
            typed_name=new.typed_name,
            terms_version=new.terms_version,
            summary=new.summary,
            staged=json.dumps(new.staged),
            accepted_at=new.accepted_at,
            client_ip=(new.client_ip or None) and new.client_ip[:64],
            user_agent=(new.user_agent or None) and new.user_agent[:512],
            state=ChangeState.ACCEPTED.value,
            attempts=0,
            updated_at=new.accepted_at,
        )
        .returning(SETS.c.id)
    ).scalar_one()
    if items:
        conn.execute(
            insert(ITEMS),
            [
                {
                    "change_set_id": set_id,
                    "position": position,
                    "operation": item.operation.value,
                    "sobject": item.sobject,
                    "record_sfid": item.record_sfid,
                    "external_key": item.external_key,
                    "field": item.field,
                    "old_value": to_json(item.old_value),
                    "new_value": to_json(item.new_value),
                    "label": item.label,
                }
                for position, item in enumerate(items, start=1)
            ],
        )
    return int(set_id)


# -- re-staging a conflicted or failed set ---------------------------------------------


@dataclass(frozen=True)
class StoredSet:
    """What re-staging reads of a set: its state and the staged changes it came from."""

    state: ChangeState
    staged: list[dict[str, Any]]


def set_in_states(
    conn: Connection, set_id: int, account_sfid: str, states: Sequence[ChangeState]
) -> StoredSet | None:
    """The account's set ``set_id`` when it is in one of ``states``; else None."""
    row = conn.execute(
        select(SETS.c.staged, SETS.c.state).where(
            SETS.c.id == set_id,
            SETS.c.account_sfid == account_sfid,
            SETS.c.state.in_([s.value for s in states]),
        )
    ).first()
    if row is None:
        return None
    return StoredSet(ChangeState(row.state), json.loads(row.staged or "[]"))


def crm_values_of_record(conn: Connection, set_id: int, record_sfid: str) -> dict[str, Any]:
    """The CRM values a push recorded for one record's fields, by lower-case field name."""
    return {
        (r.field or "").lower(): from_json(r.crm_value)
        for r in conn.execute(
            select(ITEMS.c.field, ITEMS.c.crm_value).where(
                ITEMS.c.change_set_id == set_id,
                ITEMS.c.record_sfid == record_sfid,
                ITEMS.c.crm_value.is_not(None),
            )
        )
    }


def conflicted_checks(conn: Connection, set_id: int) -> dict[tuple[str, str], Any]:
    """The CRM value of every check item that conflicted, by (record, lower-case field)."""
    return {
        (r.record_sfid, (r.field or "").lower()): from_json(r.crm_value)
        for r in conn.execute(
            select(ITEMS.c.record_sfid, ITEMS.c.field, ITEMS.c.crm_value).where(
                ITEMS.c.change_set_id == set_id,
                ITEMS.c.operation == Operation.CHECK.value,
                ITEMS.c.outcome == ItemOutcome.CONFLICT.value,
            )
        )
    }


def cancel_set(conn: Connection, set_id: int, now: dt.datetime, message: str) -> None:
    """Mark a set cancelled (finished), with the reason."""
    conn.execute(
        update(SETS)
        .where(SETS.c.id == set_id)
        .values(
            state=ChangeState.CANCELLED.value,
            finished_at=now,
            updated_at=now,
            message=message,
        )
    )
