"""/metrics of a web process next to real pulls from the sandbox, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from sqlalchemy import insert, update

from sync.db import repo
from sync.db.models import ChangeSet
from sync.portal.server import PortalServer
from sync.pull import Outcome, pull_all
from tests.support.metrics import clear_buffer, label_values, parse, value
from tests.support.portal_data import portal_settings
from tests.support.pull import hook, make_context
from tests.unit.test_monitoring_metrics import EVERY_METRIC

pytestmark = pytest.mark.slow


@pytest.fixture
def ctx(crm_sandbox, database_url):
    clear_buffer()
    context = make_context(crm_sandbox, database_url)
    yield context
    context.close()
    clear_buffer()


@pytest.fixture
def scrape(ctx):
    with (
        PortalServer(portal_settings(database_url=ctx.settings.database_url), ctx.engine) as server,
        httpx.Client(base_url=server.url or "") as http,
    ):

        def get():
            response = http.get("/metrics")
            assert response.status_code == 200
            return parse(response.text)

        yield get


def test_given_a_pull_when_scraped_then_every_metric_with_a_series_per_mapping(ctx, scrape):
    results = pull_all(ctx)
    assert {r.outcome for r in results} == {Outcome.OK}

    types, samples = scrape()

    for name in EVERY_METRIC:
        assert name in types, name
    names = set(ctx.mappings.names)
    for metric in (
        "billing_sync_mapping_lag_seconds",
        "billing_sync_mapping_record_errors",
        "billing_sync_mapping_paused",
        "billing_sync_mapping_last_success_timestamp_seconds",
        "billing_sync_pass_duration_seconds_count",
    ):
        assert label_values(samples, metric, "mapping") == names, metric
    with ctx.engine.connect() as conn:
        for mapping in ctx.mappings:
            live, deleted = repo.row_counts(conn, repo.mirrored_table(mapping.table))
            got = value(samples, "billing_sync_mapping_records", mapping=mapping.name, state="live")
            assert got == live, mapping.name
            assert (
                value(
                    samples, "billing_sync_mapping_records", mapping=mapping.name, state="deleted"
                )
                == deleted
            )
            assert (
                value(samples, "billing_sync_pass_total", mapping=mapping.name, outcome="ok") == 1
            )
            assert (
                value(
                    samples,
                    "billing_sync_mapping_last_success_timestamp_seconds",
                    mapping=mapping.name,
                )
                > 0
            )
    calls = sum(v for (n, _), v in samples.items() if n == "billing_sync_crm_api_calls_total")
    # Every call the client made (the start's describe included), as the client counts them.
    assert calls == ctx.crm.api_calls
    assert calls > sum(r.api_calls for r in results) > 0
    assert 0 < value(samples, "billing_sync_crm_api_usage_ratio") < 1


def test_given_a_crm_edit_when_pulled_again_then_records_and_pass_counters_move(ctx, scrape, sf):
    pull_all(ctx)
    _, before = scrape()

    sf.Account.create({"Name": "Monitoring Test Account"})
    pull_all(ctx)
    _, after = scrape()

    live = ("billing_sync_mapping_records", {"mapping": "accounts", "state": "live"})
    assert value(after, live[0], **live[1]) == value(before, live[0], **live[1]) + 1
    ok = {"mapping": "accounts", "outcome": "ok"}
    assert value(after, "billing_sync_pass_total", **ok) == 2
    assert value(before, "billing_sync_pass_total", **ok) == 1
    # Unchanged mappings were checked, not pulled: no new pass, a newer success.
    assert value(after, "billing_sync_pass_total", mapping="products", outcome="ok") == 1
    success = "billing_sync_mapping_last_success_timestamp_seconds"
    assert value(after, success, mapping="products") > value(before, success, mapping="products")


def test_given_an_api_fault_when_pulling_then_crm_errors_counted_by_code(ctx, scrape, crm_sandbox):
    pull_all(ctx)
    _, before = scrape()
    hook(crm_sandbox, "faults", {"error_rate": 1.0, "errors": ["SERVER_UNAVAILABLE"]})
    try:
        results = pull_all(ctx)
    finally:
        hook(crm_sandbox, "faults", method="DELETE")
    assert {r.outcome for r in results} != {Outcome.OK}

    _, after = scrape()

    code = {"code": "SERVER_UNAVAILABLE"}
    assert value(before, "billing_sync_crm_errors_total", **code) == 0
    assert value(after, "billing_sync_crm_errors_total", **code) >= 1


def test_given_a_change_set_when_it_moves_from_pending_to_applied_then_the_outbox_gauge_follows(
    ctx, scrape
):
    now = dt.datetime.now(dt.UTC)
    with ctx.engine.begin() as conn:
        cs = conn.execute(
            insert(ChangeSet).values(
                key="cs-e2e",
                account_sfid="001000000000000AAA",
                contact_sfid="003000000000000AAA",
                typed_name="Ada Lovelace",
                terms_version="1",
                summary="Phone",
                staged="[]",
                accepted_at=now - dt.timedelta(seconds=5),
                state="accepted",
                updated_at=now,
            )
        ).inserted_primary_key[0]
    _, pending = scrape()
    with ctx.engine.begin() as conn:
        conn.execute(update(ChangeSet).where(ChangeSet.id == cs).values(state="sending"))
    _, sending = scrape()
    with ctx.engine.begin() as conn:
        conn.execute(
            update(ChangeSet).where(ChangeSet.id == cs).values(state="applied", finished_at=now)
        )
    _, applied = scrape()

    gauge = "billing_sync_outbox_change_sets"
    assert value(pending, gauge, state="accepted") == 1
    assert value(pending, "billing_sync_outbox_oldest_pending_seconds") >= 5
    assert value(sending, gauge, state="accepted") == 0
    assert value(sending, gauge, state="sending") == 1
    assert value(applied, gauge, state="sending") == 0
    assert value(applied, gauge, state="applied") == 1
    assert value(applied, "billing_sync_outbox_oldest_pending_seconds") == 0
    assert value(applied, "billing_sync_push_duration_seconds_count") == 1


def test_given_a_sync_process_when_it_ends_then_its_crm_calls_are_in_the_database_and_logs_json(
    crm_sandbox, sqlite_database_url
):
    import json
    import os
    import subprocess

    from sync.db.engine import make_engine
    from sync.db.repo.metrics import read_counters
    from tests.e2e.conftest import billing_sync

    env = {
        **os.environ,
        "SALESFORCE_INSTANCE_URL": crm_sandbox,
        "BILLING_SYNC_DATABASE_URL": sqlite_database_url,
        "BILLING_SYNC_LOG_FORMAT": "json",
    }
    env.pop("SALESFORCE_USERNAME", None)

    result = subprocess.run(
        [*billing_sync(), "-v", "sync"], env=env, capture_output=True, text=True, timeout=300
    )

    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert records and all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    assert "sandbox-token" not in result.stderr and "password" not in result.stderr.lower()
    engine = make_engine(sqlite_database_url)
    try:
        with engine.connect() as conn:
            stored = read_counters(conn)
    finally:
        engine.dispose()
    calls = {k: v for k, v in stored.items() if k[0] == "billing_sync_crm_api_calls_total"}
    assert sum(calls.values()) >= 11  # the start's describe plus a query per mapping
    assert ("billing_sync_crm_api_calls_total", "endpoint=queryAll") in calls
