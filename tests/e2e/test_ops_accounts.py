"""/ops/accounts over real HTTP: who is an account's Billing Admin, who was, who authorized."""

from __future__ import annotations

import datetime as dt
import html

import httpx
import pytest
from sqlalchemy import insert

from sync.db.models import Account, ChangeSet
from sync.db.repo import admins as admins_repo
from sync.portal.server import PortalServer
from tests.support.portal_data import World, build_world, link_path, portal_settings

TOKEN = "ops-token-0123456789abcdef"
SINCE = dt.datetime(2026, 10, 1, 9, 30, tzinfo=dt.UTC)
REMOVED = dt.datetime(2026, 11, 2, 16, 45, tzinfo=dt.UTC)
ACCEPTED = dt.datetime(2026, 11, 20, 8, 15, tzinfo=dt.UTC)
INSTANCE = "http://127.0.0.1:8700"


@pytest.fixture
def world(engine) -> World:
    w = build_world(engine)
    w.data.set(Account, w.acme, account_number="AC-1001")
    with engine.begin() as conn:
        admins_repo.save_admin_changes(
            conn,
            [
                admins_repo.AdminChange(
                    "02Z000000000099AAA", w.acme, w.business_user, "added", "new", None, SINCE
                ),
                admins_repo.AdminChange(
                    "02Z000000000099AAA",
                    w.acme,
                    w.business_user,
                    "removed",
                    "role changed",
                    "Business User",
                    REMOVED,
                ),
            ],
            recorded_at=REMOVED,
        )
        conn.execute(
            insert(ChangeSet).values(
                key="cs-accounts-1",
                account_sfid=w.acme,
                contact_sfid=w.admin,
                typed_name="Ada Admin",
                terms_version="1",
                summary="Phone: 555-0100",
                staged="[]",
                accepted_at=ACCEPTED,
                state="applied",
                attempts=1,
                updated_at=ACCEPTED,
            )
        )
    return w


@pytest.fixture
def ops(engine, world):
    settings = portal_settings(ops_token=TOKEN, salesforce_instance_url=INSTANCE)
    with (
        PortalServer(settings, engine) as server,
        httpx.Client(base_url=server.url or "", follow_redirects=False) as http,
    ):
        yield http


def get(ops, path, **params):
    return ops.get(path, params=params, auth=("carla", TOKEN))


def test_given_no_ops_credentials_when_accounts_asked_then_401(ops, world):
    assert ops.get("/ops/accounts", params={"q": "Acme"}).status_code == 401
    assert ops.get(f"/ops/accounts/{world.acme}").status_code == 401
    bad = ops.get(f"/ops/accounts/{world.acme}", auth=("carla", "wrong-token-0123456789"))
    assert bad.status_code == 401
    assert bad.headers["www-authenticate"].startswith("Basic")
    # A Billing Admin's portal session opens nothing here.
    assert ops.get(link_path(world.admin)).status_code == 303
    assert ops.get(f"/ops/accounts/{world.acme}").status_code == 401


def test_given_the_dashboard_when_shown_then_it_links_the_account_search(ops):
    page = get(ops, "/ops/")
    assert page.status_code == 200
    assert 'href="/ops/accounts"' in page.text


@pytest.mark.parametrize("key", ["name", "number", "id", "email"])
def test_given_each_search_key_when_one_account_matches_then_its_page(ops, world, key):
    query = {
        "name": "acme",
        "number": "AC-1001",
        "id": world.acme,
        "email": "ada.admin@example.com",
    }[key]

    found = get(ops, "/ops/accounts", q=query)

    assert found.status_code == 303
    assert found.headers["location"] == f"/ops/accounts/{world.acme}"


def test_given_a_search_matching_several_when_searched_then_listed(ops, world):
    # Max is a contact of Globex and Billing Admin of Globex and Initech
    page = get(ops, "/ops/accounts", q="max.multi@example.com")

    assert page.status_code == 200
    assert f'href="/ops/accounts/{world.globex}"' in page.text
    assert f'href="/ops/accounts/{world.initech}"' in page.text
    assert f'href="/ops/accounts/{world.acme}"' not in page.text
    assert "Content-Security-Policy" in page.headers
    assert page.headers["cache-control"] == "no-store"


def test_given_no_match_or_no_query_when_searched_then_said_so(ops):
    empty = get(ops, "/ops/accounts")
    none = get(ops, "/ops/accounts", q="<script>nobody</script>")

    assert empty.status_code == 200 and 'name="q"' in empty.text
    assert none.status_code == 200 and "No mirrored account matches." in none.text
    assert "<script>nobody" not in none.text
    assert html.escape("<script>nobody</script>") in none.text


def test_given_an_account_when_its_page_shown_then_admins_history_sets_and_crm_link(ops, world):
    page = get(ops, f"/ops/accounts/{world.acme}")

    assert page.status_code == 200
    text = page.text
    admins = text[text.index('id="admins"') : text.index('id="history-h"')]
    assert "Ada Admin" in admins and "ada.admin@example.com" in admins
    assert "Bob User" not in admins  # Business User: not an admin
    history = text[text.index('id="history"') : text.index('id="sets-h"')]
    assert history.index("removed") < history.index("added")  # newest first
    assert "Bob User" in history and "role changed" in history
    assert "2026-11-02 16:45" in history
    sets = text[text.index('id="change-sets"') :]
    assert "Ada Admin" in sets and "Phone: 555-0100" in sets and "applied" in sets
    assert f'href="{INSTANCE}/lightning/r/Account/{world.acme}/view"' in text
    assert "AC-1001" in text
    assert "<script" not in text and "style=" not in text  # the CSP allows nothing inline


def test_given_an_unknown_or_malformed_id_when_asked_then_404(ops):
    assert get(ops, "/ops/accounts/001000000000999AAA").status_code == 404
    assert get(ops, "/ops/accounts/not-an-id").status_code == 404


def test_given_no_ops_token_configured_when_accounts_asked_then_404(engine, world):
    with PortalServer(portal_settings(), engine) as server:
        response = httpx.get(f"{server.url}/ops/accounts", auth=("carla", TOKEN))
    assert response.status_code == 404
