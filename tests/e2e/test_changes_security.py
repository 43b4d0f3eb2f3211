"""The change forms under attack: no CSRF token, another origin, a non-admin, a revoked
admin, another account's ids. Each is refused and nothing is staged. SQLite and
PostgreSQL, the portal over real HTTP."""

from __future__ import annotations

import datetime as dt
import re

import httpx
from sqlalchemy import func, select

from sync.changes.staging import drop_revoked
from sync.db import service_state
from sync.db.models import AccountContactRole, ChangeSet, StagedChange
from tests.support.portal_data import link_path

PHONE_FORM = {"phone": "555 444 3333", "seen_phone": ""}


def sign_in(client: httpx.Client, contact: str) -> str:
    """Sign ``contact`` in; the CSRF token of their session."""
    assert client.get(link_path(contact)).status_code == 303
    html = client.get("/portal/account").text
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


def staged_count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(StagedChange)).scalar_one()


def test_given_the_session_token_when_posting_then_the_change_is_staged(client, world, engine):
    token = sign_in(client, world.admin)

    response = client.post("/portal/account/details", data={**PHONE_FORM, "csrf_token": token})

    assert response.status_code == 303, response.text
    assert staged_count(engine) == 1


def test_given_the_crms_field_limits_when_a_longer_value_is_posted_then_400_and_nothing_staged(
    client, world, engine
):
    now = dt.datetime.now(dt.UTC)
    service_state.write(engine, service_state.FIELD_LIMITS_KEY, {"accounts": {"phone": 8}}, now)
    token = sign_in(client, world.admin)

    response = client.post("/portal/account/details", data={**PHONE_FORM, "csrf_token": token})

    assert response.status_code == 400, response.text
    assert "at most 8 fit" in response.text
    assert staged_count(engine) == 0


def test_given_no_or_a_wrong_csrf_token_when_posting_then_403_and_nothing_staged(
    client, world, engine
):
    token = sign_in(client, world.admin)
    for data in (dict(PHONE_FORM), {**PHONE_FORM, "csrf_token": token[:-2] + "xx"}):
        response = client.post("/portal/account/details", data=data)
        assert response.status_code == 403
        assert "This form has expired" in response.text
    assert staged_count(engine) == 0


def test_given_another_origin_when_posting_with_the_token_then_403_and_nothing_staged(
    client, world, engine
):
    token = sign_in(client, world.admin)
    for header in ({"Origin": "https://evil.example"}, {"Referer": "https://evil.example/x"}):
        response = client.post(
            "/portal/account/details", data={**PHONE_FORM, "csrf_token": token}, headers=header
        )
        assert response.status_code == 403
    assert staged_count(engine) == 0


def test_given_a_non_admin_when_posting_then_coming_soon_and_nothing_staged(client, world, engine):
    assert client.get(link_path(world.business_user)).status_code == 303
    for path in (
        "/portal/account/details",
        "/portal/account/cards",
        f"/portal/account/payment-methods/{world.acme_payment_methods[1]}/default",
        "/portal/changes/accept",
    ):
        response = client.post(path, data={**PHONE_FORM, "csrf_token": "x"})
        assert response.status_code == 403, path
        assert "new billing portal coming soon" in response.text
    assert staged_count(engine) == 0


def test_given_a_revoked_admin_when_posting_then_refused_and_staged_changes_dropped(
    client, world, engine
):
    token = sign_in(client, world.admin)
    assert (
        client.post("/portal/account/details", data={**PHONE_FORM, "csrf_token": token}).status_code
        == 303
    )
    assert staged_count(engine) == 1
    # The CSM removes the role in the CRM; the pull tombstones it.
    with engine.begin() as conn:
        conn.execute(
            AccountContactRole.__table__.update()
            .where(AccountContactRole.contact_sfid == world.admin)
            .values(is_deleted=True)
        )

    refused = client.post(
        "/portal/changes/accept",
        data={"csrf_token": token, "first_name": "Ada", "last_name": "Admin"},
    )

    assert refused.status_code == 403
    with engine.begin() as conn:
        assert drop_revoked(conn, "Billing Admin", dt.datetime.now(dt.UTC)) == 1
        assert conn.execute(select(func.count()).select_from(ChangeSet)).scalar_one() == 0
    assert staged_count(engine) == 0


def test_given_another_accounts_ids_when_posting_then_404_and_nothing_staged(client, world, engine):
    token = sign_in(client, world.admin)
    foreign = world.globex_payment_methods[0]
    for path in (
        f"/portal/account/payment-methods/{foreign}/default",
        f"/portal/account/payment-methods/{foreign}/remove",
        "/portal/account/payment-methods/not-an-id/remove",
        "/portal/changes/999999/discard",
    ):
        response = client.post(path, data={"csrf_token": token})
        assert response.status_code == 404, path
    assert staged_count(engine) == 0


def test_given_the_default_method_when_removal_is_posted_then_refused_with_the_rule(
    client, world, engine
):
    token = sign_in(client, world.admin)
    default = world.acme_payment_methods[0]  # the default Visa 4242

    response = client.post(
        f"/portal/account/payment-methods/{default}/remove", data={"csrf_token": token}
    )

    assert response.status_code == 409
    assert "make another method the default first" in response.text
    assert staged_count(engine) == 0


def test_given_get_on_a_change_route_then_405_and_nothing_staged(client, world, engine):
    sign_in(client, world.admin)
    for path in ("/portal/account/details", "/portal/changes/accept", "/portal/account/cards"):
        assert client.get(path).status_code == 405
    assert staged_count(engine) == 0


def test_given_no_csrf_token_or_another_origin_when_buying_then_403_and_nothing_staged(
    client, world, engine
):
    token = sign_in(client, world.admin)
    product = "01t000000000001AAA"
    for path, data in (
        ("/portal/purchases/licenses", {"product": product, "quantity": "5"}),
        ("/portal/purchases/credit", {"product": product, "minutes": "1000"}),
    ):
        assert client.post(path, data=data).status_code == 403
        response = client.post(
            path, data={**data, "csrf_token": token}, headers={"Origin": "https://evil.example"}
        )
        assert response.status_code == 403
    assert staged_count(engine) == 0
