"""The portal under attack: forged links, tampered cookies, foreign ids, injection."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re

import httpx
import pytest
from sqlalchemy import func, select

from sync.db.models import Account, Invoice, InvoiceLine, Order
from sync.portal.links import ENTER_PATH, PortalSigner
from sync.portal.server import PortalServer
from tests.support.portal_data import SECRET, World, link_path, portal_settings

SIGN_IN = "Sign in through the community portal"
PAGES = ["/portal/", "/portal/orders", "/portal/account", "/portal/invoices", "/portal/accounts"]


def sign_in(client: httpx.Client, contact: str) -> str:
    response = client.get(link_path(contact))
    assert response.status_code == 303
    return client.cookies["billing_portal"]


def assert_sign_in_page(response: httpx.Response) -> None:
    assert response.status_code == 401
    assert SIGN_IN in response.text
    assert "Traceback" not in response.text and "Error" not in response.text


def enter(client: httpx.Client, token: str) -> httpx.Response:
    return client.get(ENTER_PATH, params={"token": token})


def test_given_a_link_signed_with_another_secret_when_opened_then_401_and_no_session(client, world):
    forged = PortalSigner("attacker-secret-0123456789").make_link_token(world.admin)

    response = enter(client, forged)

    assert_sign_in_page(response)
    assert "billing_portal" not in client.cookies
    assert_sign_in_page(client.get("/portal/"))


def test_given_an_expired_link_when_opened_then_401(client, world):
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    expired = PortalSigner(SECRET).make_link_token(world.admin, ttl=3600, now=old)

    assert_sign_in_page(enter(client, expired))


def test_given_a_link_rewritten_to_another_contact_when_opened_then_401(client, world):
    token = PortalSigner(SECRET).make_link_token(world.business_user)
    payload, signature = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["c"] = world.admin
    rewritten = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    assert_sign_in_page(enter(client, f"{rewritten}.{signature}"))


@pytest.mark.parametrize("token", ["", "x", "a.b", "%00", "<script>", "A" * 4000])
def test_given_a_missing_or_garbage_link_when_opened_then_401(client, world, token):
    assert_sign_in_page(enter(client, token))


def test_given_no_cookie_when_any_page_is_asked_then_401(client, world):
    for path in [*PAGES, f"/portal/orders/{world.acme_orders[0]}"]:
        assert_sign_in_page(client.get(path))


def test_given_a_tampered_cookie_when_any_page_is_asked_then_401_and_it_is_cleared(client, world):
    cookie = sign_in(client, world.admin)
    payload, signature = cookie.split(".")
    variants = [
        payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + signature,
        payload + "." + signature[::-1],
        payload,
        cookie + "x",
        PortalSigner("attacker-secret-0123456789").dump_session(
            PortalSigner("attacker-secret-0123456789").new_session(world.admin)
        ),
    ]
    for value in variants:
        client.cookies.clear()
        client.cookies.set("billing_portal", value)
        for path in PAGES:
            response = client.get(path)
            assert_sign_in_page(response)
            assert 'billing_portal=""' in response.headers.get("set-cookie", "")


def test_given_a_validly_signed_session_naming_a_foreign_account_then_it_is_ignored(client, world):
    signer = PortalSigner(SECRET)
    session = signer.new_session(world.admin).with_account(world.globex)
    client.cookies.set("billing_portal", signer.dump_session(session))

    page = client.get("/portal/orders")

    assert page.status_code == 200
    assert "O-0001" in page.text and "G-ORDER-1" not in page.text


def _foreign_detail_paths(world: World) -> list[str]:
    ids = [
        *world.globex_orders,
        *world.globex_invoices,
        *world.globex_assets,
        *world.globex_payment_methods,
        world.globex,
        world.multi_admin,
    ]
    templates = [
        "/portal/orders/{}",
        "/portal/invoices/{}",
        "/portal/invoices/{}/print",
        "/portal/invoices/{}/pdf",
        "/portal/products/{}",
        "/portal/account/payment-methods/{}",
    ]
    return [t.format(i) for t in templates for i in ids]


def test_given_another_accounts_ids_when_every_detail_route_is_tried_then_404_and_nothing(
    client, world
):
    sign_in(client, world.admin)
    leaks = ["Globex", "G-ORDER-1", "G-INV-1", "1111", "$777.00", "Max", "Multi"]

    paths = _foreign_detail_paths(world)
    for path in paths:
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("text/html"), path
        for leak in leaks:
            assert leak not in response.text, (path, leak)
    assert len(paths) == 6 * 6


def test_given_own_ids_on_the_same_routes_when_tried_then_they_answer(client, world):
    sign_in(client, world.admin)

    for path in (
        f"/portal/orders/{world.acme_orders[0]}",
        f"/portal/invoices/{world.acme_invoices[0]}",
        f"/portal/invoices/{world.acme_invoices[0]}/print",
        f"/portal/invoices/{world.acme_invoices[0]}/pdf",
        f"/portal/products/{world.acme_assets[0]}",
        f"/portal/account/payment-methods/{world.acme_payment_methods[0]}",
    ):
        assert client.get(path).status_code == 200, path


@pytest.mark.parametrize(
    "raw_id",
    ["1' OR '1'='1", "a0A000000000001AAA' OR 1=1--", "%27%20OR%201=1", "..%2F..%2Fetc", "x" * 300],
)
def test_given_injection_in_a_detail_id_when_asked_then_404(client, world, raw_id):
    sign_in(client, world.admin)

    for template in ("/portal/orders/{}", "/portal/invoices/{}/pdf", "/portal/products/{}"):
        response = client.get(template.format(raw_id))
        assert response.status_code == 404
        assert "Traceback" not in response.text


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/portal/orders", {"from": "2026-01-01' OR '1'='1"}),
        ("/portal/orders", {"on": "2026-01-01; DROP TABLE orders"}),
        ("/portal/orders", {"sort": "amount; DROP TABLE orders", "dir": "desc--"}),
        ("/portal/orders", {"page": "1 OR 1=1"}),
        ("/portal/invoices", {"min": "0 OR 1=1", "max": "1e999"}),
        ("/portal/invoices", {"to": "' UNION SELECT sfid FROM accounts --"}),
    ],
)
def test_given_sql_in_filters_when_listed_then_400_own_rows_only_and_tables_intact(
    client, world, engine, path, params
):
    sign_in(client, world.admin)

    response = client.get(path, params=params)

    assert response.status_code == 400
    assert "Some filters could not be used" in response.text
    assert "G-ORDER-1" not in response.text and "G-INV-1" not in response.text
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Order)).scalar_one() == 4
        assert conn.execute(select(func.count()).select_from(Account)).scalar_one() == 3


def test_given_html_in_filters_when_refilled_then_it_is_escaped(client, world):
    sign_in(client, world.admin)
    attack = '"><script>alert(1)</script>'

    for path in ("/portal/orders", "/portal/invoices"):
        response = client.get(path, params={"on": attack, "min": attack})
        assert "<script>alert(1)</script>" not in response.text
        assert "&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in response.text


def test_given_html_and_sql_in_crm_data_when_shown_then_it_is_escaped_everywhere(
    client, world, engine
):
    d = world.data
    d.set(Account, world.acme, name="<b>Acme</b> & Sons", billing_street="<img src=x onerror=1>")
    order = d.order(world.acme, "<script>alert('o')</script>", dt.date(2026, 10, 1), "1.00")
    invoice = d.invoice(
        world.acme,
        "INV-<i>7</i>",
        dt.datetime(2026, 10, 2, tzinfo=dt.UTC),
        "2.00",
        lines=[("'); DROP TABLE invoices; -- <svg onload=alert(2)>", 1, "2.00", "0.00")],
    )
    sign_in(client, world.admin)

    pages = {
        "/portal/": client.get("/portal/"),
        "/portal/orders": client.get("/portal/orders"),
        "order": client.get(f"/portal/orders/{order}"),
        "/portal/account": client.get("/portal/account"),
        "/portal/invoices": client.get("/portal/invoices"),
        "invoice": client.get(f"/portal/invoices/{invoice}"),
        "print": client.get(f"/portal/invoices/{invoice}/print"),
    }
    for name, response in pages.items():
        assert response.status_code == 200, name
        html = response.text
        for raw in ("<b>Acme</b>", "<script>alert", "<img src=x", "<i>7</i>", "<svg onload"):
            assert raw not in html, (name, raw)
    assert "&lt;b&gt;Acme&lt;/b&gt; &amp; Sons" in pages["/portal/"].text
    assert "&lt;script&gt;alert(&#39;o&#39;)&lt;/script&gt;" in pages["order"].text
    assert "&lt;svg onload=alert(2)&gt;" in pages["invoice"].text
    pdf = client.get(f"/portal/invoices/{invoice}/pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    assert b"INV-<i>7</i>" in pdf.content  # text in a PDF is drawn, never interpreted
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Invoice)).scalar_one() == 5
        assert conn.execute(select(func.count()).select_from(InvoiceLine)).scalar_one() == 6


def test_given_another_accounts_id_in_the_account_choice_when_posted_then_404(client, world):
    sign_in(client, world.multi_admin)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/portal/accounts").text)
    assert csrf

    foreign = client.post(
        "/portal/accounts", data={"csrf_token": csrf.group(1), "account": world.acme}
    )
    no_csrf = client.post("/portal/accounts", data={"account": world.globex})
    after = client.get("/portal/")

    assert foreign.status_code == 404 and "Acme" not in foreign.text
    assert no_csrf.status_code == 403
    assert after.status_code == 303  # still has to choose


def test_given_unknown_paths_and_methods_when_asked_then_plain_pages(client, world):
    sign_in(client, world.admin)

    missing = client.get("/portal/nothing-here")
    traversal = client.get("/static/..%2F..%2Fapp.py")
    wrong_method = client.delete("/portal/orders")

    assert missing.status_code == 404 and "Not found" in missing.text
    assert traversal.status_code == 404 and "import" not in traversal.text
    assert wrong_method.status_code == 405
    for response in (missing, traversal, wrong_method):
        assert "Traceback" not in response.text


def test_given_a_broken_database_when_a_page_is_asked_then_a_plain_500_with_headers(
    sqlite_database_url, caplog
):
    from sync.db.engine import make_engine

    engine = make_engine(sqlite_database_url)  # never migrated: every query fails
    try:
        with (
            PortalServer(portal_settings(), engine) as server,
            httpx.Client(base_url=server.url or "", follow_redirects=True) as http,
        ):
            response = http.get(link_path("003000000000001AAA"))
    finally:
        engine.dispose()

    assert response.status_code == 500
    assert "Something went wrong" in response.text
    for leak in ("Traceback", "OperationalError", "no such table", "SELECT"):
        assert leak not in response.text
    assert response.headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert any("unexpected error" in r.getMessage() for r in caplog.records)
