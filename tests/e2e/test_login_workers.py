"""One access token for the whole deployment: two Celery workers (four processes) log in
once, and when the token expires mid-pass it is renewed once for all of them."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import pytest
import requests
from sqlalchemy import Engine, text

from sync.db.engine import make_engine, upgrade
from tests.support.sandbox import running_sandbox, sandbox_stats, set_faults
from tests.support.workers import salesforce, service_env, wait_converged, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def db(pg_database_url: str) -> Iterator[tuple[str, Engine]]:
    url = f"{pg_database_url}&application_name=bs_{uuid.uuid4().hex[:10]}"
    engine = make_engine(url)
    upgrade(engine)
    yield url, engine
    engine.dispose()


def logins(url: str) -> int:
    return int(sandbox_stats(url)["by_endpoint"].get("login", 0))


def passes_since(engine: Engine, moment: dt.datetime) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT COUNT(*) FROM sync_passes WHERE outcome = 'ok' AND started_at > :m"),
                {"m": moment},
            ).scalar()
            or 0
        )


def counted_logins(engine: Engine) -> dict[str, float]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT labels, value FROM metric_counters WHERE name = :n"),
            {"n": "billing_sync_crm_logins_total"},
        ).all()
    return {labels: value for labels, value in rows}


def test_given_two_workers_when_token_expires_mid_pass_then_one_renewal_for_all(
    db, prefix, redis_url, services
):
    url, engine = db
    with running_sandbox("--seed", "10", "--seed-random", "4") as sandbox:
        crm = sandbox.url
        set_faults(crm, daily_limit=50_000_000, latency_ms=20.0)
        sf = salesforce(crm)  # the test's own client: one login, before counting
        services.env = service_env(
            database_url=url, broker_url=redis_url, sandbox_url=crm, prefix=prefix
        )
        services.beat()
        services.worker("a", concurrency=2)
        services.worker("b", concurrency=2)
        assert wait_converged(sf, engine, timeout=120) == {}, services.logs()
        deployment_logins = logins(crm) - 1

        expired_at = dt.datetime.now(dt.UTC)
        requests.post(f"{crm}/_sandbox/expire-sessions", timeout=10).raise_for_status()
        # An edit the workers must pull with a renewed token (the test's client renews
        # its own session too: one more login, not the deployment's).
        account = sf.query("SELECT Id FROM Account LIMIT 1")["records"][0]["Id"]
        sf.Account.update(account, {"Name": "Renamed after the expiry"})
        assert wait_converged(sf, engine, timeout=90) == {}, services.logs()
        assert wait_until(lambda: passes_since(engine, expired_at) >= 1, timeout=30)
        renewals = logins(crm) - 2 - deployment_logins
        assert wait_until(
            lambda: counted_logins(engine).get("flow=jwt\noutcome=success") == 2.0, timeout=30
        ), counted_logins(engine)

    print(
        f"\nlogins: at start {deployment_logins} for 2 workers x 2 processes; "
        f"after the expiry {renewals}; metric {counted_logins(engine)}"
    )
    assert deployment_logins == 1
    assert renewals == 1
