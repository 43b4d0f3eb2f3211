"""A Billing Admin and a non-admin walk the portal in Debian's chromium (Playwright)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest

from sync.db.engine import make_engine
from sync.portal.server import PortalServer
from tests.support.browser import chromium, needs_chromium
from tests.support.portal_data import World, build_world, link_path, portal_settings

pytestmark = needs_chromium


@pytest.fixture
def portal(sqlite_database_url, migrate) -> Iterator[tuple[str, World]]:
    migrate(sqlite_database_url)
    engine = make_engine(sqlite_database_url)
    world = build_world(engine)
    for i in range(30):  # enough orders for a second page
        world.data.order(world.acme, f"HIST-{i:03d}", dt.date(2024, 1, 1 + i % 28), f"{10 + i}.00")
    try:
        with PortalServer(portal_settings(), engine) as server:
            assert server.url
            yield server.url, world
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One chromium for the module's tests; each test opens its own context."""
    with chromium() as launched:
        yield launched


def _cells(page: Any, column: int) -> list[str]:
    texts: list[str] = page.locator(f"tbody tr td:nth-child({column})").all_inner_texts()
    return [t.strip() for t in texts]


def _amounts(page: Any) -> list[float]:
    return [float(re.sub(r"[$,]", "", t)) for t in _cells(page, 4)]


def test_given_a_billing_admin_when_walking_every_tab_then_the_portal_works(
    portal, browser, artifacts_dir
):
    base, world = portal
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        # The community portal's link opens the portal on Purchased Products.
        page.goto(base + link_path(world.admin))
        assert page.url == base + "/portal/"
        assert page.locator("h1").inner_text() == "Purchased Products"
        assert page.get_by_text("minutes available").is_visible()
        page.screenshot(path=str(artifacts_dir / "portal-products.png"), full_page=True)

        # Orders: sort by amount both ways, filter by a range and by one date, paginate.
        page.get_by_role("link", name="Orders", exact=True).click()
        assert page.locator("h1").inner_text() == "Orders"
        assert page.get_by_text("Page 1 of 2").is_visible()
        page.get_by_label("Sort by").select_option("amount")
        page.get_by_label("Order", exact=True).select_option("asc")
        page.get_by_role("button", name="Apply").click()
        ascending = _amounts(page)
        assert ascending == sorted(ascending) and len(ascending) == 25
        page.get_by_role("link", name="Total price").click()  # header toggles direction
        descending = _amounts(page)
        assert descending == sorted(descending, reverse=True)
        assert descending[0] == 9800.0
        page.get_by_role("link", name="Next").click()
        assert page.get_by_text("Page 2 of 2").is_visible()

        page.goto(base + "/portal/orders")
        page.get_by_label("From").fill("2026-03-01")
        page.get_by_label("To").fill("2026-06-30")
        page.get_by_role("button", name="Apply").click()
        assert sorted(_cells(page, 1)) == ["O-0001", "O-0002"]
        assert set(_cells(page, 3)) == {"Activated", "Pending"}
        page.screenshot(path=str(artifacts_dir / "portal-orders-filtered.png"), full_page=True)

        page.get_by_role("link", name="Clear").click()
        page.get_by_label("On date").fill("2026-09-15")
        page.get_by_role("button", name="Apply").click()
        assert _cells(page, 1) == ["O-0003"]
        page.get_by_role("link", name="O-0003").click()
        assert page.locator("h1").inner_text() == "Order O-0003"
        assert page.get_by_role("cell", name="Subscription Fee").is_visible()

        # Account: details, masked cards with their flags, recurring billing total.
        page.get_by_role("link", name="Account", exact=True).click()
        assert page.get_by_role("link", name="Visa ending in 4242").is_visible()
        assert page.get_by_role("columnheader", name="Is One Time").is_visible()
        assert page.get_by_text("$2,150.00").is_visible()
        page.screenshot(path=str(artifacts_dir / "portal-account.png"), full_page=True)

        # Invoices: sort by amount, open one, print page, download its PDF.
        page.get_by_role("link", name="Invoices", exact=True).click()
        page.get_by_label("Sort by").select_option("amount")
        page.get_by_role("button", name="Apply").click()
        assert _cells(page, 1) == ["INV-1001", "INV-1002", "INV-0900"]
        page.screenshot(path=str(artifacts_dir / "portal-invoices.png"), full_page=True)
        page.get_by_role("link", name="View Invoice Details of INV-1001").click()
        assert page.locator("h1").inner_text() == "Invoice INV-1001"
        with page.expect_download() as download_info:
            page.get_by_role("link", name="Download PDF").click()
        download = download_info.value
        pdf_path = artifacts_dir / "portal-invoice-INV-1001.pdf"
        download.save_as(str(pdf_path))
        body = pdf_path.read_bytes()
        assert download.suggested_filename == "invoice-INV-1001.pdf"
        assert body.startswith(b"%PDF")
        assert b"INV-1001" in body
        page.screenshot(path=str(artifacts_dir / "portal-invoice.png"), full_page=True)
        page.get_by_role("link", name="Print-friendly page").click()
        assert page.get_by_role("button", name="Print").is_visible()
        assert page.locator("nav.tabs").count() == 0

        page.goto(base + f"/portal/invoices/{world.historical_invoice}")
        assert page.get_by_text("it has no attachment").is_visible()
    finally:
        context.close()


def test_given_a_phone_when_the_portal_opens_then_tabs_and_tables_fit(
    portal, browser, artifacts_dir
):
    base, world = portal
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    try:
        page.goto(base + link_path(world.admin))
        page.get_by_role("link", name="Invoices", exact=True).click()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390  # wide tables scroll inside their box, not the page
        page.screenshot(path=str(artifacts_dir / "portal-phone-invoices.png"), full_page=True)
        # Keyboard: the first Tab reaches the skip link.
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    finally:
        context.close()


def test_given_a_non_admin_when_opening_the_link_then_only_coming_soon_shows(
    portal, browser, artifacts_dir
):
    base, world = portal
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        response = page.goto(base + link_path(world.business_user))
        assert response is not None and response.status == 403
        assert page.locator("body").inner_text().strip() == "new billing portal coming soon"
        box = page.get_by_text("new billing portal coming soon").bounding_box()
        assert box is not None and box["x"] > 640 and box["y"] < 100  # top right corner
        page.screenshot(path=str(artifacts_dir / "portal-coming-soon.png"))

        forged = page.goto(base + "/portal/enter?token=forged.token")
        assert forged is not None and forged.status == 401
        assert "Sign in through the community portal" in page.locator("h1").inner_text()
        page.screenshot(path=str(artifacts_dir / "portal-sign-in.png"))
    finally:
        context.close()
