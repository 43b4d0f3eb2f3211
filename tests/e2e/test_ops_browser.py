"""The ops dashboard in Debian's chromium (Playwright): access, table, charts, pause/resume."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import insert

from sync.db import repo
from sync.db.engine import make_engine, upgrade
from sync.db.models import ChangeSet, SyncPass
from sync.db.shapes import MIRRORED_SHAPES
from sync.mapping.loader import default_mappings_dir, load_mappings
from sync.portal.server import PortalServer
from tests.support.browser import chromium, needs_chromium
from tests.support.metrics import clear_buffer
from tests.support.portal_data import build_world, portal_settings

TOKEN = "ops-browser-token-0123456789"

pytestmark = needs_chromium


@pytest.fixture
def dashboard(sqlite_database_url) -> Iterator[tuple[str, Any]]:
    clear_buffer()
    engine = make_engine(sqlite_database_url)
    upgrade(engine)
    build_world(engine)
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        repo.save_state(conn, "accounts", now, watermark=now - dt.timedelta(seconds=40))
        repo.save_state(conn, "invoices", now, watermark=now - dt.timedelta(hours=3))
        for hours_ago, calls in ((1, 12), (2, 30), (5, 7)):
            conn.execute(
                insert(SyncPass).values(
                    mapping="accounts",
                    kind="incremental",
                    started_at=now - dt.timedelta(hours=hours_ago),
                    finished_at=now - dt.timedelta(hours=hours_ago),
                    records=10,
                    api_calls=calls,
                    outcome="ok",
                )
            )
        conn.execute(
            insert(ChangeSet).values(
                key="cs-browser",
                account_sfid="001000000000000AAA",
                contact_sfid="003000000000000AAA",
                typed_name="Ada Lovelace",
                terms_version="1",
                summary="Phone: 555-0100",
                staged="[]",
                accepted_at=now,
                state="conflict",
                attempts=1,
                finished_at=now,
                message="Phone changed in the CRM meanwhile: 555-0199",
                updated_at=now,
            )
        )
    try:
        # A frozen clock: the lags shown do not depend on how long the browser takes.
        with PortalServer(portal_settings(ops_token=TOKEN), engine, clock=lambda: now) as server:
            assert server.url
            yield server.url, engine
    finally:
        engine.dispose()


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def test_given_no_or_wrong_credentials_when_opening_ops_then_refused(dashboard, browser):
    from playwright.sync_api import Error as PlaywrightError

    base, _ = dashboard
    for credentials in (None, {"username": "alice", "password": "not-the-token-0123"}):
        context = browser.new_context(http_credentials=credentials)
        page = context.new_page()
        try:
            # The server asks for credentials; the browser has none that work: it either
            # gives up on the challenge or shows the 401 answer.
            try:
                response = page.goto(base + "/ops/")
            except PlaywrightError as exc:
                assert "ERR_INVALID_AUTH_CREDENTIALS" in str(exc)
            else:
                assert response is not None and response.status == 401
                assert "Mappings" not in page.content()
            answer = context.request.get(base + "/ops/")
            assert answer.status == 401
            assert "Mappings" not in answer.text()
        finally:
            context.close()


def test_given_the_token_when_using_the_dashboard_then_table_charts_and_pause_resume_work(
    dashboard, browser, artifacts_dir
):
    base, engine = dashboard
    context = browser.new_context(
        http_credentials={"username": "alice", "password": TOKEN},
        viewport={"width": 1280, "height": 900},
    )
    page = context.new_page()
    failures: list[str] = []
    page.on(
        "response",
        lambda r: failures.append(r.url) if r.status >= 400 and "favicon" not in r.url else None,
    )
    page.on("console", lambda m: failures.append(m.text) if "Content-Security" in m.text else None)
    try:
        response = page.goto(base + "/ops/")
        assert response is not None and response.status == 200
        names = load_mappings(default_mappings_dir(None), MIRRORED_SHAPES).names
        rows = page.locator("#mappings tbody tr")
        assert rows.count() == len(names) == 13  # the default mappings
        accounts = page.locator('#mappings tr[data-mapping="accounts"]')
        assert accounts.locator("td").nth(3).inner_text() == "40s"  # lag
        assert page.locator("#lag-chart svg rect.bar").count() == len(names)
        assert page.locator("#lag-chart svg rect.bar-warn").count() == 1  # invoices: 3 h
        assert page.locator("#calls-chart svg rect.column").count() == 24
        assert page.locator("#calls-chart").get_by_text("49 in all").is_visible()
        chart_box = page.locator("#calls-chart svg").bounding_box()
        assert chart_box is not None and chart_box["width"] > 300 and chart_box["height"] > 100
        assert page.get_by_text("Phone changed in the CRM meanwhile").is_visible()
        assert page.get_by_role("button", name="Retry change set").is_visible()
        assert page.locator("#budget").get_by_text("as configured").is_visible()
        page.screenshot(path=str(artifacts_dir / "ops-dashboard.png"), full_page=True)

        page.get_by_role("button", name="Pause accounts").click()
        assert page.get_by_role("status").inner_text() == "accounts paused"
        assert accounts.locator("td.paused").inner_text() == "yes"
        assert accounts.get_by_text("paused", exact=True).is_visible()
        with engine.connect() as conn:
            assert repo.get_state(conn, "accounts").paused

        page.get_by_role("button", name="Resume accounts").click()
        assert page.get_by_role("status").inner_text() == "accounts resumed"
        assert accounts.locator("td.paused").inner_text() == "no"
        with engine.connect() as conn:
            assert not repo.get_state(conn, "accounts").paused
        assert failures == []  # every resource loaded; the CSP blocked nothing
    finally:
        context.close()
