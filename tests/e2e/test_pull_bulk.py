"""Full loads through Bulk API 2.0 against the sandbox, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sync.bulk.choice import LoadMethod
from sync.db import repo
from sync.db.engine import make_engine, upgrade
from sync.db.shapes import MIRRORED_SHAPES
from sync.mapping import load_mappings
from sync.mapping.loader import PROJECT_MAPPINGS
from sync.mapping.spec import MappingSet
from sync.pull import Outcome, pull_all
from tests.support.pull import (
    crm_client,
    duplicate_sfids,
    hook,
    make_context,
    mirror_differences,
    stats,
)
from tests.support.sandbox import running_sandbox

pytestmark = pytest.mark.slow


def saved_reports(engine):
    """Mapping -> its last pass's load report, as its state row keeps it."""
    with engine.connect() as conn:
        states = repo.all_states(conn)
    return {name: s.last_load.to_json() for name, s in states.items() if s.last_load}


@pytest.fixture
def ctx(crm_sandbox, database_url):
    # a threshold the seeded invoice and order lines cross, the small objects do not
    context = make_context(crm_sandbox, database_url, bulk_threshold=400, bulk_page_size=1000)
    yield context
    context.close()


def test_given_mapping_over_threshold_when_first_pull_then_bulk_job_and_mirror_equals_crm(
    ctx, sf, crm_sandbox
):
    line = sf.query("SELECT Id FROM Apttus_Billing__InvoiceLineItem__c LIMIT 1")["records"][0]
    sf.Apttus_Billing__InvoiceLineItem__c.delete(line["Id"])
    before = stats(crm_sandbox)["by_endpoint"].get("bulk2", 0)

    results = {r.mapping: r for r in pull_all(ctx)}

    assert {r.outcome for r in results.values()} == {Outcome.OK}
    lines = results["invoice_lines"]
    assert lines.load is not None
    assert lines.load.method is LoadMethod.BULK
    assert lines.load.job_id is not None and lines.load.job_id.startswith("750")
    assert lines.load.counted == lines.records
    assert results["accounts"].load is not None
    assert results["accounts"].load.method is LoadMethod.REST
    assert stats(crm_sandbox)["by_endpoint"].get("bulk2", 0) > before
    assert stats(crm_sandbox)["bulk_jobs"] == 0  # every job deleted once read
    # every field of every record, as REST sees it, tombstones included
    assert mirror_differences(ctx.engine, ctx.crm, ctx.mappings) == []
    assert set(duplicate_sfids(ctx.engine, ctx.mappings).values()) == {0}
    assert saved_reports(ctx.engine)["invoice_lines"]["method"] == "bulk"


def test_given_failing_bulk_jobs_when_pull_then_rest_fallback_converges(ctx, crm_sandbox):
    hook(crm_sandbox, "faults", {"bulk_fail_rate": 1.0})

    results = {r.mapping: r for r in pull_all(ctx)}

    assert {r.outcome for r in results.values()} == {Outcome.OK}
    lines = results["invoice_lines"].load
    assert lines is not None
    assert lines.method is LoadMethod.REST
    assert lines.fallback is not None and "Failed" in lines.fallback
    assert stats(crm_sandbox)["bulk_jobs"] == 0
    assert mirror_differences(ctx.engine, ctx.crm, ctx.mappings) == []


def test_given_object_bulk_does_not_serve_when_pull_then_rest(ctx, crm_sandbox):
    unsupported = ["Apttus_Billing__InvoiceLineItem__c"]
    hook(crm_sandbox, "faults", {"bulk_unsupported_objects": unsupported})

    results = {r.mapping: r for r in pull_all(ctx, names=["invoice_lines"])}

    load = results["invoice_lines"].load
    assert load is not None
    assert load.method is LoadMethod.REST
    assert load.fallback is not None and "INVALIDENTITY" in load.fallback
    only = MappingSet({"invoice_lines": ctx.mappings["invoice_lines"]})
    assert mirror_differences(ctx.engine, ctx.crm, only) == []


@pytest.fixture
def small_pages(crm_sandbox, database_url):
    context = make_context(
        crm_sandbox, database_url, bulk_threshold=400, bulk_page_size=1000, pull_batch_size=200
    )
    yield context
    context.close()


def test_given_mass_update_when_incremental_pull_then_window_moves_to_bulk(small_pages):
    # (a window that fits in one REST page is read by that page: nothing to move)
    ctx = small_pages
    first = {r.mapping: r for r in pull_all(ctx, names=["invoice_lines"])}
    assert first["invoice_lines"].load is not None
    lines = ctx.crm.query_all(
        "SELECT Id, Apttus_Billing__Quantity__c FROM Apttus_Billing__InvoiceLineItem__c "
        "ORDER BY Id LIMIT 600"
    )
    assert len(lines) == 600
    results = ctx.crm.collection_update(
        "Apttus_Billing__InvoiceLineItem__c",
        [
            {
                "Id": r["Id"],
                "Apttus_Billing__Quantity__c": (r["Apttus_Billing__Quantity__c"] or 0) + 1,
            }
            for r in lines
        ],
    )
    assert all(r.success for r in results)

    second = {r.mapping: r for r in pull_all(ctx, names=["invoice_lines"])}

    result = second["invoice_lines"]
    assert result.outcome is Outcome.OK
    assert not result.full
    assert result.load is not None
    assert result.load.method is LoadMethod.BULK
    assert result.load.counted is None  # decided on the first REST page's totalSize
    only = MappingSet({"invoice_lines": ctx.mappings["invoice_lines"]})
    assert mirror_differences(ctx.engine, ctx.crm, only) == []


def test_given_threshold_above_window_when_pull_then_rest_only(crm_sandbox, database_url):
    context = make_context(crm_sandbox, database_url, bulk_threshold=10_000_000)
    try:
        results = pull_all(context, names=["invoice_lines"], full=True)
    finally:
        context.close()

    assert results[0].load is not None
    assert results[0].load.method is LoadMethod.REST
    assert results[0].load.fallback is None
    # counted ahead of the pass, in a /composite call, not by a query of its own
    assert results[0].load.counted == results[0].records
    assert results[0].records < 2000  # one REST page: the window's only query
    assert stats(crm_sandbox)["by_endpoint"].get("queryAll", 0) == 1
    assert stats(crm_sandbox)["by_endpoint"].get("bulk2", 0) == 0


def billing_sync() -> list[str]:
    script = Path(sys.executable).with_name("billing-sync")
    return [str(script)] if script.exists() else [sys.executable, "-m", "sync.cli"]


def test_given_bulk_load_killed_midway_when_rerun_then_converges(database_url):
    with running_sandbox("--seed", "25", "--seed-random", "7") as sandbox:
        env = {
            **os.environ,
            "SALESFORCE_INSTANCE_URL": sandbox.url,
            "BILLING_SYNC_DATABASE_URL": database_url,
            "BILLING_SYNC_BULK_THRESHOLD": "400",
            "BILLING_SYNC_BULK_PAGE_SIZE": "1000",
        }
        env.pop("SALESFORCE_USERNAME", None)
        engine = make_engine(database_url)
        upgrade(engine)
        crm = crm_client(sandbox.url)
        try:
            # slow answers, so that the load of the large mappings spans seconds
            hook(sandbox.url, "faults", {"latency_ms": 150})
            process = subprocess.Popen(
                [*billing_sync(), "sync", "--mapping", "invoice_lines"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                # kill once the Bulk job exists and results pages are being read
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and process.poll() is None:
                    if stats(sandbox.url)["by_endpoint"].get("bulk2", 0) >= 4:
                        break
                    time.sleep(0.02)
                assert process.poll() is None, "the load ended before it could be killed"
                os.kill(process.pid, signal.SIGKILL)
            finally:
                process.wait(timeout=30)
            hook(sandbox.url, "faults", method="DELETE")

            final = subprocess.run(
                [*billing_sync(), "sync", "--json"],
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )

            assert final.returncode == 0, final.stdout + final.stderr
            document = json.loads(final.stdout)
            loads = {m["mapping"]: m["load"] for m in document["mappings"]}
            assert loads["order_lines"]["method"] == "bulk"
            status = subprocess.run(
                [*billing_sync(), "status", "--json"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert status.returncode == 0, status.stderr
            shown = {m["mapping"]: m["last_load"] for m in json.loads(status.stdout)["mappings"]}
            assert shown["order_lines"]["method"] == "bulk"
            assert shown["order_lines"]["job_id"] == loads["order_lines"]["job_id"]
            assert shown["accounts"]["method"] == "rest"
            mappings = load_mappings(PROJECT_MAPPINGS, MIRRORED_SHAPES)
            assert mirror_differences(engine, crm, mappings) == []
            assert set(duplicate_sfids(engine, mappings).values()) == {0}
        finally:
            crm.close()
            engine.dispose()
