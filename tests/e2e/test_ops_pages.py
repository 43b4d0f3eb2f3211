"""The ops dashboard and /metrics over real HTTP: access, CSRF, actions, request metrics."""

from __future__ import annotations

import datetime as dt
import logging
import re

import httpx
import pytest
from sqlalchemy import insert, select

from sync.db import repo
from sync.db.models import AuditEntry, ChangeSet
from sync.portal.server import PortalServer
from tests.support.metrics import clear_buffer, parse, value
from tests.support.portal_data import World, build_world, link_path, portal_settings

TOKEN = "ops-token-0123456789abcdef"
NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def world(engine) -> World:
    clear_buffer()
    return build_world(engine)


def serve(engine, **settings):
    return PortalServer(portal_settings(**settings), engine)


@pytest.fixture
def ops(engine, world):
    with (
        serve(engine, ops_token=TOKEN) as server,
        httpx.Client(base_url=server.url or "", follow_redirects=False) as http,
    ):
        yield http


def csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page)
    assert match, "no CSRF token on the page"
    return match.group(1)


def failed_change_set(engine) -> int:
    with engine.begin() as conn:
        result = conn.execute(
            insert(ChangeSet).values(
                key="cs-ops-1",
                account_sfid="001000000000000AAA",
                contact_sfid="003000000000000AAA",
                typed_name="Ada Lovelace",
                terms_version="1",
                summary="Phone: 555-0100",
                staged="[]",
                accepted_at=NOW,
                state="failed",
                attempts=3,
                finished_at=NOW,
                message="FIELD_CUSTOM_VALIDATION_EXCEPTION: Phone must have 10 digits",
                updated_at=NOW,
            )
        )
    return int(result.inserted_primary_key[0])


def test_given_no_ops_token_configured_when_ops_asked_then_404(engine, world):
    with serve(engine) as server:
        response = httpx.get(f"{server.url}/ops/", auth=("alice", TOKEN))
    assert response.status_code == 404


def test_given_a_token_when_asked_without_or_with_wrong_credentials_then_401(ops, world):
    assert ops.get("/ops/").status_code == 401
    assert ops.get("/ops/").headers["www-authenticate"].startswith("Basic")
    assert ops.get("/ops/", auth=("alice", "wrong-token-0123456789")).status_code == 401
    assert ops.get("/ops/", headers={"Authorization": "Bearer nope"}).status_code == 401
    # A Billing Admin's portal session opens nothing here.
    assert ops.get(link_path(world.admin)).status_code == 303
    assert ops.cookies.get("billing_portal")
    assert ops.get("/ops/").status_code == 401
    assert ops.post("/ops/mappings/accounts/pause", data={"csrf_token": "x"}).status_code == 401


def test_given_basic_or_bearer_credentials_when_asked_then_the_dashboard(ops):
    basic = ops.get("/ops/", auth=("alice", TOKEN))
    bearer = ops.get("/ops/", headers={"Authorization": f"Bearer {TOKEN}"})

    assert basic.status_code == 200 and bearer.status_code == 200
    assert "signed in as alice" in basic.text
    for section in ("Mappings", "API budget", "Outbox", "Recent record errors", "Workers"):
        assert f">{section}</h2>" in basic.text
    assert basic.text.count("<svg") == 2
    assert "Content-Security-Policy" in basic.headers
    assert basic.headers["cache-control"] == "no-store"


def test_given_a_post_without_the_csrf_token_when_pausing_then_refused(ops, engine):
    response = ops.post("/ops/mappings/accounts/pause", auth=("alice", TOKEN), data={})
    forged = ops.post(
        "/ops/mappings/accounts/pause", auth=("alice", TOKEN), data={"csrf_token": "0" * 64}
    )

    assert response.status_code == 403 and forged.status_code == 403
    with engine.connect() as conn:
        assert not repo.get_state(conn, "accounts").paused


def test_given_the_page_token_when_pausing_and_resuming_then_state_moves_and_who_is_logged(
    ops, engine, caplog
):
    token = csrf(ops.get("/ops/", auth=("alice", TOKEN)).text)

    with caplog.at_level(logging.INFO, logger="sync.ops"):
        paused = ops.post(
            "/ops/mappings/accounts/pause", auth=("alice", TOKEN), data={"csrf_token": token}
        )
        with engine.connect() as conn:
            assert repo.get_state(conn, "accounts").paused
        resumed = ops.post(
            "/ops/mappings/accounts/resume", auth=("alice", TOKEN), data={"csrf_token": token}
        )

    assert paused.status_code == 303 and paused.headers["location"].startswith("/ops/?done=")
    assert resumed.status_code == 303
    with engine.connect() as conn:
        assert not repo.get_state(conn, "accounts").paused
    messages = [r.getMessage() for r in caplog.records if r.name == "sync.ops"]
    assert messages == ["ops: alice paused mapping accounts", "ops: alice resumed mapping accounts"]
    # Another user's token does not fit alice's forms.
    bob = ops.post("/ops/mappings/accounts/pause", auth=("bob", TOKEN), data={"csrf_token": token})
    assert bob.status_code == 403
    assert (
        ops.post(
            "/ops/mappings/nope/pause", auth=("alice", TOKEN), data={"csrf_token": token}
        ).status_code
        == 404
    )


def test_given_a_failed_change_set_when_shown_and_retried_then_message_listed_and_sent_again(
    ops, engine
):
    cs = failed_change_set(engine)
    page = ops.get("/ops/", auth=("carol", TOKEN)).text
    assert "Phone must have 10 digits" in page
    assert f'data-change-set="{cs}"' in page

    response = ops.post(
        f"/ops/change-sets/{cs}/retry", auth=("carol", TOKEN), data={"csrf_token": csrf(page)}
    )

    assert response.status_code == 303
    with engine.connect() as conn:
        assert conn.scalar(select(ChangeSet.state).where(ChangeSet.id == cs)) == "accepted"
        assert conn.scalar(select(AuditEntry.actor)) == "ops:carol"
    again = ops.post(
        f"/ops/change-sets/{cs}/cancel", auth=("carol", TOKEN), data={"csrf_token": csrf(page)}
    )
    assert again.status_code == 303
    with engine.connect() as conn:
        assert conn.scalar(select(ChangeSet.state).where(ChangeSet.id == cs)) == "cancelled"


def test_given_portal_traffic_when_scraped_then_requests_by_route_template_and_denials(ops, world):
    ops.get(link_path(world.admin))
    order = world.acme_orders[0]
    assert ops.get(f"/portal/orders/{order}").status_code == 200
    assert ops.get("/portal/orders/a0A000000000000ZZZ").status_code == 404
    ops.cookies.clear()
    assert ops.get("/portal/orders").status_code == 401
    assert ops.get("/no/such/page").status_code == 404

    response = ops.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    _, samples = parse(response.text)
    route = "/portal/orders/{sfid}"
    requests_total = "billing_sync_portal_requests_total"
    assert value(samples, requests_total, route=route, status="200") == 1
    assert value(samples, requests_total, route=route, status="404") == 1
    assert value(samples, requests_total, route="/portal/orders", status="401") == 1
    assert value(samples, requests_total, route="unmatched", status="404") == 1
    assert value(samples, "billing_sync_portal_request_duration_seconds_count", route=route) == 2
    assert value(samples, "billing_sync_portal_denied_total", reason="not_found") == 1
    assert value(samples, "billing_sync_portal_denied_total", reason="unauthenticated") == 1
    assert value(samples, "billing_sync_portal_denied_total", reason="not_admin") == 0
    assert not any(order in dict(labels).get("route", "") for _, labels in samples)
