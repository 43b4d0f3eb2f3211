"""A Billing Admin buys licenses and dialer-minute credit in Debian's chromium.

The whole service runs in one process (portal, change check, pulls, push) against the
sandbox over HTTP; the CRM is checked with simple-salesforce. SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from playwright.sync_api import expect
from simple_salesforce import format_soql

from tests.support.browser import chromium, needs_chromium
from tests.support.changes import (
    Admin,
    Service,
    authorizations,
    orders_with_lines,
    pick_admin,
    price_item,
    product_ids,
    running_service,
    wait_for,
)
from tests.support.portal_data import link_path

pytestmark = [*needs_chromium, pytest.mark.slow]

TIMEOUT_MS = 20_000
AGENT = "Contact Center Agent License"


@pytest.fixture
def service(crm_sandbox, database_url) -> Iterator[Service]:
    with running_service(crm_sandbox, database_url) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One chromium for the module's tests; each test opens its own context."""
    with chromium() as b:
        yield b


def _open(browser: Any, service: Service, admin: Admin) -> Any:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(service.url + link_path(admin.contact))
    expect(page.get_by_role("heading", name="Purchased Products")).to_be_visible()
    return page


def _license_form(page: Any) -> Any:
    return page.locator(
        "form.purchase", has=page.get_by_role("button", name=f"Add licenses: {AGENT}")
    )


def _credit_form(page: Any) -> Any:
    return page.locator("form.purchase", has=page.get_by_role("button", name="Add Credit"))


def _add_licenses(page: Any, quantity: str) -> None:
    form = _license_form(page)
    form.get_by_label("Quantity").fill(quantity)
    form.get_by_role("button").click()


def _add_credit(page: Any, minutes: str) -> None:
    form = _credit_form(page)
    form.get_by_label("Minutes").fill(minutes)
    form.get_by_role("button", name="Add Credit").click()


def _accept(page: Any, admin: Admin) -> None:
    page.get_by_label("First name").fill(admin.first_name)
    page.get_by_label("Last name").fill(admin.last_name)
    page.get_by_role("button", name="Accept", exact=True).click()


def _today(sf: Any, account: str) -> tuple[Decimal, Decimal]:
    """(active agent licenses, recurring total) of the account in the CRM."""
    assets = sf.query_all(
        format_soql(
            "SELECT Apttus_Config2__ProductId__c, Apttus_Config2__Quantity__c, "
            "Apttus_Config2__PriceType__c, Apttus_Config2__NetPrice__c "
            "FROM Apttus_Config2__AssetLineItem__c WHERE Apttus_Config2__AccountId__c = {} "
            "AND Apttus_Config2__AssetStatus__c = 'Activated'",
            account,
        )
    )["records"]
    agent = product_ids(sf)["LIC-AGENT"]
    count = sum(
        (
            Decimal(str(a["Apttus_Config2__Quantity__c"]))
            for a in assets
            if a["Apttus_Config2__ProductId__c"] == agent
        ),
        Decimal(0),
    )
    recurring = sum(
        (
            Decimal(str(a["Apttus_Config2__NetPrice__c"]))
            for a in assets
            if a["Apttus_Config2__PriceType__c"] == "Recurring"
        ),
        Decimal(0),
    )
    return count, recurring


def _staged_count(service: Service) -> int:
    return int(service.sql("SELECT COUNT(*) FROM staged_changes")[0][0])


def test_given_licenses_and_minutes_when_accepted_then_one_pending_order_in_the_crm(
    service, sf, browser, artifacts_dir
):
    admin = pick_admin(sf)
    count, recurring = _today(sf, admin.account)
    page = _open(browser, service, admin)

    _add_licenses(page, "5")
    expect(page.locator(".notice")).to_contain_text("Purchase staged")
    _add_credit(page, "1,000")
    short = page.locator("#purchase-summary")
    expect(short.locator("[data-total=now]")).to_have_text("$12.00")
    expect(short.locator("[data-total=licenses]")).to_contain_text(
        f"{AGENT}: {count:,.0f} \u2192 {count + 5:,.0f}"
    )
    page.screenshot(path=str(artifacts_dir / "purchase-products.png"), full_page=True)

    page.get_by_role("link", name="Account", exact=True).click()
    summary = page.locator("#purchase-summary")
    rows = summary.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_have_text(f"{AGENT} 5 $95.00 $475.00 per month", use_inner_text=True)
    expect(rows.nth(1)).to_have_text("Dialer Minutes 1,000 $0.012 $12.00", use_inner_text=True)
    expect(summary.locator("[data-total=now]")).to_have_text("$12.00")
    expect(summary.locator("[data-total=recurring]")).to_have_text(
        f"${recurring + Decimal('475.00'):,.2f} per month"
    )
    expect(summary.locator("[data-total=order]")).to_have_text("$487.00")
    # the Summary sits above the terms and the Accept form
    assert page.locator("#purchase-summary ~ #accept").count() == 1
    page.screenshot(path=str(artifacts_dir / "purchase-summary.png"), full_page=True)
    (artifacts_dir / "purchase-summary.txt").write_text(summary.inner_text())
    assert orders_with_lines(sf, admin.account) == []  # staged is not sent

    _accept(page, admin)
    expect(page.locator(".set").first).to_contain_text("Applied", timeout=TIMEOUT_MS)

    (order,) = orders_with_lines(sf, admin.account)
    assert order["Apttus_Config2__Status__c"] == "Pending"
    assert Decimal(str(order["Apttus_Config2__OrderAmount__c"])) == Decimal("487.00")
    amounts = sorted(Decimal(str(x["Apttus_Config2__NetPrice__c"])) for x in order["lines"])
    assert amounts == [Decimal("12.00"), Decimal("475.00")]
    (auth,) = authorizations(sf, admin.account)
    assert f"Add 5 {AGENT} at $95.00 per month each" in auth["Summary__c"]
    # the Orders tab lists the order once: from the outbox, then as the CRM's order
    assert wait_for(
        lambda: (
            service.sql(
                "SELECT COUNT(*) FROM orders WHERE sync_key = :k", k=order["Billing_Sync_Key__c"]
            )[0][0]
            == 1
        )
    )
    page.get_by_role("link", name="Orders", exact=True).click()
    placed = page.locator("tr", has_text="Portal order")
    expect(placed).to_have_count(1)
    expect(placed).to_contain_text("$487.00")
    expect(placed).to_contain_text("Pending")
    page.goto(service.url + "/portal/orders?from=2000-01-01&to=2000-01-31")
    expect(page.locator("tr", has_text="Portal order")).to_have_count(0)


def test_given_bad_quantities_when_submitted_then_refused_with_a_message_and_nothing_staged(
    service, sf, browser
):
    admin = pick_admin(sf)
    page = _open(browser, service, admin)

    for typed, message in (
        ("0", "at least 1"),
        ("2.5", "not a whole number"),
        ("-3", "not a whole number"),
        ("100000", "at most 1,000"),
        ("", "Enter the quantity"),
    ):
        _add_licenses(page, typed)
        expect(_license_form(page).get_by_role("alert")).to_contain_text(message)
    _add_credit(page, "1500")
    expect(_credit_form(page).get_by_role("alert")).to_contain_text("packs of 1,000")
    _add_credit(page, "2000000")
    expect(_credit_form(page).get_by_role("alert")).to_contain_text("at most 1,000,000")
    assert _staged_count(service) == 0


def test_given_a_price_change_in_the_crm_before_accept_then_conflict_not_a_wrong_charge(
    service, sf, browser
):
    admin = pick_admin(sf)
    page = _open(browser, service, admin)
    _add_licenses(page, "5")
    _add_credit(page, "1000")
    item = price_item(sf, product_ids(sf)["LIC-AGENT"])
    sf.Apttus_Config2__PriceListItem__c.update(item["Id"], {"Apttus_Config2__ListPrice__c": 99})
    page.get_by_role("link", name="Account", exact=True).click()

    _accept(page, admin)

    first = page.locator(".set").first
    expect(first).to_contain_text("Conflict", timeout=TIMEOUT_MS)
    expect(first).to_contain_text("from $95.00 to $99.00")
    assert orders_with_lines(sf, admin.account) == []
    assert authorizations(sf, admin.account) == []

    first.get_by_role("button", name="Stage again").click()
    summary = page.locator("#purchase-summary")
    expect(summary.locator("tbody tr").nth(0)).to_contain_text("$99.00")
    expect(summary.locator("[data-total=order]")).to_have_text("$507.00")
    _accept(page, admin)
    expect(page.locator(".set").first).to_contain_text("Applied", timeout=TIMEOUT_MS)
    (order,) = orders_with_lines(sf, admin.account)
    assert Decimal(str(order["Apttus_Config2__OrderAmount__c"])) == Decimal("507.00")


def test_given_a_product_without_an_active_price_when_shown_then_it_cannot_be_bought(
    service, sf, browser
):
    from sync.pull import pull_mapping

    admin = pick_admin(sf)
    item = price_item(sf, product_ids(sf)["DIAL-MIN"])
    sf.Apttus_Config2__PriceListItem__c.update(item["Id"], {"Apttus_Config2__Active__c": False})
    pull_mapping(service.ctx, "price_list_items")

    page = _open(browser, service, admin)

    expect(page.locator(".not-for-sale").first).to_contain_text(
        "Dialer Minutes cannot be bought here: it has no active price in the Standard Price List"
    )
    expect(page.get_by_role("button", name="Add Credit")).to_have_count(0)
