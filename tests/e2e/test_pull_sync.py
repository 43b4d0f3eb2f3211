"""The pull against the sandbox over real HTTP, on SQLite and PostgreSQL."""

import datetime as dt

import pytest
from sqlalchemy import select

from sync.db import repo
from sync.db.models import AccountContactRole, Contact, Order
from sync.mapping.spec import MappingSet
from sync.pull import Outcome, pull_all
from tests.support.pull import (
    duplicate_sfids,
    make_context,
    mirror_differences,
    stats,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def ctx(crm_sandbox, database_url):
    context = make_context(crm_sandbox, database_url)
    yield context
    context.close()


def test_given_crm_with_deleted_records_when_full_pull_then_mirror_equals_crm(ctx, sf):
    contact = sf.query("SELECT Id FROM Contact ORDER BY Id LIMIT 1")["records"][0]["Id"]
    line = sf.query("SELECT Id FROM Apttus_Billing__InvoiceLineItem__c LIMIT 1")["records"][0]
    sf.Contact.delete(contact)
    sf.Apttus_Billing__InvoiceLineItem__c.delete(line["Id"])

    results = pull_all(ctx)

    assert {r.outcome for r in results} == {Outcome.OK}
    assert sum(r.records for r in results) > 2000
    assert mirror_differences(ctx.engine, ctx.crm, ctx.mappings) == []
    assert set(duplicate_sfids(ctx.engine, ctx.mappings).values()) == {0}
    with ctx.engine.connect() as conn:
        deleted = conn.scalar(select(Contact.is_deleted).where(Contact.sfid == contact))
    assert deleted is True


def test_given_no_change_when_pulled_again_then_idle_pass_costs_ceil_m_over_5_calls(
    ctx, crm_sandbox
):
    pull_all(ctx)
    before = stats(crm_sandbox)["api_calls"]

    results = pull_all(ctx)

    assert {r.outcome for r in results} == {Outcome.UNCHANGED}
    assert stats(crm_sandbox)["api_calls"] - before == 3  # ceil(11 / 5)
    assert sum(r.api_calls for r in results) == 3


def test_given_unchanged_crm_when_reloaded_then_rows_not_rewritten(ctx):
    pull_all(ctx)
    with ctx.engine.connect() as conn:
        before = dict(conn.execute(select(Order.sfid, Order.synced_at)).all())

    results = pull_all(ctx, full=True)

    assert {r.outcome for r in results} == {Outcome.OK}
    with ctx.engine.connect() as conn:
        after = dict(conn.execute(select(Order.sfid, Order.synced_at)).all())
    assert after == before


def test_given_crm_edits_when_next_pass_then_mirrored_including_billing_admin_change(ctx, sf):
    pull_all(ctx)
    admin = sf.query(
        "SELECT Id, AccountId, ContactId FROM AccountContactRole "
        "WHERE Role = 'Billing Admin' ORDER BY Id LIMIT 1"
    )["records"][0]
    others = sf.query(
        "SELECT Id FROM Contact WHERE AccountId = '{}' AND Id != '{}'".format(
            admin["AccountId"], admin["ContactId"]
        )
    )["records"]
    successor = others[0]["Id"]
    sf.AccountContactRole.delete(admin["Id"])
    new_role = sf.AccountContactRole.create(
        {"AccountId": admin["AccountId"], "ContactId": successor, "Role": "Billing Admin"}
    )["id"]
    order = sf.query("SELECT Id FROM Apttus_Config2__Order__c ORDER BY Id LIMIT 1")["records"][0]
    sf.Apttus_Config2__Order__c.update(
        order["Id"],
        {"Apttus_Config2__Status__c": "Cancelled", "Apttus_Config2__OrderAmount__c": 99.99},
    )
    created = sf.Contact.create(
        {"AccountId": admin["AccountId"], "LastName": "Newcomer", "Email": "new@example.com"}
    )["id"]

    results = pull_all(ctx)

    outcomes = {r.mapping: r.outcome for r in results}
    assert outcomes["account_contact_roles"] is Outcome.OK
    assert outcomes["orders"] is Outcome.OK
    assert outcomes["contacts"] is Outcome.OK
    assert outcomes["invoices"] is Outcome.UNCHANGED
    assert mirror_differences(ctx.engine, ctx.crm, ctx.mappings) == []
    with ctx.engine.connect() as conn:
        admins = conn.execute(
            select(AccountContactRole.contact_sfid, AccountContactRole.is_deleted).where(
                AccountContactRole.account_sfid == admin["AccountId"],
                AccountContactRole.role == "Billing Admin",
            )
        ).all()
        status = conn.scalar(select(Order.status).where(Order.sfid == order["Id"]))
        newcomer = conn.scalar(select(Contact.last_name).where(Contact.sfid == created))
    assert (admin["ContactId"], True) in admins
    assert (successor, False) in admins
    assert new_role
    assert status == "Cancelled"
    assert newcomer == "Newcomer"


def test_given_pass_when_finished_then_history_and_state_recorded(ctx):
    results = pull_all(ctx, names=["products"])

    with ctx.engine.connect() as conn:
        [history] = repo.recent_passes(conn, "products")
        state = repo.get_state(conn, "products")
    assert history.outcome == "ok"
    assert history.kind == "full"
    assert history.records == results[0].records > 0
    assert history.api_calls >= 1
    assert state.watermark == results[0].watermark
    assert state.watermark <= dt.datetime.now(dt.UTC)
    assert state.last_outcome == "ok"


def test_given_record_error_when_mapping_corrected_then_mapping_reloaded_and_error_cleared(
    crm_sandbox, sqlite_database_url, sf, tmp_path
):
    import shutil

    from sync.mapping.loader import PROJECT_MAPPINGS

    folder = tmp_path / "mappings"
    shutil.copytree(PROJECT_MAPPINGS, folder)
    accounts = folder / "accounts.yaml"
    text = accounts.read_text().replace("  BillingCity: {column: billing_city, type: string}\n", "")
    accounts.write_text(
        text.replace(
            "{column: billing_street, type: string}", "{column: billing_city, type: string}"
        )
    )
    bad = sf.query("SELECT Id FROM Account ORDER BY Id LIMIT 1")["records"][0]["Id"]
    sf.Account.update(bad, {"BillingStreet": "1 Extraordinarily Long Boulevard Name, Building 7"})
    narrow = make_context(crm_sandbox, sqlite_database_url, mappings_dir=str(folder))
    try:
        [result] = pull_all(narrow, names=["accounts"])
        assert result.record_errors == 1
    finally:
        narrow.close()

    fixed = make_context(crm_sandbox, sqlite_database_url)
    try:
        [reloaded] = pull_all(fixed, names=["accounts"])

        assert reloaded.outcome is Outcome.OK
        assert reloaded.full is True
        with fixed.engine.connect() as conn:
            assert repo.record_errors(conn, "accounts") == []
        only_accounts = MappingSet({"accounts": fixed.mappings["accounts"]})
        assert mirror_differences(fixed.engine, fixed.crm, only_accounts) == []
        [again] = pull_all(fixed, names=["accounts"])
        assert again.outcome is Outcome.UNCHANGED
    finally:
        fixed.close()


def test_given_recorded_errors_when_due_then_fetched_again_by_id(crm_sandbox, database_url, sf):
    import time

    ctx = make_context(crm_sandbox, database_url, lookback_seconds=1.0)
    try:
        pull_all(ctx, names=["contacts"])
        contacts = sf.query("SELECT Id FROM Contact ORDER BY Id")["records"]
        time.sleep(1.2)
        sf.Contact.update(contacts[-1]["Id"], {"FirstName": "Moved"})
        pull_all(ctx, names=["contacts"])  # the watermark is now past the seeded records
        stored = contacts[0]["Id"]
        purged = "003000000000000AAA"
        with ctx.engine.begin() as conn:
            conn.execute(Contact.__table__.delete().where(Contact.sfid == stored))
            repo.save_record_errors(
                conn,
                "contacts",
                {stored: "failed earlier", purged: "failed earlier"},
                now=ctx.now() - dt.timedelta(minutes=5),
            )
        before = ctx.crm.api_calls

        [result] = pull_all(ctx, names=["contacts"])

        assert result.outcome is Outcome.OK
        # the lookback re-reads the edited contact; the failed one comes by Id
        assert result.records == 2
        assert ctx.crm.api_calls - before == 2  # the window and one query by Id
        with ctx.engine.connect() as conn:
            assert repo.record_errors(conn, "contacts") == []
            assert conn.scalar(select(Contact.is_deleted).where(Contact.sfid == stored)) is False
    finally:
        ctx.close()
