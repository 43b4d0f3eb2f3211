"""The Billing Admin history against the sandbox over real HTTP, on SQLite and PostgreSQL."""

import pytest
from sqlalchemy import func, select

from sync.db.models import AccountContactRole, BillingAdminChange
from sync.monitoring import admins
from sync.pull import Outcome, pull_all, pull_mapping
from tests.support.pull import make_context

pytestmark = pytest.mark.slow


@pytest.fixture
def ctx(crm_sandbox, database_url):
    context = make_context(crm_sandbox, database_url)
    yield context
    context.close()


def entries(engine):
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                BillingAdminChange.account_sfid,
                BillingAdminChange.contact_sfid,
                BillingAdminChange.change,
                BillingAdminChange.reason,
            ).order_by(BillingAdminChange.id)
        )
        return [tuple(r) for r in rows]


def test_given_a_csm_reassigns_the_billing_admin_when_pulled_then_history_and_answer(ctx, sf):
    pull_all(ctx)
    with ctx.engine.connect() as conn:
        live_admins = conn.scalar(
            select(func.count())
            .select_from(AccountContactRole)
            .where(AccountContactRole.role == "Billing Admin", ~AccountContactRole.is_deleted)
        )
    first = entries(ctx.engine)
    assert live_admins and len(first) == live_admins
    assert {(change, reason) for *_, change, reason in first} == {("added", "new")}

    admin = sf.query(
        "SELECT Id, AccountId, ContactId FROM AccountContactRole "
        "WHERE Role = 'Billing Admin' ORDER BY Id LIMIT 1"
    )["records"][0]
    account = admin["AccountId"]
    successor = sf.query(
        "SELECT Id FROM Contact WHERE AccountId = '{}' AND Id != '{}'".format(
            account, admin["ContactId"]
        )
    )["records"][0]["Id"]
    sf.AccountContactRole.delete(admin["Id"])
    sf.AccountContactRole.create(
        {"AccountId": account, "ContactId": successor, "Role": "Billing Admin"}
    )

    pull_all(ctx)

    # one page carries both rows: the two entries, in either order
    assert sorted(entries(ctx.engine)[len(first) :]) == sorted(
        [
            (account, admin["ContactId"], "removed", "deleted"),
            (account, successor, "added", "new"),
        ]
    )
    after_change = entries(ctx.engine)

    result = pull_mapping(ctx, "account_contact_roles", full=True)
    assert result.outcome is Outcome.OK
    assert entries(ctx.engine) == after_change  # a reload writes no entry

    number = sf.query(f"SELECT AccountNumber FROM Account WHERE Id = '{account}'")["records"][0][
        "AccountNumber"
    ]
    assert number
    with ctx.engine.connect() as conn:
        [answer] = admins.answers(conn, number, ctx.settings)
    current = [a.contact_sfid for a in answer.admins]
    assert successor in current and admin["ContactId"] not in current
    assert sorted((e.change, e.contact_sfid) for e in answer.history[:2]) == [
        ("added", successor),
        ("removed", admin["ContactId"]),
    ]
    assert answer.crm_url is not None and answer.crm_url.endswith(f"/Account/{account}/view")
