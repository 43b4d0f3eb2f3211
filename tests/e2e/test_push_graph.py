"""Change sets of any size through /composite/graph: atomic, refused at staging when too big.

Changes are staged and accepted as the portal does (without a browser) against the
sandbox over HTTP; the CRM is checked with simple-salesforce. SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt

import pytest
from simple_salesforce import format_soql
from sqlalchemy import text

from sync.changes.staging import StagingError
from tests.support.changes import (
    accept_direct,
    authorizations,
    pick_admin,
    push_until_final,
    stage_test_card,
)
from tests.support.pull import hook, make_context

pytestmark = pytest.mark.slow


@pytest.fixture
def ctx(crm_sandbox, database_url):
    from sync.pull import pull_all

    context = make_context(crm_sandbox, database_url, push_lease=5.0)
    pull_all(context)
    yield context
    context.close()


def _card_keys(ctx, set_id: int) -> list[str]:
    with ctx.engine.connect() as conn:
        return [
            row[0]
            for row in conn.execute(
                text(
                    "SELECT external_key FROM change_items WHERE change_set_id = :i "
                    "AND operation = 'create' ORDER BY position"
                ),
                {"i": set_id},
            )
        ]


def _cards_with_keys(sf, keys: list[str]) -> int:
    soql = format_soql(
        "SELECT COUNT() FROM Apttus_Billing__PaymentMethod__c WHERE Billing_Sync_Key__c IN {}",
        keys,
    )
    return int(sf.query(soql)["totalSize"])


def _composite_calls(crm_sandbox) -> int:
    return int(hook(crm_sandbox, "stats", method="GET")["by_endpoint"].get("composite", 0))


def test_given_a_set_of_40_changes_when_pushed_then_all_applied_in_one_graph_call(
    ctx, sf, crm_sandbox
):
    admin = pick_admin(sf)
    set_id = accept_direct(ctx, admin, fields={"billing_city": "Forty"}, more_cards=39)
    keys = _card_keys(ctx, set_id)
    before = _composite_calls(crm_sandbox)

    state, message = push_until_final(ctx, set_id)

    assert (state, message) == ("applied", None)
    assert len(keys) == 39
    assert _cards_with_keys(sf, keys) == 39
    assert sf.Account.get(admin.account)["BillingCity"] == "Forty"
    assert len(authorizations(sf, admin.account)) == 1
    # one /composite reading the account, one /composite/graph writing all 41 records
    assert _composite_calls(crm_sandbox) - before == 2


def test_given_a_validation_rule_when_a_40_change_set_is_pushed_then_nothing_is_applied(
    ctx, sf, crm_sandbox
):
    admin = pick_admin(sf)
    city = sf.Account.get(admin.account)["BillingCity"]
    hook(
        crm_sandbox,
        "validation-rules",
        {
            "object": "Account",
            "field": "BillingCountry",
            "equals": "Atlantis",
            "message": "Billing country must be a country we invoice",
        },
    )
    set_id = accept_direct(
        ctx,
        admin,
        fields={"billing_city": "Nowhere", "billing_country": "Atlantis"},
        more_cards=38,
    )
    keys = _card_keys(ctx, set_id)

    state, message = push_until_final(ctx, set_id)

    assert state == "failed"
    # names the node's record and gives the CRM's words
    assert f"Account {admin.account}: FIELD_CUSTOM_VALIDATION_EXCEPTION" in (message or "")
    assert "Billing country must be a country we invoice" in (message or "")
    # the graph rolled back: the authorization (sent first) and the 38 cards do not exist
    assert authorizations(sf, admin.account) == []
    assert _cards_with_keys(sf, keys) == 0
    assert sf.Account.get(admin.account)["BillingCity"] == city


def test_given_499_cards_staged_when_one_more_is_staged_then_refused_saying_why(ctx, sf):
    admin = pick_admin(sf)
    now = dt.datetime.now(dt.UTC)
    with ctx.engine.begin() as conn:
        for _ in range(499):
            stage_test_card(conn, admin, now)
        # the authorization + 499 cards is the 500-node graph limit
        with pytest.raises(StagingError) as info:
            stage_test_card(conn, admin, now)

    assert "501 CRM writes" in str(info.value)
    assert "at most 500" in str(info.value)
