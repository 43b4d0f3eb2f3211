"""Who may see which account's billing data, decided from the mirrored CRM tables.

The rule: a contact is Billing Admin of an account when a non-deleted
AccountContactRole with ``Role`` equal to the configured role (``Billing Admin`` by
default) links the non-deleted contact to the non-deleted account. Everyone else gets no
billing data at all. The portal asks again on every request, so a role change pulled from
the CRM takes effect on the admin's very next click.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, and_, func, select

from sync.db.models import Account, AccountContactRole, Contact

_ID_RE = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_CHECKSUM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


class ContactLookupError(LookupError):
    """A contact reference (Id or email) matches no contact, or more than one."""


@dataclass(frozen=True)
class AdminAccount:
    """An account the contact administers."""

    sfid: str
    name: str


@dataclass(frozen=True)
class ContactRef:
    """The few contact fields the portal shows and the link command needs."""

    sfid: str
    first_name: str | None
    last_name: str | None
    email: str | None

    @property
    def display_name(self) -> str:
        """First and last name, or the email, or the Id."""
        name = " ".join(p for p in (self.first_name, self.last_name) if p)
        return name or self.email or self.sfid


def is_crm_id(value: str) -> bool:
    """True when ``value`` has the shape of a 15- or 18-character CRM Id."""
    return bool(_ID_RE.match(value))


def to_18_char_id(value: str) -> str:
    """The 18-character form of a CRM Id (15-character Ids get their checksum suffix).

    Raises:
        ValueError: ``value`` is not shaped like a CRM Id.
    """
    if not is_crm_id(value):
        raise ValueError(f"{value!r} is not a CRM Id")
    if len(value) == 18:
        return value
    suffix = ""
    for chunk in range(3):
        bits = 0
        for i, ch in enumerate(value[chunk * 5 : chunk * 5 + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << i
        suffix += _CHECKSUM_ALPHABET[bits]
    return value + suffix


def billing_admin_accounts(conn: Connection, contact_sfid: str, role: str) -> list[AdminAccount]:
    """The accounts ``contact_sfid`` is Billing Admin of right now, by account name.

    Args:
        conn: an open connection to the billing database.
        contact_sfid: the contact's 18-character Id.
        role: the ``AccountContactRole.Role`` value that grants the portal.

    Returns:
        The accounts, empty when the contact has no access (unknown, deleted, no role).
    """
    acr = AccountContactRole.__table__
    acc = Account.__table__
    con = Contact.__table__
    stmt = (
        select(acc.c.sfid, acc.c.name)
        .select_from(
            acr.join(acc, and_(acc.c.sfid == acr.c.account_sfid, acc.c.is_deleted.is_(False))).join(
                con, and_(con.c.sfid == acr.c.contact_sfid, con.c.is_deleted.is_(False))
            )
        )
        .where(
            acr.c.contact_sfid == contact_sfid,
            acr.c.role == role,
            acr.c.is_deleted.is_(False),
        )
        .distinct()
        .order_by(acc.c.name, acc.c.sfid)
    )
    return [AdminAccount(sfid=r.sfid, name=r.name or r.sfid) for r in conn.execute(stmt)]


def contact_access(
    conn: Connection, contact_sfid: str, role: str
) -> tuple[ContactRef | None, list[AdminAccount]]:
    """The contact and the accounts they are Billing Admin of, in one query.

    Returns:
        ``(None, [])`` for an unknown or deleted contact; ``(contact, [])`` for a
        contact without the role; otherwise the contact and the accounts by name.
    """
    acr = AccountContactRole.__table__
    acc = Account.__table__
    con = Contact.__table__
    roles = (
        select(acr.c.contact_sfid, acc.c.sfid.label("account_sfid"), acc.c.name)
        .select_from(
            acr.join(acc, and_(acc.c.sfid == acr.c.account_sfid, acc.c.is_deleted.is_(False)))
        )
        .where(acr.c.contact_sfid == contact_sfid, acr.c.role == role, acr.c.is_deleted.is_(False))
        .subquery()
    )
    rows = conn.execute(
        select(
            con.c.sfid,
            con.c.first_name,
            con.c.last_name,
            con.c.email,
            roles.c.account_sfid,
            roles.c.name,
        )
        .select_from(con.outerjoin(roles, roles.c.contact_sfid == con.c.sfid))
        .where(con.c.sfid == contact_sfid, con.c.is_deleted.is_(False))
        .order_by(roles.c.name, roles.c.account_sfid)
    ).all()
    if not rows:
        return None, []
    first = rows[0]
    contact = ContactRef(first.sfid, first.first_name, first.last_name, first.email)
    seen: set[str] = set()
    accounts = []
    for row in rows:
        if row.account_sfid is not None and row.account_sfid not in seen:
            seen.add(row.account_sfid)
            accounts.append(AdminAccount(sfid=row.account_sfid, name=row.name or row.account_sfid))
    return contact, accounts


def is_billing_admin(conn: Connection, contact_sfid: str, account_sfid: str, role: str) -> bool:
    """True when ``contact_sfid`` is Billing Admin of ``account_sfid`` right now."""
    return any(a.sfid == account_sfid for a in billing_admin_accounts(conn, contact_sfid, role))


def get_contact(conn: Connection, contact_sfid: str) -> ContactRef | None:
    """The non-deleted contact with this Id, or None."""
    con = Contact.__table__
    row = conn.execute(
        select(con.c.sfid, con.c.first_name, con.c.last_name, con.c.email).where(
            con.c.sfid == contact_sfid, con.c.is_deleted.is_(False)
        )
    ).first()
    if row is None:
        return None
    return ContactRef(row.sfid, row.first_name, row.last_name, row.email)


def find_contact(engine: Engine, reference: str) -> ContactRef:
    """Resolve a contact by Id (15 or 18 characters) or by email (case-insensitive).

    Raises:
        ContactLookupError: no non-deleted contact matches, or an email matches several.
    """
    reference = reference.strip()
    con = Contact.__table__
    with engine.connect() as conn:
        if "@" not in reference:
            if not is_crm_id(reference):
                raise ContactLookupError(f"{reference!r} is neither a contact Id nor an email")
            found = get_contact(conn, to_18_char_id(reference))
            if found is None:
                raise ContactLookupError(f"no contact with Id {reference}")
            return found
        rows = conn.execute(
            select(con.c.sfid, con.c.first_name, con.c.last_name, con.c.email)
            .where(func.lower(con.c.email) == reference.lower(), con.c.is_deleted.is_(False))
            .order_by(con.c.sfid)
            .limit(5)
        ).all()
    if not rows:
        raise ContactLookupError(f"no contact with email {reference}")
    if len(rows) > 1:
        ids = ", ".join(r.sfid for r in rows)
        raise ContactLookupError(
            f"several contacts have email {reference} ({ids}); pass the contact Id instead"
        )
    r = rows[0]
    return ContactRef(r.sfid, r.first_name, r.last_name, r.email)
