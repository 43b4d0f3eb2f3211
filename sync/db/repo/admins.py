"""SQL of the Billing Admin history and of the "who is the Billing Admin?" look-up.

The history is written by the pull through :class:`RoleHistory`: the role rows of a
page are read before and after the page is stored, in the page's own transaction, and
every row whose Billing Admin standing changed writes one entry. Rows the upsert left
alone (a reload of unchanged records) read the same both times and write nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    String,
    Table,
    any_,
    bindparam,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY

from sync.db.models import (
    Account,
    AccountContactRole,
    BillingAdminChange,
    ChangeSet,
    Contact,
)

HISTORY: Table = BillingAdminChange.__table__  # type: ignore[assignment]
ROLES: Table = AccountContactRole.__table__  # type: ignore[assignment]
ACCOUNTS: Table = Account.__table__  # type: ignore[assignment]
CONTACTS: Table = Contact.__table__  # type: ignore[assignment]
SETS: Table = ChangeSet.__table__  # type: ignore[assignment]

# Ids per IN list: a REST page in one statement (PostgreSQL scans a mirror table whose
# statistics are not yet gathered, during a first load, once per statement).
IN_CHUNK = 2000

ADDED = "added"
REMOVED = "removed"


@dataclass(frozen=True)
class RoleRow:
    """What the history compares of one mirrored role row."""

    account_sfid: str | None
    contact_sfid: str | None
    role: str | None
    is_deleted: bool
    system_modstamp: dt.datetime


def _sfid_in(conn: Connection, sfids: list[str]) -> ColumnElement[bool]:
    """``sfid IN (...)``; on PostgreSQL one array parameter (far less to plan)."""
    if conn.dialect.name == "postgresql":
        return ROLES.c.sfid == any_(bindparam("sfids", sfids, type_=ARRAY(String)))
    return ROLES.c.sfid.in_(sfids)


def role_rows(conn: Connection, sfids: Collection[str]) -> dict[str, RoleRow]:
    """The mirrored role rows among ``sfids`` (sfid -> row); absent ones are left out."""
    found: dict[str, RoleRow] = {}
    ids = list(sfids)
    columns = (
        ROLES.c.sfid,
        ROLES.c.account_sfid,
        ROLES.c.contact_sfid,
        ROLES.c.role,
        ROLES.c.is_deleted,
        ROLES.c.system_modstamp,
    )
    for start in range(0, len(ids), IN_CHUNK):
        chunk = ids[start : start + IN_CHUNK]
        for row in conn.execute(select(*columns).where(_sfid_in(conn, chunk))):
            found[row.sfid] = RoleRow(
                row.account_sfid,
                row.contact_sfid,
                row.role,
                bool(row.is_deleted),
                row.system_modstamp,
            )
    return found


@dataclass(frozen=True)
class AdminChange:
    """One history entry to write (see :class:`~sync.db.models.BillingAdminChange`)."""

    role_sfid: str
    account_sfid: str | None
    contact_sfid: str | None
    change: str
    reason: str
    role: str | None
    changed_at: dt.datetime


def _is_admin(row: RoleRow | None, role: str) -> bool:
    return row is not None and not row.is_deleted and row.role == role


def admin_changes(
    before: dict[str, RoleRow], after: dict[str, RoleRow], role: str, *, now: dt.datetime
) -> list[AdminChange]:
    """The history entries between two readings of the same role rows.

    A row that is an admin row after but not before (new, restored, its role changed to
    ``role``) is an addition; the reverse (tombstoned, role changed away) a removal; an
    admin row moved to another account or contact is both. The time of a change is the
    row's new SystemModstamp, or ``now`` when the stamp did not move (a tombstone written
    because the CRM no longer lists the record).
    """
    changes: list[AdminChange] = []
    for sfid in sorted(before.keys() | after.keys()):
        old, new = before.get(sfid), after.get(sfid)
        was, now_admin = _is_admin(old, role), _is_admin(new, role)
        if not was and not now_admin:
            continue
        if new is None:
            continue  # not written by the page: nothing changed
        moved = (
            was
            and now_admin
            and old is not None
            and (old.account_sfid, old.contact_sfid) != (new.account_sfid, new.contact_sfid)
        )
        if was and now_admin and not moved:
            continue
        stamp_moved = old is None or new.system_modstamp != old.system_modstamp
        at = new.system_modstamp if stamp_moved else now
        if was and old is not None:
            if new.is_deleted:
                reason = "deleted"
            elif moved:
                reason = "moved"
            else:
                reason = "role changed"
            changes.append(
                AdminChange(sfid, old.account_sfid, old.contact_sfid, REMOVED, reason, new.role, at)
            )
        if now_admin:
            if old is None:
                reason = "new"
            elif old.is_deleted:
                reason = "restored"
            elif moved:
                reason = "moved"
            else:
                reason = "role changed"
            changes.append(
                AdminChange(sfid, new.account_sfid, new.contact_sfid, ADDED, reason, new.role, at)
            )
    return changes


def save_admin_changes(
    conn: Connection, changes: Sequence[AdminChange], *, recorded_at: dt.datetime
) -> int:
    """Append ``changes`` to the history; returns how many."""
    if not changes:
        return 0
    conn.execute(
        insert(HISTORY),
        [
            {
                "role_sfid": c.role_sfid,
                "account_sfid": c.account_sfid,
                "contact_sfid": c.contact_sfid,
                "change": c.change,
                "reason": c.reason,
                "role": c.role,
                "changed_at": c.changed_at,
                "recorded_at": recorded_at,
            }
            for c in changes
        ],
    )
    return len(changes)


@dataclass(frozen=True)
class Reading:
    """The role rows a write may change the Billing Admin standing of, before the write.

    Attributes:
        watched: the rows to read again after the write.
        rows: those of them that existed before it.
    """

    watched: frozenset[str]
    rows: dict[str, RoleRow]


def _admin_rows(conn: Connection, sfids: Sequence[str], role: str) -> dict[str, RoleRow]:
    """The rows among ``sfids`` that are Billing Admin rows now."""
    found: dict[str, RoleRow] = {}
    for start in range(0, len(sfids), IN_CHUNK):
        chunk = sfids[start : start + IN_CHUNK]
        rows = conn.execute(
            select(
                ROLES.c.sfid,
                ROLES.c.account_sfid,
                ROLES.c.contact_sfid,
                ROLES.c.system_modstamp,
            ).where(_sfid_in(conn, list(chunk)), ROLES.c.role == role, ~ROLES.c.is_deleted)
        )
        for row in rows:
            found[row.sfid] = RoleRow(
                row.account_sfid, row.contact_sfid, role, False, row.system_modstamp
            )
    return found


class RoleHistory:
    """The pull's history hook of the role mirror: read before a write, diff after it.

    Only rows whose standing can change are read: those that are Billing Admin rows
    before the write and those the write makes Billing Admin rows (a page row with the
    role, not deleted). Every other row is no admin row before and none after. Call
    :meth:`before_page` (or :meth:`before_tombstone`) and :meth:`after` on the
    connection of the transaction that writes, so the entries commit with the rows.
    """

    def __init__(self, role: str) -> None:
        """Keep the history of the role ``role`` (the configured Billing Admin role)."""
        self.role = role

    def before_page(
        self, conn: Connection, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> Reading:
        """Read the rows a page upsert (``rows`` in ``columns`` order) may change."""
        sfid, role, deleted, account, contact = (
            columns.index(c) for c in ("sfid", "role", "is_deleted", "account_sfid", "contact_sfid")
        )
        # sfid -> the (account, contact) the page makes it an admin row of, or None
        incoming = {
            row[sfid]: (row[account], row[contact])
            if row[role] == self.role and not row[deleted]
            else None
            for row in rows
        }
        admins = _admin_rows(conn, list(incoming), self.role)
        # An admin row that the page keeps an admin row of the same account and contact
        # stays one whether or not the upsert writes it: nothing to read again.
        watched = {
            s for s, row in admins.items() if incoming[s] != (row.account_sfid, row.contact_sfid)
        }
        becoming = {s for s, key in incoming.items() if key is not None and s not in admins}
        others = role_rows(conn, becoming)
        return Reading(frozenset(watched | becoming), {**others, **admins})

    def before_tombstone(self, conn: Connection, sfids: Sequence[str]) -> Reading:
        """Read the rows tombstoning ``sfids`` may change (the admin rows among them)."""
        admins = _admin_rows(conn, sfids, self.role)
        return Reading(frozenset(admins), admins)

    def after(self, conn: Connection, before: Reading, now: dt.datetime) -> int:
        """Write the entries of the rows that changed since ``before`` was read.

        Returns:
            How many entries were written.
        """
        if not before.watched:
            return 0
        after = role_rows(conn, before.watched)
        changes = admin_changes(before.rows, after, self.role, now=now)
        return save_admin_changes(conn, changes, recorded_at=now)


# --- the look-up -------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountRow:
    """A mirrored account, as the look-up lists it."""

    sfid: str
    name: str | None
    account_number: str | None
    is_deleted: bool


@dataclass(frozen=True)
class AdminRow:
    """A current Billing Admin of an account."""

    contact_sfid: str
    role_sfid: str
    first_name: str | None
    last_name: str | None
    email: str | None
    since: dt.datetime


@dataclass(frozen=True)
class HistoryRow:
    """One entry of an account's Billing Admin history, with the contact's name."""

    change: str
    reason: str
    contact_sfid: str | None
    first_name: str | None
    last_name: str | None
    email: str | None
    changed_at: dt.datetime


@dataclass(frozen=True)
class ChangeSetRow:
    """A change set of an account and who authorized it."""

    id: int
    state: str
    summary: str
    typed_name: str
    contact_sfid: str
    email: str | None
    accepted_at: dt.datetime


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def find_accounts(conn: Connection, query: str, *, limit: int = 50) -> list[AccountRow]:
    """Accounts matching ``query``: Id, account number, name or a contact's email.

    The name matches by any part of it; the email is that of one of the account's
    contacts or of a contact holding a role on it. Matches ignore case; exact matches
    (Id, number, email) come before name matches.
    """
    text = query.strip()
    if not text:
        return []
    lowered = text.lower()
    by_email = select(CONTACTS.c.sfid).where(func.lower(CONTACTS.c.email) == lowered)
    via_contact = select(CONTACTS.c.account_sfid).where(
        func.lower(CONTACTS.c.email) == lowered, CONTACTS.c.account_sfid.is_not(None)
    )
    via_role = select(ROLES.c.account_sfid).where(
        ROLES.c.contact_sfid.in_(by_email), ~ROLES.c.is_deleted
    )
    exact = or_(
        ACCOUNTS.c.sfid == text,
        func.lower(ACCOUNTS.c.account_number) == lowered,
        ACCOUNTS.c.sfid.in_(via_contact),
        ACCOUNTS.c.sfid.in_(via_role),
    )
    if len(text) == 15 and text.isalnum():
        exact = or_(exact, func.substr(ACCOUNTS.c.sfid, 1, 15) == text)
    named = func.lower(ACCOUNTS.c.name).like(f"%{_escape_like(lowered)}%", escape="\\")
    columns = (ACCOUNTS.c.sfid, ACCOUNTS.c.name, ACCOUNTS.c.account_number, ACCOUNTS.c.is_deleted)
    found: dict[str, AccountRow] = {}
    for where in (exact, named):
        rows = conn.execute(
            select(*columns).where(where).order_by(ACCOUNTS.c.name, ACCOUNTS.c.sfid).limit(limit)
        )
        for row in rows:
            if row.sfid not in found and len(found) < limit:
                found[row.sfid] = AccountRow(
                    row.sfid, row.name, row.account_number, bool(row.is_deleted)
                )
    return list(found.values())


def get_account(conn: Connection, sfid: str) -> AccountRow | None:
    """The mirrored account ``sfid``, or None."""
    row = conn.execute(
        select(
            ACCOUNTS.c.sfid, ACCOUNTS.c.name, ACCOUNTS.c.account_number, ACCOUNTS.c.is_deleted
        ).where(ACCOUNTS.c.sfid == sfid)
    ).first()
    if row is None:
        return None
    return AccountRow(row.sfid, row.name, row.account_number, bool(row.is_deleted))


def current_admins(conn: Connection, account_sfid: str, role: str) -> list[AdminRow]:
    """The contacts holding ``role`` on the account now, with since when.

    "Since" is the time of the latest addition in the history for the role row (the
    row's SystemModstamp when the history holds none).
    """
    added = (
        select(HISTORY.c.role_sfid, func.max(HISTORY.c.changed_at).label("since"))
        .where(HISTORY.c.change == ADDED, HISTORY.c.account_sfid == account_sfid)
        .group_by(HISTORY.c.role_sfid)
        .subquery()
    )
    rows = conn.execute(
        select(
            ROLES.c.sfid,
            ROLES.c.contact_sfid,
            ROLES.c.system_modstamp,
            CONTACTS.c.first_name,
            CONTACTS.c.last_name,
            CONTACTS.c.email,
            added.c.since,
        )
        .select_from(ROLES)
        .outerjoin(CONTACTS, CONTACTS.c.sfid == ROLES.c.contact_sfid)
        .outerjoin(added, added.c.role_sfid == ROLES.c.sfid)
        .where(ROLES.c.account_sfid == account_sfid, ROLES.c.role == role, ~ROLES.c.is_deleted)
        .order_by(CONTACTS.c.last_name, CONTACTS.c.first_name, ROLES.c.sfid)
    )
    return [
        AdminRow(
            contact_sfid=r.contact_sfid,
            role_sfid=r.sfid,
            first_name=r.first_name,
            last_name=r.last_name,
            email=r.email,
            since=r.since if r.since is not None else r.system_modstamp,
        )
        for r in rows
    ]


def admin_history(conn: Connection, account_sfid: str, *, limit: int = 100) -> list[HistoryRow]:
    """The account's Billing Admin changes, newest first."""
    rows = conn.execute(
        select(
            HISTORY.c.change,
            HISTORY.c.reason,
            HISTORY.c.contact_sfid,
            HISTORY.c.changed_at,
            CONTACTS.c.first_name,
            CONTACTS.c.last_name,
            CONTACTS.c.email,
        )
        .select_from(HISTORY)
        .outerjoin(CONTACTS, CONTACTS.c.sfid == HISTORY.c.contact_sfid)
        .where(HISTORY.c.account_sfid == account_sfid)
        .order_by(HISTORY.c.changed_at.desc(), HISTORY.c.id.desc())
        .limit(limit)
    )
    return [
        HistoryRow(
            r.change, r.reason, r.contact_sfid, r.first_name, r.last_name, r.email, r.changed_at
        )
        for r in rows
    ]


def recent_change_sets(
    conn: Connection, account_sfid: str, *, limit: int = 10
) -> list[ChangeSetRow]:
    """The account's latest change sets, newest first, with who authorized each."""
    rows = conn.execute(
        select(
            SETS.c.id,
            SETS.c.state,
            SETS.c.summary,
            SETS.c.typed_name,
            SETS.c.contact_sfid,
            SETS.c.accepted_at,
            CONTACTS.c.email,
        )
        .select_from(SETS)
        .outerjoin(CONTACTS, CONTACTS.c.sfid == SETS.c.contact_sfid)
        .where(SETS.c.account_sfid == account_sfid)
        .order_by(SETS.c.id.desc())
        .limit(limit)
    )
    return [
        ChangeSetRow(r.id, r.state, r.summary, r.typed_name, r.contact_sfid, r.email, r.accepted_at)
        for r in rows
    ]


def history_rows(conn: Connection, role_sfid: str) -> list[dict[str, Any]]:
    """The history entries of one role row, oldest first, as dicts (for checks)."""
    rows = conn.execute(
        select(HISTORY).where(HISTORY.c.role_sfid == role_sfid).order_by(HISTORY.c.id)
    )
    return [dict(r._mapping) for r in rows]
