"""Staged changes: staging, discarding, and dropping those of revoked admins.

Staged changes belong to one contact and one account and stay visible and discardable
until :func:`sync.changes.accept.accept` turns them into one change set. Each change is
checked when staged: at most :data:`MAX_STAGED` pending, and the payment-method rules of
:mod:`sync.changes.plan` still hold with it. The SQL is :mod:`sync.db.repo.changes`'s.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

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
from sync.db.repo import changes as repo
from sync.db.repo.changes import StagedView, audit, count_staged, list_staged
from sync.payments import CardToken

__all__ = [
    "FieldEdit",
    "NotFoundError",
    "StagedView",
    "StagingError",
    "as_staged",
    "check_room",
    "count_staged",
    "discard",
    "drop_revoked",
    "insert_staged",
    "list_staged",
    "mirrored_methods",
    "stage_account_fields",
    "stage_card",
    "stage_method_change",
]


class StagingError(ValueError):
    """A change cannot be staged or accepted; the message is for the Billing Admin."""


class NotFoundError(LookupError):
    """The payment method or staged change is not the account's (answered as 404)."""


# -- reading ---------------------------------------------------------------------------


def as_staged(view: StagedView) -> Staged:
    """The plan's view of a stored staged change."""
    return Staged(view.id, view.kind, view.target, view.payload, view.description)


def mirrored_methods(conn: Connection, account_sfid: str) -> list[MethodState]:
    """The account's live payment methods as the plan sees them."""
    return [
        MethodState(
            ref=r.sfid,
            is_default=r.is_default,
            status=r.status,
            words=CardWords(r.brand, r.last_four, r.exp_month, r.exp_year),
        )
        for r in repo.live_payment_methods(conn, account_sfid)
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
    repo.add_staged(conn, contact_sfid, account_sfid, kind, target, payload, description, now)
    audit(
        conn,
        actor=f"contact:{contact_sfid}",
        action="stage",
        now=now,
        account_sfid=account_sfid,
        detail=description,
    )


def check_room(
    conn: Connection, existing: Sequence[StagedView], account_sfid: str, extra: Sequence[Staged]
) -> None:
    """Refuse a change when the set it joins could not be sent as one CRM request."""
    staged = [as_staged(s) for s in existing] + list(extra)
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
    check_room(
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
            repo.delete_staged(conn, [before.id])
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
    staged = [as_staged(s) for s in list_staged(conn, contact_sfid, account_sfid)]
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
    check_room(conn, list_staged(conn, contact_sfid, account_sfid), account_sfid, [adding])
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
    check_room(conn, existing, account_sfid, [adding])
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
    description = repo.staged_description(conn, staged_id, contact_sfid, account_sfid)
    if description is None:
        raise NotFoundError(str(staged_id))
    repo.delete_staged(conn, [staged_id])
    audit(
        conn,
        actor=f"contact:{contact_sfid}",
        action="discard",
        now=now,
        account_sfid=account_sfid,
        detail=description,
    )


def drop_revoked(conn: Connection, role: str, now: dt.datetime) -> int:
    """Drop the staged changes of contacts who are no longer Billing Admin of the account.

    Returns:
        How many staged changes were dropped.
    """
    rows = repo.revoked_staged(conn, role)
    for r in rows:
        repo.delete_staged(conn, [r.id])
        audit(
            conn,
            actor="billing-sync",
            action="drop_revoked",
            now=now,
            account_sfid=r.account_sfid,
            detail=f"staged change {r.id} of contact {r.contact_sfid}: no longer Billing Admin",
        )
    return len(rows)
