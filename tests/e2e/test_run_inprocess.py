"""`billing-sync run` as a subprocess: portal plus in-process schedule, pause and resume."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from sqlalchemy import text

from sync.db.engine import make_engine
from tests.support.sandbox import set_faults
from tests.support.workers import BIN, wait_until

SECRET = "test-portal-secret-0123456789abcdef"


def run_env(sandbox: str, database_url: str, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("BILLING_SYNC_", "SALESFORCE_"))
    }
    env.update(
        SALESFORCE_INSTANCE_URL=sandbox,
        BILLING_SYNC_DATABASE_URL=database_url,
        BILLING_SYNC_PORTAL_SECRET=SECRET,
        BILLING_SYNC_PULL_INTERVAL="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@contextmanager
def running(env: dict[str, str], *args: str) -> Iterator[tuple[subprocess.Popen[str], str, list]]:
    process = subprocess.Popen(
        [str(BIN / "billing-sync"), *args, "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    output: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        url = None
        while url is None:
            try:
                line = lines.get(timeout=60)
            except queue.Empty:
                raise AssertionError("no portal URL printed:\n" + "".join(output)) from None
            match = re.search(r"portal at (http://\S+?);?\s", line)
            url = match.group(1) if match else None
        yield process, url.rstrip(";"), output
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        reader.join(timeout=10)
        assert process.stdout is not None
        process.stdout.close()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "billing-sync"), *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_given_no_broker_when_running_then_portal_serves_and_changes_arrive_and_pause_holds(
    crm_sandbox, sf, tmp_path: Path
):
    set_faults(crm_sandbox, daily_limit=50_000_000)
    database_url = f"sqlite:///{tmp_path / 'run.db'}"
    env = run_env(crm_sandbox, database_url)
    with running(env, "run") as (process, url, output):
        assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
        engine = make_engine(database_url)
        account = sf.query("SELECT Id FROM Account LIMIT 1")["records"][0]["Id"]

        def name() -> str | None:
            with engine.connect() as conn:
                return conn.execute(
                    text("SELECT name FROM accounts WHERE sfid = :s"), {"s": account}
                ).scalar()

        assert wait_until(lambda: name() is not None, timeout=30), "".join(output)
        sf.Account.update(account, {"Name": "Renamed while running"})
        assert wait_until(lambda: name() == "Renamed while running", timeout=15)

        status = json.loads(cli(env, "status", "--json").stdout)
        assert [w["role"] for w in status["service"]["workers"]] == ["run"]
        assert {m["state"] for m in status["mappings"]} <= {"idle", "pulling"}
        assert status["service"]["polling"]["limiter"] == "configured"

        assert cli(env, "pause", "accounts").returncode == 0
        sf.Account.update(account, {"Name": "Renamed while paused"})
        assert not wait_until(lambda: name() == "Renamed while paused", timeout=4)
        paused = json.loads(cli(env, "status", "--json").stdout)
        assert {m["mapping"]: m["state"] for m in paused["mappings"]}["accounts"] == "paused"
        assert cli(env, "resume", "accounts").returncode == 0
        assert wait_until(lambda: name() == "Renamed while paused", timeout=15)

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        engine.dispose()


def test_given_unknown_mapping_when_pausing_then_refused_with_the_known_names(tmp_path: Path):
    env = run_env("http://127.0.0.1:9", f"sqlite:///{tmp_path / 'p.db'}")

    done = cli(env, "pause", "no_such_mapping")

    assert done.returncode == 2
    assert "accounts" in done.stderr


@pytest.mark.redis
def test_given_broker_when_running_then_it_explains_celery_and_serves_the_portal_only(
    redis_url, tmp_path: Path
):
    env = run_env(
        "http://127.0.0.1:9", f"sqlite:///{tmp_path / 'web.db'}", BILLING_SYNC_BROKER_URL=redis_url
    )
    with running(env, "run") as (process, url, output):
        assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    text_out = "".join(output)
    assert "celery -A workers.app worker" in text_out
    assert "celery -A workers.app beat" in text_out
