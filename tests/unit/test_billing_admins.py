"""The Billing Admin history kept by the pull, and the "who is the Billing Admin?" look-up."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from sync import cli
from sync.context import SyncContext
from sync.crm.client import QueryPage
from sync.db.models import AccountContactRole, BillingAdminChange
from sync.db.repo import admins as admins_repo
from sync.db.shapes import MIRRORED_SHAPES
from sync.mapping import load_mappings
from sync.mapping.loader import PROJECT_MAPPINGS
from sync.monitoring import admins
from sync.pull import Outcome, pull_mapping
from sync.pull import engine as pull_engine
from sync.pull.reconcile import reconcile_mapping
from sync.settings import Settings
from tests.support.portal_data import NOW as DATA_NOW
from tests.support.portal_data import PortalData

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
ACME = "001000000000001AAA"
ADA = "003000000000001AAA"
BOB = "003000000000002AAA"
ROLE_ADA = "02Z000000000001AAA"
ROLE_BOB = "02Z000000000002AAA"


def role_record(sfid, contact, role, second, *, deleted=False, account=ACME):
    return {
        "attributes": {"type": "AccountContactRole"},
        "Id": sfid,
        "IsDeleted": deleted,
        "SystemModstamp": f"2026-11-22T10:00:{second:02d}.000+0000",
        "Role": role,
        "IsPrimary": False,
        "AccountId": account,
        "ContactId": contact,
    }


class RolesCrm:
    """Answers every window query with all its role records (as a reload reads them)."""

    def __init__(self):
        self.records: dict[str, dict] = {}
        self.purged: set[str] = set()
        self.api_calls = 0

    def put(self, record):
        self.records[record["Id"]] = record

    def query_pages(self, soql, *, include_deleted=False, batch_size=2000):
        self.api_calls += 1
        listed = [r for sfid, r in sorted(self.records.items()) if sfid not in self.purged]
        if soql.startswith("SELECT Id FROM"):  # reconcile: live Ids only
            listed = [{"Id": r["Id"]} for r in listed if not r["IsDeleted"]]
        yield QueryPage(listed, len(listed), True, None)

    def query_all(self, soql, *, include_deleted=False):
        self.api_calls += 1
        return []

    def query_count(self, soql, *, include_deleted=False):
        self.api_calls += 1
        return len(self.records)

    def close(self):
        pass


@pytest.fixture
def crm():
    return RolesCrm()


@pytest.fixture
def ctx(engine, crm):
    return SyncContext(
        settings=Settings(),
        engine=engine,
        crm=crm,  # type: ignore[arg-type]
        mappings=load_mappings(PROJECT_MAPPINGS, MIRRORED_SHAPES),
        clock=lambda: NOW,
    )


def history(engine):
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                BillingAdminChange.role_sfid,
                BillingAdminChange.contact_sfid,
                BillingAdminChange.change,
                BillingAdminChange.reason,
            ).order_by(BillingAdminChange.id)
        )
        return [tuple(r) for r in rows]


def pull(ctx, *, full=False):
    result = pull_mapping(ctx, "account_contact_roles", full=full, now=NOW)
    assert result.outcome is Outcome.OK, result.error
    return result


def test_given_new_role_rows_when_pulled_then_only_the_billing_admin_is_added(ctx, crm):
    crm.put(role_record(ROLE_ADA, ADA, "Billing Admin", 1))
    crm.put(role_record(ROLE_BOB, BOB, "Business User", 2))

    pull(ctx)

    assert history(ctx.engine) == [(ROLE_ADA, ADA, "added", "new")]
    with ctx.engine.connect() as conn:
        [entry] = admins_repo.history_rows(conn, ROLE_ADA)
    assert entry["account_sfid"] == ACME
    assert entry["changed_at"] == dt.datetime(2026, 11, 22, 10, 0, 1, tzinfo=UTC)
    assert entry["recorded_at"] == NOW


def test_given_roles_changed_in_the_crm_when_pulled_then_removal_and_addition_written(ctx, crm):
    crm.put(role_record(ROLE_ADA, ADA, "Billing Admin", 1))
    crm.put(role_record(ROLE_BOB, BOB, "Business User", 2))
    pull(ctx)

    crm.put(role_record(ROLE_ADA, ADA, "Business User", 10))
    crm.put(role_record(ROLE_BOB, BOB, "Billing Admin", 11))
    pull(ctx)

    assert history(ctx.engine) == [
        (ROLE_ADA, ADA, "added", "new"),
        (ROLE_ADA, ADA, "removed", "role changed"),
        (ROLE_BOB, BOB, "added", "role changed"),
    ]


def test_given_admin_role_deleted_in_the_crm_when_pulled_then_removal_written(ctx, crm):
    crm.put(role_record(ROLE_ADA, ADA, "Billing Admin", 1))
    pull(ctx)

    crm.put(role_record(ROLE_ADA, ADA, "Billing Admin", 20, deleted=True))
    pull(ctx)
    crm.put(role_record(ROLE_ADA, ADA, "Billing Admin", 30))  # undeleted
    pull(ctx)

    assert history(ctx.engine) == [
        (ROLE_ADA, ADA, "added", "new"),
        (ROLE_ADA, ADA, "removed", "deleted"),
        (ROLE_ADA, ADA, "added", "restored"),
    ]


def test_given_admin_role_purged_from_the_crm_when_reconciled_then_removal_written(ctx, crm):
    crm.put(role_record(ROLE_ADA, ADA, "Billing Admin", 1))
    crm.put(role_record(ROLE_BOB, BOB, "Business User", 2))
    pull(ctx)
    crm.purged = {ROLE_ADA, ROLE_BOB}

    result = reconcile_mapping(ctx, "account_contact_roles", now=NOW)

    assert result.tombstoned == 2
    assert history(ctx.engine) == [
        (ROLE_ADA, ADA, "added", "new"),
        (ROLE_ADA, ADA, "removed", "deleted"),
    ]
    with ctx.engine.connect() as conn:
        removed = admins_repo.history_rows(conn, ROLE_ADA)[-1]
    assert removed["changed_at"] == NOW  # no CRM stamp for a purge: when it was seen


def test_given_unchanged_roles_when_reloaded_in_full_then_no_new_entries(ctx, crm):
    crm.put(role_record(ROLE_ADA, ADA, "Billing Admin", 1))
    crm.put(role_record(ROLE_BOB, BOB, "Billing Admin", 2))
    pull(ctx)
    before = history(ctx.engine)

    pull(ctx, full=True)
    pull(ctx, full=True)
    pull(ctx)

    assert len(before) == 2
    assert history(ctx.engine) == before


def test_given_page_write_fails_when_pulled_then_neither_rows_nor_history_kept(
    ctx, crm, monkeypatch
):
    crm.put(role_record(ROLE_ADA, ADA, "Billing Admin", 1))

    def failing_save_state(*args, **kwargs):
        # after the rows and the history, inside the page's transaction
        raise OperationalError("UPDATE sync_state", {}, Exception("disk full"))

    monkeypatch.setattr(pull_engine.repo, "save_state", failing_save_state)
    result = pull_mapping(ctx, "account_contact_roles", now=NOW)

    assert result.outcome is Outcome.FAILED
    with ctx.engine.connect() as conn:
        roles = conn.scalar(select(func.count()).select_from(AccountContactRole))
    assert roles == 0
    assert history(ctx.engine) == []
    monkeypatch.undo()

    pull(ctx)
    assert history(ctx.engine) == [(ROLE_ADA, ADA, "added", "new")]


def test_given_admin_role_moved_to_another_contact_then_removal_and_addition(ctx, crm):
    crm.put(role_record(ROLE_ADA, ADA, "Billing Admin", 1))
    pull(ctx)

    crm.put(role_record(ROLE_ADA, BOB, "Billing Admin", 5))
    pull(ctx)

    assert history(ctx.engine) == [
        (ROLE_ADA, ADA, "added", "new"),
        (ROLE_ADA, ADA, "removed", "moved"),
        (ROLE_ADA, BOB, "added", "moved"),
    ]


def test_given_another_configured_role_when_pulled_then_history_follows_that_role(engine, crm):
    context = SyncContext(
        settings=Settings(billing_admin_role="Finance"),
        engine=engine,
        crm=crm,  # type: ignore[arg-type]
        mappings=load_mappings(PROJECT_MAPPINGS, MIRRORED_SHAPES),
        clock=lambda: NOW,
    )
    crm.put(role_record(ROLE_ADA, ADA, "Billing Admin", 1))
    crm.put(role_record(ROLE_BOB, BOB, "Finance", 2))

    pull(context)

    assert history(engine) == [(ROLE_BOB, BOB, "added", "new")]


# --- the look-up ---------------------------------------------------------------------


SINCE = dt.datetime(2026, 10, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
def accounts(engine):
    """Acme (number AC-1001) with Ada as Billing Admin since SINCE and Bob, removed;
    Globex, where Ada has no role, and whose contact Gil is its Billing Admin."""
    d = PortalData(engine)
    acme = d.account("Acme Corp", account_number="AC-1001")
    globex = d.account("Globex Inc", account_number="GX-7")
    ada = d.contact(acme, "Ada", "Admin", "ada@acme.example")
    bob = d.contact(acme, "Bob", "Former", "bob@acme.example")
    gil = d.contact(globex, "Gil", "Globex", "gil@globex.example")
    ada_role = d.role(acme, ada)
    bob_role = d.role(acme, bob, "Business User")
    d.role(globex, gil)
    with engine.begin() as conn:
        admins_repo.save_admin_changes(
            conn,
            [
                admins_repo.AdminChange(
                    ada_role, acme, ada, "added", "new", "Billing Admin", SINCE
                ),
                admins_repo.AdminChange(
                    bob_role, acme, bob, "added", "new", "Billing Admin", SINCE
                ),
                admins_repo.AdminChange(
                    bob_role, acme, bob, "removed", "role changed", "Business User", NOW
                ),
            ],
            recorded_at=NOW,
        )
    return {"acme": acme, "globex": globex, "ada": ada, "bob": bob, "gil": gil}


@pytest.mark.parametrize(
    "query",
    [
        "Acme",
        "acme corp",
        "AC-1001",
        "ac-1001",
        "ada@acme.example",
        "ADA@ACME.EXAMPLE",
        "id",
        "id15",
    ],
)
def test_given_accounts_when_searched_by_each_key_then_the_account_found(engine, accounts, query):
    query = {"id": accounts["acme"], "id15": accounts["acme"][:15]}.get(query, query)

    with engine.connect() as conn:
        found = admins.search(conn, query)

    assert [a.sfid for a in found] == [accounts["acme"]]


def test_given_email_of_a_contact_with_a_role_elsewhere_when_searched_then_both_found(
    engine, accounts
):
    d = PortalData(engine)
    d.role(accounts["globex"], accounts["ada"], "Business User")

    with engine.connect() as conn:
        found = admins.search(conn, "ada@acme.example")

    assert {a.sfid for a in found} == {accounts["acme"], accounts["globex"]}


def test_given_no_match_or_wildcards_when_searched_then_nothing(engine, accounts):
    with engine.connect() as conn:
        assert admins.search(conn, "Initech") == []
        assert admins.search(conn, "%") == []
        assert admins.search(conn, "   ") == []


def test_given_account_when_answered_then_admins_history_sets_and_crm_link(engine, accounts):
    settings = Settings(salesforce_instance_url="http://127.0.0.1:8700")
    with engine.connect() as conn:
        answer = admins.account_answer(conn, accounts["acme"], settings)

    assert answer is not None
    assert [(a.name, a.email, a.since) for a in answer.admins] == [
        ("Ada Admin", "ada@acme.example", SINCE)
    ]
    assert [(e.change, e.name, e.reason) for e in answer.history] == [
        ("removed", "Bob Former", "role changed"),
        ("added", "Bob Former", "new"),
        ("added", "Ada Admin", "new"),
    ]
    assert answer.crm_url == f"http://127.0.0.1:8700/lightning/r/Account/{accounts['acme']}/view"
    assert answer.account_number == "AC-1001"


def test_given_my_domain_only_when_answered_then_link_on_the_my_domain(engine, accounts):
    settings = Settings(salesforce_my_domain="acme.my.salesforce.com")
    with engine.connect() as conn:
        answer = admins.account_answer(conn, accounts["globex"], settings)

    assert answer is not None
    assert answer.crm_url == (
        f"https://acme.my.salesforce.com/lightning/r/Account/{accounts['globex']}/view"
    )
    # no history entry for Gil: "since" falls back to the role row's stamp
    assert [(a.name, a.since) for a in answer.admins] == [("Gil Globex", DATA_NOW)]


# --- the command ---------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch, database_url, accounts):
    monkeypatch.setenv("BILLING_SYNC_DATABASE_URL", database_url)
    monkeypatch.setenv("SALESFORCE_INSTANCE_URL", "http://127.0.0.1:8700")
    return accounts


def test_given_account_number_when_admins_command_then_text_answer(cli_env, capsys):
    code = cli.main(["admins", "AC-1001"])

    out = capsys.readouterr().out
    assert code == 0
    assert f"Acme Corp ({cli_env['acme']}, account number AC-1001)" in out
    assert f"CRM: http://127.0.0.1:8700/lightning/r/Account/{cli_env['acme']}/view" in out
    assert "Billing Admins:\n    Ada Admin <ada@acme.example>" in out
    assert "since 2026-10-01 09:30:00 UTC" in out
    assert "removed Bob Former <bob@acme.example> (role changed)" in out


def test_given_email_when_admins_command_json_then_structured_answer(cli_env, capsys):
    code = cli.main(["admins", "gil@globex.example", "--json"])

    answer = json.loads(capsys.readouterr().out)
    assert code == 0
    [account] = answer["accounts"]
    assert account["id"] == cli_env["globex"]
    assert account["account_number"] == "GX-7"
    assert [a["email"] for a in account["admins"]] == ["gil@globex.example"]
    assert account["crm_url"].endswith(f"/lightning/r/Account/{cli_env['globex']}/view")
    assert set(account) == {
        "id",
        "name",
        "account_number",
        "deleted",
        "crm_url",
        "admins",
        "history",
        "change_sets",
    }


def test_given_no_match_when_admins_command_then_exit_1(cli_env, capsys):
    assert cli.main(["admins", "Initech"]) == 1
    assert "no mirrored account matches 'Initech'" in capsys.readouterr().out
    assert cli.main(["admins", "Initech", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["accounts"] == []


def test_given_an_older_version_of_an_admin_row_when_pulled_then_no_entry(ctx, crm):
    crm.put(role_record(ROLE_ADA, ADA, "Billing Admin", 30))
    pull(ctx)

    # a stale read: the CRM's older version is never written over the newer one
    crm.put(role_record(ROLE_ADA, ADA, "Business User", 10))
    pull(ctx)

    assert history(ctx.engine) == [(ROLE_ADA, ADA, "added", "new")]
