"""The portal's pages over HTTP, on a migrated database (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import re

import httpx
import pytest

from sync.db.models import AccountContactRole, Order
from sync.portal.app import create_app
from sync.portal.server import PortalServer
from tests.support.portal_data import link_path, portal_settings


def sign_in(client: httpx.Client, contact: str) -> None:
    response = client.get(link_path(contact))
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/portal/"


def order_names(html: str) -> list[str]:
    return re.findall(r'href="/portal/orders/[A-Za-z0-9]{18}">([^<]+)</a>', html)


def invoice_numbers(html: str) -> list[str]:
    return re.findall(r"<tr>\s*<td class=\"nowrap\">([^<]+)</td>\s*<td><time", html)


def test_given_a_billing_admin_link_when_opened_then_purchased_products_is_the_default(
    client, world
):
    sign_in(client, world.admin)

    page = client.get("/portal/")

    assert page.status_code == 200
    html = page.text
    assert "<h1>Purchased Products</h1>" in html
    assert 'aria-current="page">Purchased Products' in html
    assert "Acme Corp" in html and "Signed in as Ada Admin" in html
    # license counts per license product, the dialer-minute balance, active assets only
    assert re.search(r'class="big">20</span> Seat License', html)
    assert re.search(r'class="big">2</span> Analytics License', html)
    assert re.search(r'class="big">5,000</span> minutes available', html)
    assert "$2,150.00" in html  # recurring total: 2,000 + 150 (usage minutes excluded)
    assert "Onboarding" not in html  # cancelled asset


def test_given_the_orders_tab_when_sorted_by_amount_then_rows_follow_the_amount(client, world):
    sign_in(client, world.admin)

    ascending = client.get("/portal/orders", params={"sort": "amount", "dir": "asc"})
    descending = client.get("/portal/orders", params={"sort": "amount", "dir": "desc"})
    by_date = client.get("/portal/orders", params={"sort": "date", "dir": "asc"})

    assert order_names(ascending.text) == ["O-0002", "O-0001", "O-0003"]
    assert order_names(descending.text) == ["O-0003", "O-0001", "O-0002"]
    assert order_names(by_date.text) == ["O-0001", "O-0002", "O-0003"]
    assert 'aria-sort="ascending"' in ascending.text
    assert "badge-warn" in ascending.text and ">Pending</span>" in ascending.text
    assert ">Activated</span>" in ascending.text
    assert "$9,800.00" in ascending.text


def test_given_the_orders_tab_when_filtered_by_range_or_one_date_then_only_those_show(
    client, world
):
    sign_in(client, world.admin)

    ranged = client.get("/portal/orders", params={"from": "2026-03-01", "to": "2026-06-30"})
    one_day = client.get("/portal/orders", params={"on": "2026-09-15"})
    empty = client.get("/portal/orders", params={"on": "2020-01-01"})

    assert sorted(order_names(ranged.text)) == ["O-0001", "O-0002"]
    assert order_names(one_day.text) == ["O-0003"]
    assert 'value="2026-09-15"' in one_day.text
    assert order_names(empty.text) == []
    assert "No orders match these filters." in empty.text


def test_given_a_bad_date_filter_when_listed_then_400_with_a_message_and_the_full_list(
    client, world
):
    sign_in(client, world.admin)

    page = client.get("/portal/orders", params={"from": "yesterday", "sort": "price"})

    assert page.status_code == 400
    assert "From: enter a date as YYYY-MM-DD." in page.text
    assert "Sort by date or amount." in page.text
    assert len(order_names(page.text)) == 3


def test_given_more_orders_than_a_page_when_paged_then_pages_link_and_cover_all(
    client, world, engine
):
    for i in range(30):
        world.data.order(world.acme, f"BULK-{i:03d}", dt.date(2025, 1, 1), f"{i}.00")
    sign_in(client, world.admin)

    first = client.get("/portal/orders", params={"sort": "amount", "dir": "asc"})
    second = client.get("/portal/orders", params={"sort": "amount", "dir": "asc", "page": "2"})
    beyond = client.get("/portal/orders", params={"sort": "amount", "dir": "asc", "page": "99"})

    assert "Page 1 of 2 · 33 orders" in first.text
    assert 'rel="next" href="/portal/orders?sort=amount&amp;dir=asc&amp;page=2"' in first.text
    names = order_names(first.text) + order_names(second.text)
    assert len(names) == 33 and len(set(names)) == 33
    assert names[0] == "BULK-000"
    assert "Page 2 of 2" in beyond.text  # clamped to the last page


def test_given_an_order_when_opened_then_its_lines_show(client, world):
    sign_in(client, world.admin)

    page = client.get(f"/portal/orders/{world.acme_orders[0]}")

    assert page.status_code == 200
    assert "<h1>Order O-0001</h1>" in page.text
    assert "Seat License" in page.text and "Implementation Fee" in page.text
    assert "$1,000.00" in page.text and "$500.00" in page.text


def test_given_the_account_tab_when_opened_then_details_cards_and_summary_show(client, world):
    sign_in(client, world.admin)

    html = client.get("/portal/account").text

    assert "5554443333" in html and "billing@example.com" in html
    assert "1 Main Street<br>Provo, UT 84601<br>USA" in html
    assert "Visa ending in 4242" in html and "MasterCard ending in 5454" in html
    assert "tok_test_0001" not in html  # payment tokens never reach the page
    rows = re.findall(r"<tr>(.*?)</tr>", html, re.S)
    visa = next(r for r in rows if "Visa ending" in r)
    master = next(r for r in rows if "MasterCard ending" in r)
    assert re.findall(r"<td>(Yes|No)</td>", visa) == ["Yes", "No"]  # Is Default, Is One Time
    assert re.findall(r"<td>(Yes|No)</td>", master) == ["No", "Yes"]
    assert "Recurring billing total" in html and "$2,150.00" in html


def test_given_the_recurring_total_when_assets_change_then_the_summary_follows(client, world):
    world.data.asset(world.acme, None, net_price="49.50")
    world.data.asset(world.acme, None, status="Expired", net_price="1000.00")
    sign_in(client, world.admin)

    assert "$2,199.50" in client.get("/portal/account").text


def test_given_the_invoices_tab_when_filtered_and_sorted_then_it_follows(client, world):
    sign_in(client, world.admin)

    all_by_amount = client.get("/portal/invoices", params={"sort": "amount", "dir": "desc"})
    in_2026 = client.get("/portal/invoices", params={"from": "2026-01-01", "to": "2026-12-31"})
    one_day = client.get("/portal/invoices", params={"on": "2026-04-01"})
    by_amount = client.get("/portal/invoices", params={"min": "100", "max": "$1,000"})

    assert invoice_numbers(all_by_amount.text) == ["INV-1001", "INV-1002", "INV-0900"]
    assert invoice_numbers(in_2026.text) == ["INV-1002", "INV-1001"]
    assert invoice_numbers(one_day.text) == ["INV-1001"]
    assert invoice_numbers(by_amount.text) == ["INV-1002"]
    assert "View Invoice Details" in in_2026.text


def test_given_an_invoice_when_its_details_open_then_lines_totals_and_actions_show(client, world):
    sign_in(client, world.admin)

    html = client.get(f"/portal/invoices/{world.acme_invoices[0]}").text

    assert "<h1>Invoice INV-1001</h1>" in html
    assert "Seat License, April" in html and "$1,120.00" in html and "$80.00" in html
    assert f'href="/portal/invoices/{world.acme_invoices[0]}/pdf"' in html
    assert "Download PDF" in html and "Print-friendly page" in html
    assert "historical invoice" not in html


def test_given_a_historical_invoice_when_opened_then_it_says_there_is_no_attachment(client, world):
    sign_in(client, world.admin)

    html = client.get(f"/portal/invoices/{world.historical_invoice}").text

    assert "This is a historical invoice: it has no attachment." in html


def test_given_an_invoice_when_downloaded_as_pdf_then_a_real_pdf_names_it(client, world):
    sign_in(client, world.admin)

    response = client.get(f"/portal/invoices/{world.acme_invoices[0]}/pdf")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert 'filename="invoice-INV-1001.pdf"' in response.headers["content-disposition"]
    body = response.content
    assert body.startswith(b"%PDF-")
    assert body.rstrip().endswith(b"%%EOF")
    assert b"(Invoice INV-1001) Tj" in body
    assert b"($1,200.00) Tj" in body and b"(Seat License, April) Tj" in body


def test_given_the_print_page_when_opened_then_it_is_the_invoice_without_navigation(client, world):
    sign_in(client, world.admin)

    html = client.get(f"/portal/invoices/{world.acme_invoices[1]}/print").text

    assert "<h1>Invoice INV-1002</h1>" in html and "Analytics License" in html
    assert 'class="tabs"' not in html
    assert 'id="print-button"' in html


def test_given_an_asset_and_a_payment_method_when_opened_then_their_details_show(client, world):
    sign_in(client, world.admin)

    asset = client.get(f"/portal/products/{world.acme_assets[0]}")
    method = client.get(f"/portal/account/payment-methods/{world.acme_payment_methods[1]}")

    assert asset.status_code == 200 and "<h1>Seat License</h1>" in asset.text
    assert method.status_code == 200 and "<h1>MasterCard ending in 5454</h1>" in method.text


def test_given_an_admin_of_two_accounts_when_signed_in_then_they_choose_one(client, world):
    sign_in(client, world.multi_admin)

    first = client.get("/portal/")
    chooser = client.get("/portal/accounts")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', chooser.text)
    assert csrf
    chosen = client.post(
        "/portal/accounts", data={"csrf_token": csrf.group(1), "account": world.initech}
    )
    after = client.get("/portal/")

    assert first.status_code == 303 and first.headers["location"] == "/portal/accounts"
    assert "Globex Inc" in chooser.text and "Initech LLC" in chooser.text
    assert chosen.status_code == 303
    assert after.status_code == 200 and "Initech LLC" in after.text
    assert "Switch account" in after.text


def test_given_a_chosen_account_when_its_role_goes_then_the_other_account_is_used(
    client, world, engine
):
    sign_in(client, world.multi_admin)
    chooser = client.get("/portal/accounts")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', chooser.text)
    assert csrf
    client.post("/portal/accounts", data={"csrf_token": csrf.group(1), "account": world.initech})
    with engine.begin() as conn:
        conn.execute(
            AccountContactRole.__table__.update()
            .where(
                AccountContactRole.contact_sfid == world.multi_admin,
                AccountContactRole.account_sfid == world.initech,
            )
            .values(is_deleted=True)
        )

    page = client.get("/portal/")

    assert page.status_code == 200 and "Globex Inc" in page.text and "Initech" not in page.text


@pytest.mark.parametrize("who", ["business_user", "no_role"])
def test_given_a_non_admin_when_signed_in_then_only_coming_soon_shows(client, world, who):
    sign_in(client, getattr(world, who))

    for path in ("/portal/", "/portal/orders", "/portal/account", "/portal/invoices"):
        page = client.get(path)
        assert page.status_code == 403
        body = re.sub(r"<head>.*?</head>", "", page.text, flags=re.S)
        visible = re.sub(r"<[^>]+>", " ", body).split()
        assert " ".join(visible) == "new billing portal coming soon"


def test_given_an_admin_whose_role_is_removed_when_next_requesting_then_coming_soon(
    client, world, engine
):
    sign_in(client, world.admin)
    assert client.get("/portal/orders").status_code == 200
    with engine.begin() as conn:
        conn.execute(
            AccountContactRole.__table__.update()
            .where(AccountContactRole.contact_sfid == world.admin)
            .values(is_deleted=True)
        )

    page = client.get("/portal/orders")

    assert page.status_code == 403 and "O-0001" not in page.text


def test_given_a_signed_in_admin_when_signing_out_then_the_cookie_is_gone(client, world):
    sign_in(client, world.admin)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/portal/").text)
    assert csrf

    refused = client.post("/portal/sign-out", data={"csrf_token": "wrong"})
    out = client.post("/portal/sign-out", data={"csrf_token": csrf.group(1)})
    after = client.get("/portal/")

    assert refused.status_code == 403
    assert out.status_code == 200 and "You have signed out" in out.text
    assert after.status_code == 401


def test_given_a_session_when_its_lifetime_passes_then_sign_in_is_asked_again(engine, world):
    now = [dt.datetime(2026, 11, 22, 10, 0, tzinfo=dt.UTC)]
    app = create_app(portal_settings(), engine, session_ttl=600, clock=lambda: now[0])
    with (
        PortalServer(portal_settings(), engine, app=app) as server,
        httpx.Client(base_url=server.url or "") as client,
    ):
        response = client.get(link_path(world.admin, now=now[0]))
        assert "max-age=600" in response.headers["set-cookie"].lower()
        assert client.get("/portal/").status_code == 200

        now[0] += dt.timedelta(seconds=601)

        assert client.get("/portal/").status_code == 401


def test_given_any_page_when_served_then_security_headers_and_timing_are_set(client, world):
    sign_in(client, world.admin)

    for path in ("/portal/", "/portal/orders", "/healthz", "/static/portal.css", "/nope"):
        headers = client.get(path).headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "default-src 'none'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"
        assert re.fullmatch(r"app;dur=\d+\.\d\d", headers["server-timing"])
    assert client.get("/portal/").headers["cache-control"] == "no-store"


def test_given_a_link_over_http_when_opened_then_the_cookie_is_httponly_lax_not_secure(
    client, world
):
    cookie = client.get(link_path(world.admin)).headers["set-cookie"]

    assert cookie.startswith("billing_portal=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie


def test_given_https_behind_a_proxy_when_a_link_is_opened_then_the_cookie_is_secure(client, world):
    https = {"X-Forwarded-Proto": "https"}
    response = client.get(link_path(world.admin), headers=https)
    cookie = response.headers["set-cookie"]
    name, _, rest = cookie.partition("=")
    page = client.get("/portal/", headers={**https, "Cookie": f"{name}={rest.split(';')[0]}"})
    plain = client.get("/portal/", headers={"Cookie": f"{name}={rest.split(';')[0]}"})

    assert cookie.startswith("__Host-billing_portal=")
    assert "Secure" in cookie and "HttpOnly" in cookie and "Domain" not in cookie
    assert page.status_code == 200
    assert page.headers["strict-transport-security"].startswith("max-age=")
    assert plain.status_code == 401  # the secure cookie's name is only read over https


def test_given_health_endpoints_when_the_database_is_current_then_ready(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_given_an_empty_database_when_readiness_is_checked_then_503(sqlite_database_url):
    from sync.db.engine import make_engine

    engine = make_engine(sqlite_database_url)
    try:
        with (
            PortalServer(portal_settings(), engine) as server,
            httpx.Client(base_url=server.url or "") as client,
        ):
            ready = client.get("/readyz")
            alive = client.get("/healthz")
    finally:
        engine.dispose()
    assert ready.status_code == 503 and ready.json()["database"] == "schema outdated"
    assert alive.status_code == 200


def test_given_the_portal_server_when_started_then_it_serves_over_real_http(engine, world):
    with PortalServer(portal_settings(), engine) as server:
        assert server.url and server.url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=server.url, follow_redirects=True) as http:
            page = http.get(link_path(world.admin))
            orders = http.get("/portal/orders", params={"sort": "amount"})
    assert page.status_code == 200 and "Purchased Products" in page.text
    assert orders.status_code == 200 and "O-0003" in orders.text
    assert "server-timing" in orders.headers


def test_given_an_order_with_null_amount_and_date_when_listed_then_it_sorts_last(client, world):
    world.data.order(world.acme, "O-NULL", None, None)
    sign_in(client, world.admin)

    asc = order_names(client.get("/portal/orders", params={"sort": "amount", "dir": "asc"}).text)
    desc = order_names(client.get("/portal/orders", params={"sort": "date", "dir": "desc"}).text)

    assert asc[-1] == "O-NULL" and desc[-1] == "O-NULL"


def test_given_a_deleted_order_when_listed_or_opened_then_it_is_gone(client, world):
    world.data.delete(Order, world.acme_orders[2])
    sign_in(client, world.admin)

    assert "O-0003" not in client.get("/portal/orders").text
    assert client.get(f"/portal/orders/{world.acme_orders[2]}").status_code == 404
