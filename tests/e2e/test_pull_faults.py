"""Faults, expired sessions, the API limit and purged records, against the sandbox."""

import time

import pytest
from sqlalchemy import select

from sync.commands.pull import collect_status
from sync.db.models import Account, Contact
from sync.pull import Outcome, pull_all, reconcile_mapping
from sync.sandbox.server import SandboxConfig, SandboxServer
from tests.support.pull import hook, make_context, mirror_differences, stats
from tests.support.sandbox import jwt_keys

pytestmark = pytest.mark.slow


def test_given_20_percent_faults_and_expiring_sessions_when_pulled_then_converges(
    crm_sandbox, database_url, sf
):
    ctx = make_context(crm_sandbox, database_url, pull_batch_size=200)
    pages = 0

    def expire_sometimes(progress):
        nonlocal pages
        pages += 1
        if pages % 4 == 0:
            hook(crm_sandbox, "expire-sessions")

    try:
        hook(
            crm_sandbox,
            "faults",
            {"error_rate": 0.2, "errors": ["SERVER_UNAVAILABLE", "UNABLE_TO_LOCK_ROW"]},
        )
        logins = ctx.crm.logins
        results = pull_all(ctx, progress=expire_sometimes)
        faulty = stats(crm_sandbox)
        hook(crm_sandbox, "faults", method="DELETE")

        assert {r.outcome for r in results} == {Outcome.OK}, [r.error for r in results]
        assert pages >= 12
        assert ctx.crm.logins - logins >= 3
        assert faulty["api_calls"] >= sum(r.api_calls for r in results)
        assert mirror_differences(ctx.engine, ctx.crm, ctx.mappings) == []
    finally:
        ctx.close()


def test_given_api_limit_spent_mid_run_when_pulled_then_stops_clearly_and_converges_later(
    crm_sandbox, database_url
):
    ctx = make_context(crm_sandbox, database_url)
    try:
        used = stats(crm_sandbox)["api_usage"]["used"]
        # Room for the idle check (3 calls) and a few mappings, not for all eleven.
        hook(crm_sandbox, "faults", {"daily_limit": used + 6})

        stopped = pull_all(ctx)

        outcomes = [r.outcome for r in stopped]
        assert Outcome.LIMIT_EXCEEDED in outcomes
        assert outcomes.count(Outcome.OK) >= 1
        first_limited = outcomes.index(Outcome.LIMIT_EXCEEDED)
        assert set(outcomes[first_limited:]) == {Outcome.LIMIT_EXCEEDED}
        limited = stopped[first_limited]
        assert "REQUEST_LIMIT_EXCEEDED" in (limited.error or "")
        status = {
            m["mapping"]: m for m in collect_status(ctx.engine, ctx.settings, ctx.now())["mappings"]
        }
        assert status[limited.mapping]["state"] == "failing"
        assert "REQUEST_LIMIT_EXCEEDED" in status[limited.mapping]["last_error"]

        hook(crm_sandbox, "faults", method="DELETE")
        resumed = pull_all(ctx)

        assert Outcome.LIMIT_EXCEEDED not in {r.outcome for r in resumed}
        assert mirror_differences(ctx.engine, ctx.crm, ctx.mappings) == []
        status = {
            m["mapping"]: m for m in collect_status(ctx.engine, ctx.settings, ctx.now())["mappings"]
        }
        assert "failing" not in {m["state"] for m in status.values()}
        assert {m["last_outcome"] for m in status.values()} <= {"ok", "unchanged"}
    finally:
        ctx.close()


@pytest.fixture
def purging_sandbox():
    server = SandboxServer(
        SandboxConfig(seed=3, seed_random=5, retention=0.2, jwt_cert=str(jwt_keys().cert_file))
    )
    server.start()
    yield server
    server.stop()


def test_given_record_purged_before_a_pass_saw_it_when_reconciled_then_tombstoned(
    purging_sandbox, sqlite_database_url
):
    url = purging_sandbox.url
    # Reconcile leaves alone rows stamped within the lookback of its start.
    ctx = make_context(url, sqlite_database_url, lookback_seconds=1.0)
    try:
        pull_all(ctx)
        contacts = ctx.crm.query_all("SELECT Id FROM Contact ORDER BY Id")
        gone = [contacts[0]["Id"], contacts[-1]["Id"]]
        for sfid in gone:
            ctx.crm.delete("Contact", sfid)
        time.sleep(1.1)
        purging_sandbox.store.maybe_purge(force=True)

        pull_all(ctx)
        with ctx.engine.connect() as conn:
            still_live = conn.scalars(
                select(Contact.sfid).where(Contact.sfid.in_(gone), ~Contact.is_deleted)
            ).all()
        assert sorted(still_live) == sorted(gone)  # queryAll no longer reports them

        result = reconcile_mapping(ctx, "contacts")

        assert result.outcome is Outcome.OK
        assert result.tombstoned == 2
        assert result.crm_records == len(contacts) - 2
        # The CRM cascaded the deletes to the contacts' roles, purged with them.
        others = pull_all(ctx, reconcile=True)
        assert {r.reconciled.outcome for r in others} == {Outcome.OK}
        assert mirror_differences(ctx.engine, ctx.crm, ctx.mappings) == []
        again = reconcile_mapping(ctx, "contacts")
        assert again.tombstoned == 0
    finally:
        ctx.close()


def test_given_full_reconcile_when_nothing_purged_then_nothing_tombstoned(
    crm_sandbox, sqlite_database_url
):
    ctx = make_context(crm_sandbox, sqlite_database_url)
    try:
        pull_all(ctx)

        results = pull_all(ctx, reconcile=True)

        assert all(r.reconciled is not None for r in results)
        assert {r.reconciled.outcome for r in results} == {Outcome.OK}
        assert sum(r.reconciled.tombstoned for r in results) == 0
        with ctx.engine.connect() as conn:
            assert conn.scalar(select(Account.is_deleted).limit(1)) is False
    finally:
        ctx.close()
