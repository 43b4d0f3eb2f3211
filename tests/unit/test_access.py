"""Who is Billing Admin of what, from the mirrored tables (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from sync.access import (
    ContactLookupError,
    billing_admin_accounts,
    find_contact,
    is_billing_admin,
    to_18_char_id,
)
from sync.db.models import Account, AccountContactRole, Contact
from tests.support.portal_data import PortalData, build_world

ROLE = "Billing Admin"


def _accounts(engine, contact, role=ROLE):
    with engine.connect() as conn:
        return [a.name for a in billing_admin_accounts(conn, contact, role)]


def test_given_a_billing_admin_when_asked_then_their_account_is_returned(engine):
    w = build_world(engine)

    assert _accounts(engine, w.admin) == ["Acme Corp"]
    with engine.connect() as conn:
        assert is_billing_admin(conn, w.admin, w.acme, ROLE)
        assert not is_billing_admin(conn, w.admin, w.globex, ROLE)


def test_given_an_admin_of_two_accounts_when_asked_then_both_come_by_name(engine):
    w = build_world(engine)

    assert _accounts(engine, w.multi_admin) == ["Globex Inc", "Initech LLC"]


@pytest.mark.parametrize("who", ["business_user", "no_role"])
def test_given_a_contact_without_the_role_when_asked_then_no_account(engine, who):
    w = build_world(engine)

    assert _accounts(engine, getattr(w, who)) == []


def test_given_an_unknown_contact_when_asked_then_no_account(engine):
    build_world(engine)

    assert _accounts(engine, "003999999999999AAA") == []


def test_given_a_deleted_role_when_asked_then_no_account(engine):
    d = PortalData(engine)
    acc = d.account("Solo")
    con = d.contact(acc, "Sam", "Solo")
    role = d.role(acc, con)
    assert _accounts(engine, con) == ["Solo"]

    d.delete(AccountContactRole, role)

    assert _accounts(engine, con) == []


def test_given_a_deleted_account_when_asked_then_no_account(engine):
    d = PortalData(engine)
    acc = d.account("Solo")
    con = d.contact(acc, "Sam", "Solo")
    d.role(acc, con)

    d.delete(Account, acc)

    assert _accounts(engine, con) == []


def test_given_a_deleted_contact_when_asked_then_no_account(engine):
    d = PortalData(engine)
    acc = d.account("Solo")
    con = d.contact(acc, "Sam", "Solo")
    d.role(acc, con)

    d.delete(Contact, con)

    assert _accounts(engine, con) == []


def test_given_a_role_changed_to_another_value_when_asked_then_no_account(engine):
    d = PortalData(engine)
    acc = d.account("Solo")
    con = d.contact(acc, "Sam", "Solo")
    role = d.role(acc, con)

    d.set(AccountContactRole, role, role="Decision Maker")

    assert _accounts(engine, con) == []


def test_given_a_configured_role_name_when_asked_then_that_role_grants_access(engine):
    w = build_world(engine)

    assert _accounts(engine, w.business_user, "Business User") == ["Acme Corp"]
    assert _accounts(engine, w.admin, "Business User") == []


def test_given_a_contact_id_when_looked_up_then_the_contact_is_found(engine):
    w = build_world(engine)

    found = find_contact(engine, w.admin)

    assert found.sfid == w.admin
    assert found.display_name == "Ada Admin"


def test_given_a_15_character_id_when_looked_up_then_the_18_character_contact_is_found(engine):
    w = build_world(engine)

    assert find_contact(engine, w.admin[:15]).sfid == w.admin


def test_given_an_email_in_another_case_when_looked_up_then_the_contact_is_found(engine):
    w = build_world(engine)

    assert find_contact(engine, "  ADA.ADMIN@Example.com ").sfid == w.admin


def test_given_an_email_shared_by_two_contacts_when_looked_up_then_it_is_ambiguous(engine):
    d = PortalData(engine)
    acc = d.account("Twins")
    d.contact(acc, "One", "Twin", "twin@example.com")
    d.contact(acc, "Two", "Twin", "twin@example.com")

    with pytest.raises(ContactLookupError, match="several contacts"):
        find_contact(engine, "twin@example.com")


@pytest.mark.parametrize("reference", ["nobody@example.com", "003999999999999AAA", "x y z"])
def test_given_an_unknown_reference_when_looked_up_then_it_is_an_error(engine, reference):
    build_world(engine)

    with pytest.raises(ContactLookupError):
        find_contact(engine, reference)


def test_given_a_deleted_contact_when_looked_up_then_it_is_not_found(engine):
    w = build_world(engine)
    w.data.delete(Contact, w.admin)

    with pytest.raises(ContactLookupError):
        find_contact(engine, w.admin)


def test_given_a_15_character_id_when_converted_then_the_crm_checksum_is_appended():
    assert to_18_char_id("001A0000006Vm9r") == "001A0000006Vm9rIAC"
    assert to_18_char_id("001A0000006Vm9rIAC") == "001A0000006Vm9rIAC"
    with pytest.raises(ValueError):
        to_18_char_id("001-bad")


def test_given_contacts_when_access_is_read_in_one_query_then_it_matches_the_rule(engine):
    from sync.access import contact_access

    w = build_world(engine)
    with engine.connect() as conn:
        admin, admin_accounts = contact_access(conn, w.multi_admin, ROLE)
        user, user_accounts = contact_access(conn, w.business_user, ROLE)
        missing = contact_access(conn, "003999999999999AAA", ROLE)

    assert admin is not None and admin.display_name == "Max Multi"
    assert [a.name for a in admin_accounts] == ["Globex Inc", "Initech LLC"]
    assert user is not None and user_accounts == []
    assert missing == (None, [])
