"""Who is the Billing Admin? The one answer of the ops page and ``billing-sync admins``.

Given a search (account name, account number or Id, or a contact's email), each
matching account with its current Billing Admins (and since when), its history of
Billing Admin changes, its recent change sets with who authorized them, and its link in
the CRM.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from sync.db.repo import admins as admins_repo
from sync.settings import Settings

# Accounts listed for one search; more matches ask for a narrower search.
SEARCH_LIMIT = 50
HISTORY_LIMIT = 100
CHANGE_SETS_LIMIT = 10


def crm_base_url(settings: Settings) -> str | None:
    """The CRM's base URL as a browser reaches it, or None when it is not configured.

    ``SALESFORCE_INSTANCE_URL`` when set (the sandbox, or an org's own instance), else
    the org's My Domain.
    """
    if settings.salesforce_instance_url:
        return settings.salesforce_instance_url.rstrip("/")
    if settings.salesforce_my_domain:
        return f"https://{settings.salesforce_my_domain}"
    return None


def crm_record_url(base: str | None, sobject: str, sfid: str) -> str | None:
    """The Lightning page of a record, or None without a base URL."""
    if base is None:
        return None
    return f"{base}/lightning/r/{sobject}/{sfid}/view"


def _name(first: str | None, last: str | None) -> str:
    return " ".join(part for part in (first, last) if part) or "(no name)"


def _iso(value: dt.datetime) -> str:
    return value.isoformat()


@dataclass(frozen=True)
class Admin:
    """A current Billing Admin."""

    contact_sfid: str
    name: str
    email: str | None
    since: dt.datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "contact_id": self.contact_sfid,
            "name": self.name,
            "email": self.email,
            "since": _iso(self.since),
        }


@dataclass(frozen=True)
class AdminEvent:
    """One Billing Admin change: ``added`` or ``removed``, why and when."""

    change: str
    reason: str
    contact_sfid: str | None
    name: str
    email: str | None
    at: dt.datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "change": self.change,
            "reason": self.reason,
            "contact_id": self.contact_sfid,
            "name": self.name,
            "email": self.email,
            "at": _iso(self.at),
        }


@dataclass(frozen=True)
class AuthorizedSet:
    """A recent change set and who authorized it."""

    id: int
    state: str
    summary: str
    authorized_by: str
    contact_sfid: str
    email: str | None
    accepted_at: dt.datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "id": self.id,
            "state": self.state,
            "summary": self.summary,
            "authorized_by": self.authorized_by,
            "contact_id": self.contact_sfid,
            "email": self.email,
            "accepted_at": _iso(self.accepted_at),
        }


@dataclass(frozen=True)
class AccountAnswer:
    """An account and who its Billing Admins are and were."""

    sfid: str
    name: str | None
    account_number: str | None
    deleted: bool
    crm_url: str | None
    admins: list[Admin]
    history: list[AdminEvent]
    change_sets: list[AuthorizedSet]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "id": self.sfid,
            "name": self.name,
            "account_number": self.account_number,
            "deleted": self.deleted,
            "crm_url": self.crm_url,
            "admins": [a.to_dict() for a in self.admins],
            "history": [e.to_dict() for e in self.history],
            "change_sets": [s.to_dict() for s in self.change_sets],
        }


def search(conn: Connection, query: str) -> list[admins_repo.AccountRow]:
    """The accounts matching ``query`` (at most :data:`SEARCH_LIMIT`)."""
    return admins_repo.find_accounts(conn, query, limit=SEARCH_LIMIT)


def account_answer(conn: Connection, sfid: str, settings: Settings) -> AccountAnswer | None:
    """The answer for the mirrored account ``sfid``, or None when it is not mirrored."""
    account = admins_repo.get_account(conn, sfid)
    if account is None:
        return None
    role = settings.billing_admin_role
    admins = [
        Admin(a.contact_sfid, _name(a.first_name, a.last_name), a.email, a.since)
        for a in admins_repo.current_admins(conn, sfid, role)
    ]
    history = [
        AdminEvent(
            h.change,
            h.reason,
            h.contact_sfid,
            _name(h.first_name, h.last_name),
            h.email,
            h.changed_at,
        )
        for h in admins_repo.admin_history(conn, sfid, limit=HISTORY_LIMIT)
    ]
    sets = [
        AuthorizedSet(
            s.id, s.state, s.summary, s.typed_name, s.contact_sfid, s.email, s.accepted_at
        )
        for s in admins_repo.recent_change_sets(conn, sfid, limit=CHANGE_SETS_LIMIT)
    ]
    return AccountAnswer(
        sfid=account.sfid,
        name=account.name,
        account_number=account.account_number,
        deleted=account.is_deleted,
        crm_url=crm_record_url(crm_base_url(settings), "Account", account.sfid),
        admins=admins,
        history=history,
        change_sets=sets,
    )


def answers(conn: Connection, query: str, settings: Settings) -> list[AccountAnswer]:
    """The full answer for every account matching ``query``."""
    found = [account_answer(conn, row.sfid, settings) for row in search(conn, query)]
    return [a for a in found if a is not None]
