"""Purchases pushed to the sandbox: one order with its lines, prices checked, once.

Purchases are staged and accepted as the portal's forms do (without a browser); the CRM
is checked with simple-salesforce. SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select, text

from sync.changes.accept import restage
from sync.changes.plan import WriteTargets
from sync.changes.staging import list_staged
from sync.db.models import Order
from sync.pull import pull_all, pull_mapping
from sync.push import push_pending
from tests.support.changes import (
    accept_direct,
    authorizations,
    orders_with_lines,
    pick_admin,
    price_item,
    product_ids,
    push_until_final,
    set_state,
)
from tests.support.pull import make_context
from tests.support.sandbox import set_faults

pytestmark = pytest.mark.slow

AGENT = "LIC-AGENT"
MINUTES = "DIAL-MIN"


@pytest.fixture
def ctx(crm_sandbox, database_url):
    context = make_context(crm_sandbox, database_url, push_lease=5.0)
    pull_all(context)
    yield context
    context.close()


def _purchase(sf) -> list[tuple[str, str, str]]:
    ids = product_ids(sf)
    return [("add_licenses", ids[AGENT], "5"), ("add_minutes", ids[MINUTES], "1,000")]


def _assert_the_order(sf, account: str) -> dict:
    ids = product_ids(sf)
    (order,) = orders_with_lines(sf, account)
    assert order["Apttus_Config2__Status__c"] == "Pending"
    assert Decimal(str(order["Apttus_Config2__OrderAmount__c"])) == Decimal("487.00")
    lines = {line["Apttus_Config2__ProductId__c"]: line for line in order["lines"]}
    assert set(lines) == {ids[AGENT], ids[MINUTES]}
    agent, minutes = lines[ids[AGENT]], lines[ids[MINUTES]]
    assert agent["Apttus_Config2__Quantity__c"] == 5
    assert Decimal(str(agent["Apttus_Config2__NetPrice__c"])) == Decimal("475.00")
    assert agent["Apttus_Config2__ChargeType__c"] == "Subscription Fee"
    assert minutes["Apttus_Config2__Quantity__c"] == 1000
    assert Decimal(str(minutes["Apttus_Config2__NetPrice__c"])) == Decimal("12.00")
    assert minutes["Apttus_Config2__ChargeType__c"] == "Usage Fee"
    assert all(line["Billing_Sync_Key__c"] for line in order["lines"])
    return order


def test_given_an_accepted_purchase_when_pushed_then_one_pending_order_with_two_lines(ctx, sf):
    admin = pick_admin(sf)
    set_id = accept_direct(ctx, admin, purchases=_purchase(sf))

    report = push_pending(ctx)

    assert report.pushed == 1 and set_state(ctx, set_id)[0] == "applied"
    assert report.api_calls == 2  # one read (prices), one write (everything)
    _assert_the_order(sf, admin.account)
    (auth,) = authorizations(sf, admin.account)
    assert "Add 5 Contact Center Agent License at $95.00 per month each" in auth["Summary__c"]
    assert "Add 1,000 dialer minutes of credit at $0.012 per minute" in auth["Summary__c"]
    assert {"orders", "order_lines"} <= report.touched_mappings


def test_given_an_applied_purchase_when_sent_again_then_still_one_order(ctx, sf):
    admin = pick_admin(sf)
    set_id = accept_direct(ctx, admin, purchases=_purchase(sf))
    assert push_until_final(ctx, set_id)[0] == "applied"
    # a crash after the CRM applied the set but before the outbox recorded it
    with ctx.engine.begin() as conn:
        conn.execute(
            text("UPDATE change_sets SET state = 'accepted', finished_at = NULL WHERE id = :i"),
            {"i": set_id},
        )

    assert push_until_final(ctx, set_id)[0] == "applied"

    _assert_the_order(sf, admin.account)
    assert len(authorizations(sf, admin.account)) == 1


def test_given_503s_and_latency_when_a_purchase_is_pushed_then_exactly_one_order(
    ctx, sf, crm_sandbox
):
    admin = pick_admin(sf)
    set_id = accept_direct(ctx, admin, purchases=_purchase(sf))
    set_faults(crm_sandbox, error_rate=0.5, errors=["SERVER_UNAVAILABLE"], latency_ms=300)
    try:
        state, _ = push_until_final(ctx, set_id, timeout=120)
    finally:
        set_faults(crm_sandbox, error_rate=0.0, latency_ms=0.0)

    assert state == "applied"
    _assert_the_order(sf, admin.account)
    assert len(authorizations(sf, admin.account)) == 1


def test_given_a_price_change_in_the_crm_when_pushed_then_conflict_then_restaged_at_new_price(
    ctx, sf
):
    admin = pick_admin(sf)
    set_id = accept_direct(ctx, admin, purchases=_purchase(sf))
    item = price_item(sf, product_ids(sf)[AGENT])
    sf.Apttus_Config2__PriceListItem__c.update(item["Id"], {"Apttus_Config2__ListPrice__c": 99})

    report = push_pending(ctx)
    state, message = set_state(ctx, set_id)

    assert state == "conflict" and report.conflicts == 1
    assert "$95.00" in (message or "") and "$99.00" in (message or "")
    assert orders_with_lines(sf, admin.account) == []  # nothing charged
    assert authorizations(sf, admin.account) == []
    assert "price_list_items" in report.touched_mappings

    targets = WriteTargets.from_mappings(ctx.mappings)
    with ctx.engine.begin() as conn:
        now = dt.datetime.now(dt.UTC)
        assert restage(conn, admin.contact, admin.account, set_id, targets, now) == 2
        staged = list_staged(conn, admin.contact, admin.account)
    assert Decimal(staged[0].payload["unit_price"]) == 99
    assert "at $99.00 per month" in staged[0].description
    pull_mapping(ctx, "price_list_items")
    again = accept_direct(ctx, admin)
    assert push_until_final(ctx, again)[0] == "applied"
    (order,) = orders_with_lines(sf, admin.account)
    assert Decimal(str(order["Apttus_Config2__OrderAmount__c"])) == Decimal("507.00")


def test_given_a_price_withdrawn_in_the_crm_when_pushed_then_conflict_and_no_order(ctx, sf):
    admin = pick_admin(sf)
    set_id = accept_direct(ctx, admin, purchases=_purchase(sf))
    item = price_item(sf, product_ids(sf)[MINUTES])
    sf.Apttus_Config2__PriceListItem__c.update(item["Id"], {"Apttus_Config2__Active__c": False})

    state, message = push_until_final(ctx, set_id)

    assert state == "conflict" and "Dialer Minutes is for sale" in (message or "")
    assert orders_with_lines(sf, admin.account) == []


def test_given_an_accepted_purchase_then_listed_pending_at_once_and_once_after_the_pull(ctx, sf):
    from sync.portal.queries import placed_orders

    admin = pick_admin(sf)
    targets = WriteTargets.from_mappings(ctx.mappings)
    assert targets.orders is not None
    fields = {f.column: f.crm_name for f in targets.orders.fields}

    def placed() -> list:
        with ctx.engine.connect() as conn:
            return placed_orders(conn, admin.account, targets.orders.crm_object, fields)

    set_id = accept_direct(ctx, admin, purchases=_purchase(sf))

    (shown,) = placed()
    assert shown.status == "Pending" and shown.amount == Decimal("487.00")
    assert push_until_final(ctx, set_id)[0] == "applied"
    assert len(placed()) == 1  # applied, not pulled yet: still from the outbox
    pull_mapping(ctx, "orders")
    assert placed() == []
    orders = Order.__table__
    with ctx.engine.connect() as conn:
        (row,) = conn.execute(
            select(orders.c.status, orders.c.amount).where(orders.c.sync_key == shown.key)
        ).all()
    assert row.status == "Pending" and row.amount == Decimal("487.00")


def test_given_an_account_naming_a_price_list_when_priced_then_that_list_is_used(ctx, sf):
    from sync.changes.purchases import price_book

    admin = pick_admin(sf)
    agent = product_ids(sf)[AGENT]
    with ctx.engine.connect() as conn:
        default = price_book(conn, admin.account)
    (retired,) = sf.query_all(
        "SELECT Id FROM Apttus_Config2__PriceList__c WHERE Apttus_Config2__Active__c = false"
    )["records"]
    sf.Account.update(admin.account, {"Apttus_Config2__PriceListId__c": retired["Id"]})
    pull_mapping(ctx, "accounts")

    with ctx.engine.connect() as conn:
        own = price_book(conn, admin.account)

    assert default.list_name == "Standard Price List"
    assert default.prices[agent].list_price == Decimal("95")
    assert own.list_name == "Price List 2025"
    assert own.prices[agent].list_price == Decimal("85.5")


def test_given_a_pulled_price_change_when_a_purchase_is_pending_then_the_page_warns(ctx, sf):
    from sync.changes.purchases import price_changes, stage_purchase
    from sync.changes.rules import ChangeKind

    admin = pick_admin(sf)
    agent = product_ids(sf)[AGENT]
    with ctx.engine.begin() as conn:
        now = dt.datetime.now(dt.UTC)
        stage_purchase(conn, admin.contact, admin.account, ChangeKind.ADD_LICENSES, agent, "5", now)
        staged = list_staged(conn, admin.contact, admin.account)
        assert price_changes(conn, admin.account, staged) == []
    item = price_item(sf, agent)
    sf.Apttus_Config2__PriceListItem__c.update(item["Id"], {"Apttus_Config2__ListPrice__c": 99})
    pull_mapping(ctx, "price_list_items")

    with ctx.engine.connect() as conn:
        (note,) = price_changes(conn, admin.account, staged)

    assert "now $99.00; you added it at $95.00" in note


def test_given_a_placed_order_when_the_orders_tab_is_filtered_then_dates_apply(ctx, sf):
    import httpx

    from sync.portal.server import PortalServer
    from tests.support.portal_data import link_path, portal_settings

    admin = pick_admin(sf)
    accept_direct(ctx, admin, purchases=_purchase(sf))
    today = dt.datetime.now(dt.UTC).date()

    with (
        PortalServer(portal_settings(), ctx.engine) as portal,
        httpx.Client(base_url=portal.url or "", follow_redirects=True) as web,
    ):
        assert web.get(link_path(admin.contact)).status_code == 200
        shown = web.get("/portal/orders").text
        same_day = web.get(f"/portal/orders?on={today.isoformat()}").text
        long_ago = web.get("/portal/orders?from=2000-01-01&to=2000-01-31").text

    assert shown.count("(being placed)") == 1 and "$487.00" in shown
    assert same_day.count("(being placed)") == 1
    assert "(being placed)" not in long_ago
