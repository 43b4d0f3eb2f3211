"""A Billing Admin's changes, made in Debian's chromium, reach the CRM only after Accept.

The whole service runs in one process (portal, change check, pulls, push) against the
sandbox over HTTP; the CRM is checked with simple-salesforce. SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.support.browser import chromium, needs_chromium
from tests.support.changes import (
    CARD,
    CVC,
    Admin,
    Service,
    active_methods,
    authorizations,
    pick_admin,
    running_service,
    wait_for,
)
from tests.support.portal_data import link_path

pytestmark = [*needs_chromium, pytest.mark.slow]

TIMEOUT_MS = 20_000


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
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(service.url + link_path(admin.contact))
    page.get_by_role("link", name="Account", exact=True).click()
    expect(page.get_by_role("heading", name="Account", exact=True)).to_be_visible()
    return page


def _accept(page: Any, first: str, last: str) -> None:
    page.get_by_label("First name").fill(first)
    page.get_by_label("Last name").fill(last)
    page.get_by_role("button", name="Accept", exact=True).click()


def _sets(service: Service, account: str) -> list[Any]:
    return service.sql(
        "SELECT id, state, message FROM change_sets WHERE account_sfid = :a ORDER BY id",
        a=account,
    )


def test_given_account_edits_when_accepted_with_own_name_then_the_crm_gets_them_once(
    service, sf, browser, artifacts_dir
):
    admin = pick_admin(sf)
    before = sf.Account.get(admin.account)
    page = _open(browser, service, admin)

    page.get_by_label("Phone", exact=True).fill("+1 (555) 444-3333")
    page.get_by_label("City").fill("Springfield")
    page.get_by_role("button", name="Update Account").click()

    pending = page.locator("#pending")
    expect(pending).to_contain_text(f"Phone: {before['Phone'] or '(empty)'} -> 5554443333")
    expect(pending).to_contain_text("City:")
    # Every tab shows the banner while changes are pending.
    page.get_by_role("link", name="Orders", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("2 pending changes")
    page.get_by_role("link", name="Review and accept pending changes").click()
    # Staged is not sent: the CRM still has the old values.
    assert sf.Account.get(admin.account)["Phone"] == before["Phone"]

    # Someone else's name is refused, and nothing is accepted.
    _accept(page, "Somebody", "Else")
    expect(page.get_by_role("alert")).to_contain_text("must be your own")
    assert _sets(service, admin.account) == []

    # The admin's own name, typed in another case with spaces around it, is accepted.
    _accept(page, f"  {admin.first_name.upper()} ", f" {admin.last_name.lower()}  ")
    expect(page.locator(".set").first).to_contain_text("Applied", timeout=TIMEOUT_MS)
    page.screenshot(path=str(artifacts_dir / "changes-applied.png"), full_page=True)

    after = sf.Account.get(admin.account)
    assert after["Phone"] == "5554443333" and after["BillingCity"] == "Springfield"
    auths = authorizations(sf, admin.account)
    assert len(auths) == 1
    assert auths[0]["Contact__c"] == admin.contact
    assert (
        auths[0]["Authorized_By_Name__c"] == f"{admin.first_name.upper()} {admin.last_name.lower()}"
    )
    assert "Phone:" in auths[0]["Summary__c"] and "5554443333" in auths[0]["Summary__c"]
    (row,) = _sets(service, admin.account)
    assert row.state == "applied"
    # The history names who authorized what, and the pulled account shows the new phone.
    history = page.locator("section", has=page.get_by_role("heading", name="Authorization history"))
    expect(history).to_contain_text(f"{admin.first_name.upper()} {admin.last_name.lower()}")
    assert wait_for(
        lambda: (
            service.sql("SELECT phone FROM accounts WHERE sfid = :a", a=admin.account)[0][0]
            == "5554443333"
        )
    )


def test_given_an_invalid_phone_when_updated_then_refused_with_the_format_and_nothing_staged(
    service, sf, browser
):
    admin = pick_admin(sf)
    page = _open(browser, service, admin)
    page.get_by_label("Phone", exact=True).fill("555-0100 ext 7")
    page.get_by_role("button", name="Update Account").click()
    expect(page.locator("#acct-phone-error")).to_contain_text("'5554443333'")
    assert service.sql("SELECT COUNT(*) FROM staged_changes")[0][0] == 0


def _row(page: Any, method: str) -> Any:
    return page.locator("tr", has=page.locator(f"a[href$='{method}']"))


def _applied(page: Any) -> None:
    expect(page.locator(".set").first).to_contain_text("Applied", timeout=TIMEOUT_MS)


def _mirrored_default(service: Service, method: str) -> bool:
    rows = service.sql("SELECT is_default FROM payment_methods WHERE sfid = :s", s=method)
    return bool(rows and rows[0][0])


def test_given_cards_when_added_made_default_and_removed_then_one_default_and_no_card_data_kept(
    service, sf, browser, caplog, database_url
):
    caplog.set_level(logging.DEBUG)
    admin = pick_admin(sf)
    (old,) = [
        m["Id"] for m in active_methods(sf, admin.account) if m["Apttus_Billing__IsDefault__c"]
    ]
    page = _open(browser, service, admin)
    # The default method has no Remove button (make another the default first).
    expect(_row(page, old).get_by_role("button", name=re.compile("^Remove"))).to_have_count(0)

    # A declined card is refused with the gateway's words; nothing is staged.
    page.get_by_role("button", name="Add Card").click()
    form = page.locator("#add-card")
    form.get_by_label("Name on card").fill(f"{admin.first_name} {admin.last_name}")
    form.get_by_label("Card number").fill("4000 0000 0000 0002")
    form.get_by_label("Expiration month").fill("12")
    form.get_by_label("Expiration year").fill("2031")
    form.get_by_label("CVC").fill("123")
    form.get_by_role("button", name="Add Card").click()
    expect(page.get_by_role("alert")).to_contain_text("declined")
    assert service.sql("SELECT COUNT(*) FROM staged_changes")[0][0] == 0
    # The number and CVC are not echoed back into the page.
    assert form.get_by_label("Card number").input_value() == ""

    # A good card, as the new default.
    form.get_by_label("Card number").fill(CARD)
    form.get_by_label("CVC").fill(CVC)
    form.get_by_label("Is Default").check()
    form.get_by_role("button", name="Add Card").click()
    expect(page.locator("#pending")).to_contain_text("Add card: Visa ending in 4242")
    _accept(page, admin.first_name, admin.last_name)
    _applied(page)
    methods = active_methods(sf, admin.account)
    (new,) = [m for m in methods if m["Apttus_Billing__CardLastFour__c"] == "4242"]
    assert [m["Id"] for m in methods if m["Apttus_Billing__IsDefault__c"]] == [new["Id"]]
    assert new["Apttus_Billing__CardType__c"] == "Visa"
    assert new["Apttus_Billing__PaymentToken__c"].startswith("tok_test_")

    # Make the old method the default again: both flags change in one request.
    assert wait_for(lambda: not _mirrored_default(service, old))
    page.goto(service.url + "/portal/account")
    _row(page, old).get_by_role("button", name=re.compile("^Make default")).click()
    expect(page.locator("#pending")).to_contain_text("Make default:")
    _accept(page, admin.first_name, admin.last_name)
    _applied(page)
    methods = active_methods(sf, admin.account)
    assert [m["Id"] for m in methods if m["Apttus_Billing__IsDefault__c"]] == [old]

    # Remove the new card, now that it is not the default.
    assert wait_for(lambda: not _mirrored_default(service, new["Id"]))
    page.goto(service.url + "/portal/account")
    _row(page, new["Id"]).get_by_role("button", name=re.compile("^Remove")).click()
    expect(page.locator("#pending")).to_contain_text("Remove: Visa ending in 4242")
    _accept(page, admin.first_name, admin.last_name)
    _applied(page)
    removed = sf.Apttus_Billing__PaymentMethod__c.get(new["Id"])
    assert removed["Apttus_Billing__Status__c"] == "Inactive"
    assert not removed["Apttus_Billing__IsDefault__c"]
    methods = active_methods(sf, admin.account)
    assert [m["Id"] for m in methods if m["Apttus_Billing__IsDefault__c"]] == [old]

    # The card number and CVC are nowhere: not in the CRM, the database, the logs.
    digits = CARD.replace(" ", "")
    crm_text = str(sf.Apttus_Billing__PaymentMethod__c.get(new["Id"]))
    assert digits not in crm_text and CVC not in crm_text
    tables = ("staged_changes", "change_sets", "change_items", "audit_log", "payment_methods")
    for table in tables:
        dump = str(service.sql(f"SELECT * FROM {table}"))
        assert digits not in dump and f"'{CVC}'" not in dump, table
    if database_url.startswith("sqlite:///"):
        raw = Path(database_url.removeprefix("sqlite:///")).read_bytes()
        assert digits.encode() not in raw
    assert digits not in caplog.text and f" {CVC}" not in caplog.text


def test_given_a_csm_edit_after_the_page_loaded_when_accepted_then_conflict_then_restaged(
    service, sf, browser
):
    admin = pick_admin(sf)
    page = _open(browser, service, admin)
    # The CSM changes the phone in the CRM while the admin looks at the page.
    sf.Account.update(admin.account, {"Phone": "(212) 555-0100"})

    page.get_by_label("Phone", exact=True).fill("555.444.3333")
    page.get_by_role("button", name="Update Account").click()
    _accept(page, admin.first_name, admin.last_name)

    first = page.locator(".set").first
    expect(first).to_contain_text("Conflict", timeout=TIMEOUT_MS)
    expect(first).to_contain_text("the billing system now has (212) 555-0100")
    assert sf.Account.get(admin.account)["Phone"] == "(212) 555-0100"  # not overwritten

    # Stage again: the CRM's value becomes the value seen; accepted, it applies.
    first.get_by_role("button", name="Stage again").click()
    expect(page.locator("#pending")).to_contain_text("Phone: (212) 555-0100 -> 5554443333")
    _accept(page, admin.first_name, admin.last_name)
    expect(page.locator(".set").first).to_contain_text("Applied", timeout=TIMEOUT_MS)
    assert sf.Account.get(admin.account)["Phone"] == "5554443333"
    states = [row.state for row in _sets(service, admin.account)]
    assert states == ["cancelled", "applied"]  # the conflicted set was replaced, never pushed
