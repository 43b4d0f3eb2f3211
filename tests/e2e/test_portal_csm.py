"""A Customer Success Manager moves the Billing Admin role in the CRM; one pull later the
portal follows: the old admin's open session gets the coming-soon page, the new admin's
link opens the portal. Real sandbox over HTTP, real pull, real portal server."""

from __future__ import annotations

import re
from collections import Counter

import httpx
import pytest
from simple_salesforce import format_soql

from sync.portal.server import PortalServer
from sync.pull import Outcome, pull_all
from tests.support.portal_data import link_path, portal_settings
from tests.support.pull import make_context

pytestmark = pytest.mark.slow

ROLE = "Billing Admin"


@pytest.fixture
def ctx(crm_sandbox, database_url):
    context = make_context(crm_sandbox, database_url)
    yield context
    context.close()


def _visible_text(html: str) -> str:
    body = re.sub(r"<head>.*?</head>", "", html, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", body).split())


def _pick_admin_and_successor(sf) -> tuple[str, str, str, str]:
    """(role Id, account Id, admin A, contact B): A administers only this account; B is
    a contact of the account with no Billing Admin role anywhere."""
    roles = sf.query_all(
        "SELECT Id, AccountId, ContactId FROM AccountContactRole WHERE Role = 'Billing Admin'"
    )["records"]
    per_contact = Counter(r["ContactId"] for r in roles)
    admins = {r["ContactId"] for r in roles}
    for role in sorted(roles, key=lambda r: r["Id"]):
        if per_contact[role["ContactId"]] != 1:
            continue
        account = role["AccountId"]
        contacts = sf.query_all(
            format_soql("SELECT Id FROM Contact WHERE AccountId = {} ORDER BY Id", account)
        )["records"]
        successors = [c["Id"] for c in contacts if c["Id"] not in admins]
        if successors:
            return role["Id"], account, role["ContactId"], successors[0]
    created = sf.Contact.create(
        {"AccountId": roles[0]["AccountId"], "FirstName": "New", "LastName": "Admin"}
    )
    return roles[0]["Id"], roles[0]["AccountId"], roles[0]["ContactId"], created["id"]


def test_given_a_csm_moves_the_billing_admin_role_when_pulled_once_then_access_follows(ctx, sf):
    assert {r.outcome for r in pull_all(ctx)} == {Outcome.OK}
    role_a, account, contact_a, contact_b = _pick_admin_and_successor(sf)
    account_name = sf.Account.get(account)["Name"]

    with (
        PortalServer(portal_settings(), ctx.engine) as server,
        httpx.Client(base_url=server.url or "", follow_redirects=True) as admin_a,
        httpx.Client(base_url=server.url or "", follow_redirects=True) as admin_b,
    ):
        # Before: A is in the portal, B sees only the coming-soon page.
        opened = admin_a.get(link_path(contact_a))
        assert opened.status_code == 200, opened.text
        assert "Purchased Products" in opened.text and account_name in opened.text
        before_b = admin_b.get(link_path(contact_b))
        assert before_b.status_code == 403
        assert _visible_text(before_b.text) == "new billing portal coming soon"

        # The CSM's change in the CRM: A's role goes, B gets it.
        sf.AccountContactRole.delete(role_a)
        sf.AccountContactRole.create({"AccountId": account, "ContactId": contact_b, "Role": ROLE})
        results = pull_all(ctx)
        assert {r.outcome for r in results} <= {Outcome.OK, Outcome.UNCHANGED}
        assert any(
            r.mapping == "account_contact_roles" and r.outcome is Outcome.OK for r in results
        ), [(r.mapping, r.outcome) for r in results]

        # After: A's existing session gets coming-soon on every tab, and no data.
        for path in ("/portal/", "/portal/orders", "/portal/account", "/portal/invoices"):
            after_a = admin_a.get(path)
            assert after_a.status_code == 403, path
            assert _visible_text(after_a.text) == "new billing portal coming soon"
            assert account_name not in after_a.text

        # B's link now opens the portal on the account.
        after_b = admin_b.get(link_path(contact_b))
        assert after_b.status_code == 200
        assert "Purchased Products" in after_b.text and account_name in after_b.text
        orders = admin_b.get("/portal/orders")
        assert orders.status_code == 200 and "<h1>Orders</h1>" in orders.text
