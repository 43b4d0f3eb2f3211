"""The push on a real Celery worker over Redis and PostgreSQL: a worker killed with
SIGKILL in the middle of a push loses and duplicates nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from simple_salesforce import format_soql
from sqlalchemy import Engine, text

from sync.db.engine import make_engine
from sync.pull import pull_all
from tests.support.changes import accept_direct, authorizations, pick_admin
from tests.support.pull import make_context
from tests.support.sandbox import running_sandbox, set_faults
from tests.support.workers import salesforce, service_env, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[str]:
    with running_sandbox("--seed", "8", "--seed-random", "5") as process:
        yield process.url


@pytest.fixture
def db(pg_migrated_url: str) -> Iterator[tuple[str, Engine]]:
    engine = make_engine(pg_migrated_url)
    yield pg_migrated_url, engine
    engine.dispose()


def test_given_a_worker_killed_mid_push_when_another_starts_then_applied_exactly_once(
    sandbox, db, prefix, redis_url, services
):
    url, engine = db
    sf = salesforce(sandbox)
    ctx = make_context(sandbox, url)
    try:
        pull_all(ctx)
        admin = pick_admin(sf)
        set_id = accept_direct(ctx, admin, fields={"billing_city": "Kyiv"}, card=True)
    finally:
        ctx.close()
    # Every CRM call takes 1.5 s, so the worker is killed while the set is being sent.
    set_faults(sandbox, latency_ms=1500.0)
    services.env = service_env(
        database_url=url,
        broker_url=redis_url,
        sandbox_url=sandbox,
        prefix=prefix,
        BILLING_SYNC_PUSH_INTERVAL="1",
        BILLING_SYNC_PUSH_LEASE="3",
        BILLING_SYNC_PULL_INTERVAL="30",
    )
    services.beat()
    worker = services.worker("a")
    try:
        assert wait_until(lambda: set_state_pg(engine, set_id) == "sending", timeout=60), (
            services.logs()
        )
        worker.kill()
        set_faults(sandbox, latency_ms=0.0)
        services.worker("b")
        assert wait_until(lambda: set_state_pg(engine, set_id) == "applied", timeout=60), (
            services.logs()
        )
    finally:
        set_faults(sandbox, latency_ms=0.0)

    with engine.connect() as conn:
        key = conn.execute(
            text(
                "SELECT external_key FROM change_items WHERE change_set_id = :i "
                "AND external_key IS NOT NULL"
            ),
            {"i": set_id},
        ).scalar_one()
        attempts = conn.execute(
            text("SELECT attempts FROM change_sets WHERE id = :i"), {"i": set_id}
        ).scalar_one()
    cards = sf.query_all(
        format_soql(
            "SELECT Id FROM Apttus_Billing__PaymentMethod__c WHERE Billing_Sync_Key__c = {}", key
        )
    )["records"]
    assert len(cards) == 1
    assert len(authorizations(sf, admin.account)) == 1
    assert sf.Account.get(admin.account)["BillingCity"] == "Kyiv"
    assert attempts >= 2  # the killed worker's attempt, then the one that applied it


def set_state_pg(engine: Engine, set_id: int) -> str:
    with engine.connect() as conn:
        state: str = conn.execute(
            text("SELECT state FROM change_sets WHERE id = :i"), {"i": set_id}
        ).scalar_one()
    return state
