"""The push against the sandbox over HTTP: exactly once, conflicts, failures, limits.

Changes are staged and accepted as the portal does (without a browser); the CRM is
checked with simple-salesforce. SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt

import pytest
from simple_salesforce import format_soql
from sqlalchemy import text

from sync.changes import outbox
from sync.push import push_pending
from tests.support.changes import (
    accept_direct,
    active_methods,
    authorizations,
    pick_admin,
    push_until_final,
    set_state,
)
from tests.support.pull import hook, make_context
from tests.support.sandbox import set_faults

pytestmark = pytest.mark.slow


@pytest.fixture
def ctx(crm_sandbox, database_url):
    from sync.pull import pull_all

    context = make_context(crm_sandbox, database_url, push_lease=5.0)
    pull_all(context)
    yield context
    context.close()


def _by_key(sf, sobject: str, key: str) -> list[dict]:
    return sf.query_all(
        format_soql(f"SELECT Id FROM {sobject} WHERE Billing_Sync_Key__c = {{}}", key)
    )["records"]


def _items(ctx, set_id: int) -> list:
    with ctx.engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT field, outcome, crm_value, external_key FROM change_items "
                    "WHERE change_set_id = :i ORDER BY position"
                ),
                {"i": set_id},
            )
        )


def test_given_an_accepted_set_when_pushed_then_one_composite_call_applies_it(ctx, sf, crm_sandbox):
    admin = pick_admin(sf)
    set_id = accept_direct(ctx, admin, fields={"billing_city": "Lisbon"}, card=True)
    calls = hook(crm_sandbox, "stats", method="GET")["by_endpoint"].get("composite", 0)

    report = push_pending(ctx)

    assert report.pushed == 1 and set_state(ctx, set_id)[0] == "applied"
    # one call to read the current values, one to write everything
    assert hook(crm_sandbox, "stats", method="GET")["by_endpoint"]["composite"] - calls == 2
    assert report.api_calls == 2
    assert sf.Account.get(admin.account)["BillingCity"] == "Lisbon"
    with ctx.engine.connect() as conn:
        view = outbox.get_set(conn, set_id)
    assert view is not None and view.authorization_sfid
    auth = sf.Billing_Authorization__c.get(view.authorization_sfid)
    assert auth["Authorized_By_Name__c"] == f"{admin.first_name} {admin.last_name}"
    assert "City: " in auth["Summary__c"] and "Add card: Visa ending in 4242" in auth["Summary__c"]
    assert {"accounts", "payment_methods", "authorizations"} <= report.touched_mappings


def test_given_an_applied_set_when_sent_again_then_nothing_is_created_twice(ctx, sf):
    admin = pick_admin(sf)
    set_id = accept_direct(ctx, admin, fields={"billing_city": "Porto"}, card=True)
    assert push_until_final(ctx, set_id)[0] == "applied"
    # A crash after the CRM applied the set but before the outbox recorded it.
    with ctx.engine.begin() as conn:
        conn.execute(
            text("UPDATE change_sets SET state = 'accepted', finished_at = NULL WHERE id = :i"),
            {"i": set_id},
        )

    assert push_until_final(ctx, set_id)[0] == "applied"

    (card_key,) = [row.external_key for row in _items(ctx, set_id) if row.external_key]
    assert len(_by_key(sf, "Apttus_Billing__PaymentMethod__c", card_key)) == 1
    assert len(authorizations(sf, admin.account)) == 1
    # the second sending found the city already set: nothing to do for that field
    assert [r.outcome for r in _items(ctx, set_id) if r.field == "BillingCity"] == ["unchanged"]


def test_given_a_csm_edit_after_staging_when_pushed_then_conflict_and_the_crm_value_kept(ctx, sf):
    admin = pick_admin(sf)
    set_id = accept_direct(ctx, admin, fields={"phone": "5554443333"})
    sf.Account.update(admin.account, {"Phone": "(212) 555-0100"})

    state, message = push_until_final(ctx, set_id)

    assert state == "conflict"
    assert "(212) 555-0100" in (message or "")
    assert sf.Account.get(admin.account)["Phone"] == "(212) 555-0100"
    assert authorizations(sf, admin.account) == []  # nothing at all was sent
    (item,) = _items(ctx, set_id)
    assert item.outcome == "conflict" and "(212) 555-0100" in item.crm_value


def test_given_the_crm_already_holds_the_new_value_when_pushed_then_applied_without_a_write(
    ctx, sf
):
    admin = pick_admin(sf)
    set_id = accept_direct(ctx, admin, fields={"phone": "5554443333"})
    sf.Account.update(admin.account, {"Phone": "5554443333"})
    stamp = sf.Account.get(admin.account)["SystemModstamp"]

    assert push_until_final(ctx, set_id)[0] == "applied"

    assert sf.Account.get(admin.account)["SystemModstamp"] == stamp
    assert [r.outcome for r in _items(ctx, set_id)] == ["unchanged"]


def test_given_a_validation_rule_when_pushed_then_failed_with_the_crm_message_and_nothing_applied(
    ctx, sf, crm_sandbox
):
    admin = pick_admin(sf)
    hook(
        crm_sandbox,
        "validation-rules",
        {
            "object": "Account",
            "field": "BillingCountry",
            "equals": "Narnia",
            "message": "Billing country must be a country we invoice",
        },
    )
    set_id = accept_direct(ctx, admin, fields={"billing_country": "Narnia"}, card=True)

    state, message = push_until_final(ctx, set_id)

    assert state == "failed"
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in (message or "")
    assert "Billing country must be a country we invoice" in (message or "")
    # allOrNone: neither the authorization nor the card exists
    assert authorizations(sf, admin.account) == []
    assert all(
        m["Apttus_Billing__CardLastFour__c"] != "4242" for m in active_methods(sf, admin.account)
    )


def test_given_503s_and_latency_when_a_card_is_pushed_then_it_is_created_exactly_once(
    ctx, sf, crm_sandbox
):
    admin = pick_admin(sf)
    set_id = accept_direct(ctx, admin, card=True, card_default=True)
    set_faults(crm_sandbox, error_rate=0.5, errors=["SERVER_UNAVAILABLE"], latency_ms=300)
    try:
        state, _ = push_until_final(ctx, set_id, timeout=120)
    finally:
        set_faults(crm_sandbox, error_rate=0.0, latency_ms=0.0)

    assert state == "applied"
    (card_key,) = [row.external_key for row in _items(ctx, set_id) if row.external_key]
    assert len(_by_key(sf, "Apttus_Billing__PaymentMethod__c", card_key)) == 1
    assert len(authorizations(sf, admin.account)) == 1
    methods = active_methods(sf, admin.account)
    assert [m["Billing_Sync_Key__c"] for m in methods if m["Apttus_Billing__IsDefault__c"]] == [
        card_key
    ]


def test_given_the_api_limit_spent_when_pushing_then_the_push_pauses_and_resumes_later(
    ctx, sf, crm_sandbox
):
    admin = pick_admin(sf)
    set_id = accept_direct(ctx, admin, fields={"billing_city": "Oslo"})
    set_faults(crm_sandbox, error_rate=1.0, errors=["REQUEST_LIMIT_EXCEEDED"])
    try:
        report = push_pending(ctx)
    finally:
        set_faults(crm_sandbox, error_rate=0.0)

    assert report.paused_until is not None and report.pushed == 0
    assert set_state(ctx, set_id)[0] == "accepted"
    # While paused nothing is tried, even though the CRM answers again.
    assert push_pending(ctx).pushed == 0
    later = report.paused_until + dt.timedelta(seconds=1)
    assert push_pending(ctx, now=later).pushed == 1
    assert sf.Account.get(admin.account)["BillingCity"] == "Oslo"


def test_given_two_sets_of_one_account_when_pushed_then_applied_in_acceptance_order(ctx, sf):
    admin = pick_admin(sf)
    first = accept_direct(ctx, admin, fields={"billing_city": "First"})
    second = accept_direct(ctx, admin, fields={"billing_city": "Second"})
    # Both saw the mirrored city. Sent in acceptance order, the first applies and the
    # second finds the first's value instead of the one it saw: a conflict, not an
    # overwrite. (In the other order the first would be the conflict.)
    report = push_pending(ctx)

    assert report.pushed + report.conflicts == 2
    assert set_state(ctx, first)[0] == "applied"
    assert set_state(ctx, second)[0] == "conflict"
    assert sf.Account.get(admin.account)["BillingCity"] == "First"


def test_given_an_admin_revoked_after_accepting_when_pushed_then_accepted_sent_staged_dropped(
    ctx, sf
):
    from sync.changes.staging import FieldEdit, list_staged, stage_account_fields
    from sync.pull import pull_mapping

    admin = pick_admin(sf)
    set_id = accept_direct(ctx, admin, fields={"billing_city": "Accepted Before"})
    with ctx.engine.begin() as conn:
        edit = FieldEdit("billing_state", "State", None, "Staged Only")
        stage_account_fields(conn, admin.contact, admin.account, [edit], dt.datetime.now(dt.UTC))
    # The CSM takes the role away; the pull brings the revocation in.
    sf.AccountContactRole.delete(admin.role)
    pull_mapping(ctx, "account_contact_roles")

    report = push_pending(ctx)

    assert report.dropped_staged == 1 and report.pushed == 1
    assert set_state(ctx, set_id)[0] == "applied"  # it was authorized when accepted
    account = sf.Account.get(admin.account)
    assert account["BillingCity"] == "Accepted Before"
    assert account["BillingState"] != "Staged Only"
    with ctx.engine.connect() as conn:
        assert list_staged(conn, admin.contact, admin.account) == []
