"""Real Celery worker and beat processes on Redis and PostgreSQL against the CRM sandbox.

Crashes (SIGKILL mid-pull), two workers at once, a Redis restart, PostgreSQL connections
terminated mid-pass, and a CRM outage: after each, the mirror equals the CRM, with no
duplicate rows and no mapping ever pulled by two workers at the same time.

Every test has its own PostgreSQL schema and its own Redis key prefix (queues included),
so runs in parallel do not meet; processes are stopped by their PIDs.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import Engine, text

from sync.db.engine import make_engine
from tests.support.sandbox import reseed, running_sandbox, sandbox_stats, set_faults
from tests.support.workers import (
    BIN,
    duplicate_sfids,
    free_port,
    overlapping_passes,
    pass_intervals,
    salesforce,
    service_env,
    wait_converged,
    wait_until,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[str]:
    with running_sandbox("--seed", "20", "--seed-random", "3") as process:
        yield process.url


@pytest.fixture
def crm(sandbox: str) -> str:
    # A daily API limit large enough that the budget guard keeps the 1 s test interval.
    set_faults(sandbox, error_rate=0.0, latency_ms=0.0, daily_limit=50_000_000)
    return sandbox


@pytest.fixture
def db(pg_migrated_url: str) -> Iterator[tuple[str, Engine]]:
    url = f"{pg_migrated_url}&application_name=bs_{uuid.uuid4().hex[:10]}"
    engine = make_engine(url)
    yield url, engine
    engine.dispose()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def account_name(engine: Engine, sfid: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(text("SELECT name FROM accounts WHERE sfid = :s"), {"s": sfid}).scalar()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "billing-sync"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_given_large_pull_when_worker_sigkilled_five_times_then_converges_without_duplicates(
    crm, db, prefix, redis_url, services
):
    url, engine = db
    reseed(crm, 250, 5)
    set_faults(crm, latency_ms=100.0)  # each CRM call slower: a pass spans several pages
    services.env = service_env(
        database_url=url, broker_url=redis_url, sandbox_url=crm, prefix=prefix
    )
    services.beat()
    worker = services.worker("a")

    def mid_pass(after: dt.datetime) -> bool:
        with engine.connect() as conn:
            return bool(
                conn.execute(
                    text(
                        "SELECT COUNT(*) FROM sync_passes WHERE outcome = 'running' "
                        "AND records > 0 AND started_at > :after"
                    ),
                    {"after": after},
                ).scalar()
            )

    last_kill = utcnow() - dt.timedelta(minutes=1)
    for kill in range(5):
        since = last_kill
        assert wait_until(lambda since=since: mid_pass(since), timeout=45, interval=0.05), (
            f"no pass under way before kill {kill + 1}\n{services.logs()}"
        )
        worker.kill()
        last_kill = utcnow()
        worker = services.worker(f"a{kill}")

    set_faults(crm, latency_ms=0.0)
    assert wait_converged(salesforce(crm), engine, timeout=90) == {}, services.logs()
    assert set(duplicate_sfids(engine).values()) == {0}
    interrupted = [p for p in pass_intervals(engine) if p.outcome == "interrupted"]
    assert len(interrupted) >= 5  # each kill left a pass that the next one closed
    assert overlapping_passes(pass_intervals(engine)) == []


def test_given_two_workers_when_crm_keeps_changing_then_never_same_mapping_at_once_and_converge(
    crm, db, prefix, redis_url, services
):
    url, engine = db
    reseed(crm, 60, 6)
    set_faults(crm, latency_ms=30.0)
    services.env = service_env(
        database_url=url, broker_url=redis_url, sandbox_url=crm, prefix=prefix
    )
    services.beat()
    first, second = services.worker("a"), services.worker("b")
    sf = salesforce(crm)
    # The first load is done before the edits start, so that the passes counted below
    # run while the CRM keeps changing, however slowly this machine starts the workers.
    assert wait_converged(sf, engine, timeout=90) == {}, services.logs()
    accounts = [r["Id"] for r in sf.query("SELECT Id FROM Account")["records"]]
    contacts = [r["Id"] for r in sf.query("SELECT Id, AccountId FROM Contact")["records"]]
    rng = random.Random(4)
    edits_started = utcnow()

    def passes_during_edits() -> int:
        return sum(1 for p in pass_intervals(engine) if p.started_at > edits_started)

    # Edit until the workers have run enough passes beside the edits (bounded).
    i = 0
    while i < 40 or (passes_during_edits() < 12 and i < 400):
        kind = i % 4
        if kind == 0:
            sf.Account.update(rng.choice(accounts), {"Name": f"Account {i}"})
        elif kind == 1:
            sf.Contact.update(rng.choice(contacts), {"LastName": f"Last {i}"})
        elif kind == 2:
            new = sf.Contact.create({"LastName": f"New {i}", "AccountId": rng.choice(accounts)})
            contacts.append(new["id"])
        else:
            sf.Contact.delete(contacts.pop(rng.randrange(len(contacts))))
        time.sleep(0.2)
        i += 1

    set_faults(crm, latency_ms=0.0)
    assert wait_converged(sf, engine, timeout=60) == {}, services.logs()
    intervals = pass_intervals(engine)
    assert overlapping_passes(intervals) == []
    assert passes_during_edits() >= 12
    done = "billing_sync.pull_mapping["
    for worker in (first, second):
        pulls = [
            ln for ln in worker.log.read_text().splitlines() if done in ln and "succeeded" in ln
        ]
        assert pulls, f"{worker.name} pulled nothing\n{services.logs()}"
    assert set(duplicate_sfids(engine).values()) == {0}


def test_given_redis_restarted_mid_run_when_it_returns_then_workers_and_beat_resume_polling(
    crm, db, prefix, services
):
    url, engine = db
    reseed(crm, 15, 7)
    port = free_port()
    broker = services.redis_server(port)
    broker_url = f"redis://127.0.0.1:{port}/0"
    services.env = service_env(
        database_url=url, broker_url=broker_url, sandbox_url=crm, prefix=prefix
    )
    services.beat()
    services.worker("a")
    sf = salesforce(crm)
    assert wait_converged(sf, engine, timeout=60) == {}, services.logs()
    account = sf.query("SELECT Id FROM Account LIMIT 1")["records"][0]["Id"]

    def renamed_and_seen(name: str, timeout: float) -> bool:
        sf.Account.update(account, {"Name": name})
        return bool(wait_until(lambda: account_name(engine, account) == name, timeout=timeout))

    assert renamed_and_seen("Before the restart", 20), services.logs()

    broker.stop()  # Redis gone: queues, locks, heartbeats, all of it (no persistence)
    time.sleep(3)
    services.redis_server(port)

    assert renamed_and_seen("After the restart", 60), services.logs()
    assert renamed_and_seen("Still polling", 20), services.logs()
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        roles = wait_until(
            lambda: (
                {k.decode().split(":")[2] for k in client.scan_iter(f"{prefix}:heartbeat:*")}
                >= {"worker", "beat"}
            ),
            timeout=20,
        )
    finally:
        client.close()
    assert roles, services.logs()


LOST_CONNECTION_WORDS = (
    "AdminShutdown",
    "terminating connection",
    "server closed the connection",
    "connection is closed",
    "consuming input failed",
    "OperationalError",
    "InterfaceError",
)


def test_given_postgres_connections_terminated_mid_pass_then_passes_retry_and_converge(
    crm, db, prefix, redis_url, postgres_url, services
):
    url, engine = db
    application = url.rsplit("application_name=", 1)[1]
    reseed(crm, 150, 8)
    set_faults(crm, latency_ms=200.0)
    services.env = service_env(
        database_url=url, broker_url=redis_url, sandbox_url=crm, prefix=prefix
    )
    services.beat()
    worker = services.worker("a")
    admin = make_engine(postgres_url)
    # Terminate the service's backends over and over while passes run, until one lands
    # inside a pass (its task is then retried: the worker logs "Retry in").
    retried = "retry: Retry in"

    def passes_running() -> bool:
        with engine.connect() as conn:
            return bool(
                conn.execute(
                    text("SELECT COUNT(*) FROM sync_passes WHERE outcome = 'running'")
                ).scalar()
            )

    assert wait_until(passes_running, timeout=30, interval=0.05), services.logs()
    terminated = 0
    try:
        deadline = time.monotonic() + 60
        while retried not in worker.log.read_text() and time.monotonic() < deadline:
            with admin.begin() as conn:
                terminated += len(
                    conn.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = :app AND pid <> pg_backend_pid()"
                        ),
                        {"app": application},
                    ).all()
                )
            time.sleep(0.05)
    finally:
        admin.dispose()
    log = worker.log.read_text()
    assert retried in log, services.logs()
    # The retry was caused by the lost connection, however the driver words it (the
    # wording depends on which statement of the pass the termination interrupted).
    assert any(word in log for word in LOST_CONNECTION_WORDS), services.logs()
    assert terminated >= 1

    set_faults(crm, latency_ms=0.0)
    engine.dispose()  # this test's own pooled connections were terminated too
    assert wait_converged(salesforce(crm), engine, timeout=90) == {}, services.logs()
    assert set(duplicate_sfids(engine).values()) == {0}


def test_given_crm_answering_503_then_recovering_then_no_change_lost_and_retries_bounded(
    crm, db, prefix, redis_url, services
):
    url, engine = db
    reseed(crm, 15, 9)
    services.env = service_env(
        database_url=url, broker_url=redis_url, sandbox_url=crm, prefix=prefix
    )
    services.beat()
    services.worker("a")
    sf = salesforce(crm)
    assert wait_converged(sf, engine, timeout=60) == {}, services.logs()
    account = sf.query("SELECT Id FROM Account LIMIT 1")["records"][0]["Id"]

    # Hold the change back (pause), so that the outage starts while it is pending.
    assert cli(services.env, "pause", "accounts").returncode == 0
    time.sleep(1.5)
    sf.Account.update(account, {"Name": "Changed before the outage"})
    calls_before = sandbox_stats(crm)["api_calls"]
    set_faults(crm, error_rate=1.0, errors=["SERVER_UNAVAILABLE"])
    assert cli(services.env, "resume", "accounts").returncode == 0
    outage_started = time.monotonic()

    def failing_status() -> dict | None:
        done = cli(services.env, "status", "--json")
        if done.returncode != 0:
            return None
        status = json.loads(done.stdout)
        return status if status["service"]["polling"]["check_failing"] else None

    status = wait_until(failing_status, timeout=15, interval=1.0)
    assert status, services.logs()
    assert "503" in status["service"]["polling"]["check_error"]
    states = {m["mapping"]: m["state"] for m in status["mappings"]}
    assert states["accounts"] == "failing"
    assert account_name(engine, account) != "Changed before the outage"

    time.sleep(max(0.0, 20 - (time.monotonic() - outage_started)))
    calls_during = sandbox_stats(crm)["api_calls"] - calls_before
    set_faults(crm, error_rate=0.0)
    # Capped retries and a backed-off change check: a handful of calls, not a storm
    # (polling every second, unchecked, would have sent 60 or more).
    assert 1 <= calls_during <= 40, calls_during

    assert wait_until(
        lambda: account_name(engine, account) == "Changed before the outage", timeout=60
    ), services.logs()
    assert wait_converged(sf, engine, timeout=30) == {}
    recovered = json.loads(cli(services.env, "status", "--json").stdout)
    assert not recovered["service"]["polling"]["check_failing"]
