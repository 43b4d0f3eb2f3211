"""Staged changes and their acceptance, on the billing database.

Staged changes belong to one contact and one account. :func:`accept` turns all of them
into one change set with its items, in the caller's transaction, after checking the
typed name; what the change set will write is planned from the *current* mirrored rows
(:mod:`sync.changes.plan`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, delete, exists, insert, select

from sync.changes.plan import (
    MethodState,
    PlanError,
    Staged,
    project_methods,
    write_shape,
)
from sync.changes.rules import (
    CardWords,
    ChangeKind,
    add_card_words,
    field_change_words,
    make_default_words,
    remove_words,
    same_value,
)
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
from sync.payments import CardToken

STAGED: Table = StagedChange.__table__  # type: ignore[assignment]
SETS: Table = ChangeSet.__table__  # type: ignore[assignment]
ITEMS: Table = ChangeItem.__table__  # type: ignore[assignment]
_audit: Table = AuditEntry.__table__  # type: ignore[assignment]
_pm: Table = PaymentMethod.__table__  # type: ignore[assignment]


class StagingError(ValueError):
    """A change cannot be staged or accepted; the message is for the Billing Admin."""


class NotFoundError(LookupError):
    """The payment method or staged change is not the account's (answered as 404)."""


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
        insert(_audit).values(
            at=now,
            actor=actor[:120],
            action=action,
            account_sfid=account_sfid,
            change_set_id=change_set_id,
            detail=detail,
        )
    )


# -- reading ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StagedView:
    """A staged change as the portal lists it."""

    id: int
    kind: ChangeKind
    target: str | None
    payload: dict[str, Any]
    description: str
    created_at: dt.datetime

    def as_staged(self) -> Staged:
        """The plan's view of this change."""
        return Staged(self.id, self.kind, self.target, self.payload, self.description)


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


def mirrored_methods(conn: Connection, account_sfid: str) -> list[MethodState]:
    """The account's live payment methods as the plan sees them."""
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
        MethodState(
            ref=r.sfid,
            is_default=bool(r.is_default),
            status=r.status,
            words=CardWords(
                r.card_type or r.type,
                r.card_last_four,
                r.card_expiration_month,
                r.card_expiration_year,
            ),
        )
        for r in rows
    ]


# -- staging ---------------------------------------------------------------------------


def insert_staged(
    conn: Connection,
    contact_sfid: str,
    account_sfid: str,
    kind: ChangeKind,
    target: str | None,
    payload: dict[str, Any],
    description: str,
    now: dt.datetime,
) -> None:
    """Write one staged change and its audit entry."""
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
    audit(
        conn,
        actor=f"contact:{contact_sfid}",
        action="stage",
        now=now,
        account_sfid=account_sfid,
        detail=description,
    )


def _check_room(
    conn: Connection, existing: Sequence[StagedView], account_sfid: str, extra: Sequence[Staged]
) -> None:
    """Refuse a change when the set it joins could not be sent as one CRM request."""
    staged = [s.as_staged() for s in existing] + list(extra)
    try:
        shape = write_shape(mirrored_methods(conn, account_sfid), staged)
    except PlanError:
        return  # the plan check that follows names the broken rule
    problem = shape.problem()
    if problem is not None:
        raise StagingError(
            f"These changes cannot be accepted together: {problem}. Accept or discard "
            "the pending changes first."
        )


@dataclass(frozen=True)
class FieldEdit:
    """One account field as the admin submitted it."""

    column: str
    label: str
    saw: Any
    new: Any


def stage_account_fields(
    conn: Connection,
    contact_sfid: str,
    account_sfid: str,
    edits: Sequence[FieldEdit],
    now: dt.datetime,
) -> int:
    """Stage the account fields that differ from what the admin saw.

    A field staged again keeps the value first seen and takes the new value; a field
    set back to the value seen is unstaged.

    Returns:
        How many fields are now staged differently than before.
    """
    existing = {
        s.target: s
        for s in list_staged(conn, contact_sfid, account_sfid)
        if s.kind is ChangeKind.ACCOUNT_FIELD
    }
    new_fields = [e for e in edits if e.column not in existing and not same_value(e.saw, e.new)]
    _check_room(
        conn,
        list_staged(conn, contact_sfid, account_sfid),
        account_sfid,
        [Staged(0, ChangeKind.ACCOUNT_FIELD, e.column, {}, "") for e in new_fields],
    )
    changed = 0
    for edit in edits:
        before = existing.get(edit.column)
        saw = before.payload["saw"] if before else edit.saw
        if before is not None and same_value(before.payload["new"], edit.new):
            continue
        if before is not None:
            conn.execute(delete(STAGED).where(STAGED.c.id == before.id))
        if same_value(saw, edit.new):
            changed += before is not None
            continue
        payload = {"label": edit.label, "saw": saw, "new": edit.new}
        insert_staged(
            conn,
            contact_sfid,
            account_sfid,
            ChangeKind.ACCOUNT_FIELD,
            edit.column,
            payload,
            field_change_words(edit.label, saw, edit.new),
            now,
        )
        changed += 1
    return changed


def _check_plan(
    conn: Connection, contact_sfid: str, account_sfid: str, extra: Staged | None
) -> None:
    staged = [s.as_staged() for s in list_staged(conn, contact_sfid, account_sfid)]
    if extra is not None:
        staged.append(extra)
    try:
        project_methods(mirrored_methods(conn, account_sfid), staged)
    except PlanError as exc:
        raise StagingError(str(exc)) from exc


def stage_card(
    conn: Connection,
    contact_sfid: str,
    account_sfid: str,
    card: CardToken,
    *,
    is_default: bool,
    is_one_time: bool,
    now: dt.datetime,
) -> None:
    """Stage a tokenized card (the number and CVC never get here).

    Raises:
        StagingError: too many pending changes.
    """
    payload = {
        "token": card.token,
        "brand": card.brand,
        "last_four": card.last_four,
        "exp_month": card.exp_month,
        "exp_year": card.exp_year,
        "is_default": is_default,
        "is_one_time": is_one_time,
    }
    words = CardWords(card.brand, card.last_four, card.exp_month, card.exp_year)
    description = add_card_words(words, is_default=is_default, is_one_time=is_one_time)
    adding = Staged(0, ChangeKind.ADD_CARD, None, payload, "")
    _check_room(conn, list_staged(conn, contact_sfid, account_sfid), account_sfid, [adding])
    _check_plan(conn, contact_sfid, account_sfid, adding)
    insert_staged(
        conn, contact_sfid, account_sfid, ChangeKind.ADD_CARD, None, payload, description, now
    )


def stage_method_change(
    conn: Connection,
    contact_sfid: str,
    account_sfid: str,
    kind: ChangeKind,
    method_sfid: str,
    now: dt.datetime,
) -> None:
    """Stage "Make default" or "Remove" of one of the account's payment methods.

    Raises:
        NotFoundError: the method is not a live method of the account.
        StagingError: the change breaks a rule (e.g. removing the default method).
    """
    assert kind in (ChangeKind.MAKE_DEFAULT, ChangeKind.REMOVE_METHOD)
    method = next((m for m in mirrored_methods(conn, account_sfid) if m.ref == method_sfid), None)
    if method is None:
        raise NotFoundError(method_sfid)
    existing = list_staged(conn, contact_sfid, account_sfid)
    if any(s.kind is kind and s.target == method_sfid for s in existing):
        return
    adding = Staged(0, kind, method_sfid, {}, "")
    _check_room(conn, existing, account_sfid, [adding])
    _check_plan(conn, contact_sfid, account_sfid, adding)
    words = make_default_words if kind is ChangeKind.MAKE_DEFAULT else remove_words
    insert_staged(conn, contact_sfid, account_sfid, kind, method_sfid, {}, words(method.words), now)


def discard(
    conn: Connection, contact_sfid: str, account_sfid: str, staged_id: int, now: dt.datetime
) -> None:
    """Discard one staged change.

    Raises:
        NotFoundError: no such staged change of this contact and account.
    """
    row = conn.execute(
        select(STAGED.c.description).where(
            STAGED.c.id == staged_id,
            STAGED.c.contact_sfid == contact_sfid,
            STAGED.c.account_sfid == account_sfid,
        )
    ).first()
    if row is None:
        raise NotFoundError(str(staged_id))
    conn.execute(delete(STAGED).where(STAGED.c.id == staged_id))
    audit(
        conn,
        actor=f"contact:{contact_sfid}",
        action="discard",
        now=now,
        account_sfid=account_sfid,
        detail=row.description,
    )


def drop_revoked(conn: Connection, role: str, now: dt.datetime) -> int:
    """Drop the staged changes of contacts who are no longer Billing Admin of the account.

    Returns:
        How many staged changes were dropped.
    """
    acr = AccountContactRole.__table__
    acc = Account.__table__
    con = Contact.__table__
    still_admin = exists().where(
        acr.c.contact_sfid == STAGED.c.contact_sfid,
        acr.c.account_sfid == STAGED.c.account_sfid,
        acr.c.role == role,
        acr.c.is_deleted.is_(False),
        exists().where(acc.c.sfid == acr.c.account_sfid, acc.c.is_deleted.is_(False)),
        exists().where(con.c.sfid == acr.c.contact_sfid, con.c.is_deleted.is_(False)),
    )
    rows = conn.execute(
        select(STAGED.c.id, STAGED.c.contact_sfid, STAGED.c.account_sfid).where(~still_admin)
    ).all()
    for r in rows:
        conn.execute(delete(STAGED).where(STAGED.c.id == r.id))
        audit(
            conn,
            actor="billing-sync",
            action="drop_revoked",
            now=now,
            account_sfid=r.account_sfid,
            detail=f"staged change {r.id} of contact {r.contact_sfid}: no longer Billing Admin",
        )
    return len(rows)
