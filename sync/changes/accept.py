"""Accepting staged changes: the typed name, one change set with its items, re-staging.

:func:`accept` turns all of a contact's staged changes for an account into one change set
in the caller's transaction; what it will write is planned from the *current* mirrored
rows (:mod:`sync.changes.plan`). :func:`restage` stages a conflicted or failed set again.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection

from sync.access import ContactRef
from sync.changes.plan import PlanError, PlanInput, WriteTargets, plan_items
from sync.changes.pricing import describe_purchase
from sync.changes.rules import (
    PROBLEM_STATES,
    ChangeKind,
    field_change_words,
    same_value,
    summary_text,
)
from sync.changes.staging import (
    NotFoundError,
    StagingError,
    as_staged,
    insert_staged,
    list_staged,
    mirrored_methods,
)
from sync.changes.terms import Terms
from sync.db.repo import changes as repo
from sync.db.repo.changes import audit


def _name_part(value: str | None) -> str:
    return " ".join((value or "").split()).casefold()


def name_matches(contact: ContactRef, first: str, last: str) -> bool:
    """True when the typed names are the contact's (case and extra spaces ignored)."""
    want_first, want_last = _name_part(contact.first_name), _name_part(contact.last_name)
    return bool(want_last) and (_name_part(first), _name_part(last)) == (want_first, want_last)


@dataclass(frozen=True)
class Acceptance:
    """Who accepted, from where, under which terms."""

    contact: ContactRef
    account_sfid: str
    first_name: str
    last_name: str
    terms: Terms
    client_ip: str | None
    user_agent: str | None


def accept(
    conn: Connection, acceptance: Acceptance, targets: WriteTargets, now: dt.datetime
) -> int:
    """Turn the contact's staged changes into one accepted change set (in ``conn``'s txn).

    Returns:
        The change set's id.

    Raises:
        StagingError: the typed name is not the contact's, nothing is staged, or the
            staged changes no longer fit the account's payment methods.
    """
    contact = acceptance.contact
    if not name_matches(contact, acceptance.first_name, acceptance.last_name):
        raise StagingError(
            "The first and last name must be your own, as the billing system has them: "
            "nothing was accepted."
        )
    staged = list_staged(conn, contact.sfid, acceptance.account_sfid)
    if not staged:
        raise StagingError("There are no pending changes to accept.")
    set_key = secrets.token_hex(10)
    try:
        items = plan_items(
            PlanInput(
                account_sfid=acceptance.account_sfid,
                set_key=set_key,
                targets=targets,
                mirrored_methods=mirrored_methods(conn, acceptance.account_sfid),
                today=now.date(),
            ),
            [as_staged(s) for s in staged],
        )
    except PlanError as exc:
        raise StagingError(f"{exc} Nothing was accepted.") from exc
    typed_name = " ".join(
        p for p in (acceptance.first_name.strip(), acceptance.last_name.strip()) if p
    )
    lines = [s.description for s in staged]
    set_id = repo.insert_set(
        conn,
        repo.NewSet(
            key=set_key,
            account_sfid=acceptance.account_sfid,
            contact_sfid=contact.sfid,
            typed_name=typed_name,
            terms_version=acceptance.terms.version,
            summary=summary_text(lines, typed_name=typed_name, terms=acceptance.terms.version),
            staged=[
                {
                    "kind": s.kind.value,
                    "target": s.target,
                    "payload": s.payload,
                    "description": s.description,
                }
                for s in staged
            ],
            accepted_at=now,
            client_ip=acceptance.client_ip,
            user_agent=acceptance.user_agent,
        ),
        items,
    )
    removed = repo.delete_staged(conn, [s.id for s in staged])
    if removed != len(staged):
        # another Accept of the same changes won the race: this one must not count
        raise StagingError("These changes were just accepted in another window.")
    audit(
        conn,
        actor=f"contact:{contact.sfid}",
        action="accept",
        now=now,
        account_sfid=acceptance.account_sfid,
        change_set_id=set_id,
        detail=f"{typed_name}; terms {acceptance.terms.version}; {len(items)} CRM writes",
    )
    return set_id


def _reprice(
    targets: WriteTargets, payload: dict[str, Any], checked: dict[tuple[str, str], Any]
) -> dict[str, Any] | None:
    """A purchase at the price the CRM held at the conflict; None when no longer for sale."""
    if targets.price_list_items is None:
        return payload
    item = str(payload.get("price_item"))
    price_field = targets.crm_field(targets.price_list_items, "list_price").lower()
    active_field = targets.crm_field(targets.price_list_items, "active").lower()
    if (item, active_field) in checked:
        return None
    if (item, price_field) in checked:
        value = checked[(item, price_field)]
        if value in (None, ""):
            return None
        return {**payload, "unit_price": str(Decimal(str(value)))}
    return payload


def restage(
    conn: Connection,
    contact_sfid: str,
    account_sfid: str,
    set_id: int,
    targets: WriteTargets,
    now: dt.datetime,
) -> int:
    """Stage again the changes of a conflicted or failed set, against the CRM's values now.

    An account field that conflicted takes the value the CRM held as the value seen; a
    purchase whose price changed takes the CRM's price (and one no longer for sale is
    dropped); the set is marked cancelled (re-staged), so it is never pushed.

    Returns:
        How many changes were staged.

    Raises:
        NotFoundError: no such set of this account in state conflict or failed.
    """
    stored = repo.set_in_states(conn, set_id, account_sfid, PROBLEM_STATES)
    if stored is None:
        raise NotFoundError(str(set_id))
    crm_values = repo.crm_values_of_record(conn, set_id, account_sfid)
    checked = repo.conflicted_checks(conn, set_id)
    count = 0
    for entry in stored.staged:
        kind = ChangeKind(entry["kind"])
        payload = dict(entry["payload"])
        description = entry["description"]
        if kind in (ChangeKind.ADD_LICENSES, ChangeKind.ADD_MINUTES):
            repriced = _reprice(targets, payload, checked)
            if repriced is None:
                continue  # no longer for sale: nothing to stage
            payload = repriced
            description = describe_purchase(kind, payload)
        if kind is ChangeKind.ACCOUNT_FIELD:
            crm_field = targets.crm_field(targets.accounts, entry["target"]).lower()
            if crm_field in crm_values:
                payload["saw"] = crm_values[crm_field]
            if same_value(payload["saw"], payload["new"]):
                continue
            description = field_change_words(payload["label"], payload["saw"], payload["new"])
        insert_staged(
            conn, contact_sfid, account_sfid, kind, entry["target"], payload, description, now
        )
        count += 1
    repo.cancel_set(
        conn, set_id, now, f"Re-staged by the Billing Admin after the {stored.state.value}."
    )
    audit(
        conn,
        actor=f"contact:{contact_sfid}",
        action="restage",
        now=now,
        account_sfid=account_sfid,
        change_set_id=set_id,
        detail=f"{count} changes staged again",
    )
    return count
