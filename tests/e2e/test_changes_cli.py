"""`billing-sync push`, `changes`, `changes retry|cancel` and `status` as processes."""

from __future__ import annotations

import json

import pytest

from tests.support.changes import accept_direct, pick_admin
from tests.support.pull import hook, make_context

pytestmark = pytest.mark.slow


@pytest.fixture
def accepted(crm_sandbox, sqlite_database_url, sf):
    """Two accepted sets of two accounts: one that applies, one the CRM refuses."""
    from sync.pull import pull_all

    ctx = make_context(crm_sandbox, sqlite_database_url)
    try:
        pull_all(ctx)
        good = pick_admin(sf)
        bad = pick_admin(sf, skip={good.account})
        hook(
            crm_sandbox,
            "validation-rules",
            {"object": "Account", "field": "BillingCity", "equals": "Nowhere", "message": "No"},
        )
        ok_id = accept_direct(ctx, good, fields={"billing_city": "Tallinn"})
        bad_id = accept_direct(ctx, bad, fields={"billing_city": "Nowhere"})
    finally:
        ctx.close()
    return ok_id, bad_id, good, bad


def test_given_accepted_sets_when_pushed_listed_retried_cancelled_then_the_outbox_follows(
    run, accepted, sf
):
    ok_id, bad_id, good, _ = accepted

    status = json.loads(run("status", "--json").stdout)
    assert status["outbox"]["counts"]["accepted"] == 2
    assert status["outbox"]["oldest_pending_seconds"] >= 0

    pushed = run("push", "--json")
    assert pushed.returncode == 0, pushed.stderr
    report = json.loads(pushed.stdout)
    assert (report["pushed"], report["failed"], report["pending"]) == (1, 1, 0)
    assert sf.Account.get(good.account)["BillingCity"] == "Tallinn"

    failed = json.loads(run("changes", "--state", "failed", "--json").stdout)
    assert [s["id"] for s in failed] == [bad_id]
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in failed[0]["message"]
    listing = run("changes").stdout
    assert f"#{ok_id} applied" in listing and f"#{bad_id} failed" in listing

    # ops: an applied set cannot be retried; the failed one can, then be cancelled
    refused = run("changes", "retry", str(ok_id))
    assert refused.returncode == 1 and "applied" in refused.stderr
    assert run("changes", "retry", str(bad_id)).returncode == 0
    assert json.loads(run("status", "--json").stdout)["outbox"]["counts"]["accepted"] == 1
    assert run("changes", "cancel", str(bad_id)).returncode == 0
    counts = json.loads(run("status", "--json").stdout)["outbox"]["counts"]
    assert (counts["applied"], counts["cancelled"], counts["accepted"]) == (1, 1, 0)
    assert "outbox: 1 applied, 1 cancelled" in run("status").stdout
    assert "nothing to push" in run("push").stdout
