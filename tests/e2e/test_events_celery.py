"""`billing-sync listen` with real Celery worker and beat processes, Redis and PostgreSQL.

Two listeners run; one is active (Redis lock). It is SIGKILLed in the middle of a burst
of edits; the standby takes over, resubscribes after the stored replay ids, and the
mirror ends equal to the CRM although polling runs only hourly in this test.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine

from sync.db.engine import make_engine, upgrade
from sync.service.listener_status import listener_status
from tests.support.sandbox import running_sandbox, set_faults
from tests.support.workers import (
    BIN,
    Services,
    salesforce,
    service_env,
    wait_converged,
    wait_until,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[str]:
    with running_sandbox("--seed", "8", "--seed-random", "4", "--cometd-timeout", "2") as proc:
        yield proc.url


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    value = f"bs-ev-{uuid.uuid4().hex[:10]}"
    yield value
    client = redis.Redis.from_url(redis_url)
    try:
        for key in client.scan_iter(match=f"{value}:*", count=500):
            client.delete(key)
    finally:
        client.close()


@pytest.fixture
def db(pg_migrated_url: str) -> Iterator[tuple[str, Engine]]:
    engine = make_engine(pg_migrated_url)
    yield pg_migrated_url, engine
    engine.dispose()


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    stack = Services(env={}, workdir=tmp_path)
    yield stack
    stack.stop_all()


def status(engine: Engine) -> dict:
    return listener_status(engine, dt.datetime.now(dt.UTC))


def test_given_two_listeners_when_the_active_one_is_killed_mid_burst_then_nothing_is_missed(
    sandbox, db, prefix, redis_url, services
):
    set_faults(sandbox, daily_limit=50_000_000)
    url, engine = db
    services.env = service_env(
        database_url=url,
        broker_url=redis_url,
        sandbox_url=sandbox,
        prefix=prefix,
        BILLING_SYNC_PULL_INTERVAL="3600",  # only events (and the first load) move data
    )
    services.beat()
    services.worker("w", concurrency=2)
    sf = salesforce(sandbox)
    assert wait_converged(sf, engine, timeout=120) == {}, services.logs()
    listen = [str(BIN / "billing-sync"), "-v", "listen"]
    first = services._start("listener-a", listen)
    second = services._start("listener-b", listen)
    assert wait_until(lambda: status(engine)["healthy"], 60), services.logs()
    holder = status(engine)["holder"]
    active, standby = (first, second) if holder.endswith(f":{first.pid}") else (second, first)
    assert holder.endswith(f":{active.pid}"), (holder, first.pid, second.pid)

    accounts = [r["Id"] for r in sf.query("SELECT Id FROM Account ORDER BY Id")["records"]]
    done = threading.Event()

    def burst() -> None:
        for round_ in range(6):
            for account in accounts:
                sf.Account.update(account, {"Name": f"Burst {round_} {account[-4:]}"})
        done.set()

    writer = threading.Thread(target=burst)
    writer.start()
    assert wait_until(lambda: status(engine)["events"] >= 5, 60), services.logs()
    active.kill()
    writer.join(timeout=120)
    assert done.is_set()

    assert wait_until(
        lambda: status(engine)["healthy"] and status(engine)["holder"].endswith(f":{standby.pid}"),
        60,
    ), services.logs()
    assert wait_converged(sf, engine, timeout=90) == {}, services.logs()


def test_given_no_broker_when_listen_then_it_points_to_run(tmp_path: Path):
    env = {"PATH": "/usr/bin:/bin", "BILLING_SYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'l.db'}"}

    done = subprocess.run(
        [str(BIN / "billing-sync"), "listen"], env=env, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 2
    assert "billing-sync run" in done.stderr


def test_given_status_json_when_the_listener_state_is_stored_then_shown(tmp_path: Path):
    database_url = f"sqlite:///{tmp_path / 's.db'}"
    engine = make_engine(database_url)
    upgrade(engine)
    from sync.db import service_state
    from sync.service.listener_status import STATUS_KEY

    service_state.write(
        engine,
        STATUS_KEY,
        {
            "state": "listening",
            "channels": {
                "/data/AccountChangeEvent": {
                    "mappings": ["accounts"],
                    "state": "listening",
                    "replay_id": 12,
                },
                "/data/ContactChangeEvent": {
                    "mappings": ["contacts"],
                    "state": "refused",
                    "error": "400::The channel you requested to subscribe to doesn't exist",
                },
            },
            "deliveries": {"used": 5, "max": 25000, "remaining": 24995},
            "last_event_at": dt.datetime.now(dt.UTC).timestamp(),
        },
        dt.datetime.now(dt.UTC),
    )
    engine.dispose()
    env = {
        "PATH": "/usr/bin:/bin",
        "BILLING_SYNC_DATABASE_URL": database_url,
        "SALESFORCE_INSTANCE_URL": "http://127.0.0.1:9",
    }

    as_json = subprocess.run(
        [str(BIN / "billing-sync"), "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    as_text = subprocess.run(
        [str(BIN / "billing-sync"), "status"], env=env, capture_output=True, text=True, timeout=60
    )

    events = json.loads(as_json.stdout)["service"]["events"]
    assert events["state"] == "listening" and events["listening_mappings"] == ["accounts"]
    assert events["channels"]["/data/ContactChangeEvent"]["state"] == "refused"
    assert "events listener: listening" in as_text.stdout
    assert "/data/ContactChangeEvent [refused] -> contacts" in as_text.stdout
    assert "deliveries 5 of 25,000 per 24 h" in as_text.stdout
