"""A `billing-sync sync` process killed with SIGKILL at random instants, then rerun."""

import os
import random
import signal
import subprocess
import time

import pytest
from sqlalchemy import func, select

from sync.db.engine import make_engine, upgrade
from sync.db.models import SyncPass
from sync.db.shapes import MIRRORED_SHAPES
from sync.mapping import load_mappings
from sync.mapping.loader import PROJECT_MAPPINGS
from tests.e2e.conftest import billing_sync
from tests.support.pull import crm_client, duplicate_sfids, hook, mirror_differences
from tests.support.sandbox import running_sandbox

pytestmark = pytest.mark.slow

KILLS = 8


def last_pass_id(engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.coalesce(func.max(SyncPass.id), 0)))


def wait_for_new_pass(engine, process, after: int, timeout: float = 20.0) -> None:
    """Wait until the process has begun a pass (a pass row newer than ``after``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if last_pass_id(engine) > after:
            return
        time.sleep(0.02)


def edit_crm(crm, rng: random.Random, round_: int) -> None:
    """A few creates, updates and deletes between two kills."""
    orders = crm.query_all("SELECT Id FROM Apttus_Config2__Order__c ORDER BY Id")
    for record in rng.sample(orders, 3):
        crm.update(
            "Apttus_Config2__Order__c",
            record["Id"],
            {"Apttus_Config2__OrderAmount__c": round(rng.uniform(1, 9999), 2)},
        )
    lines = crm.query_all("SELECT Id FROM Apttus_Billing__InvoiceLineItem__c ORDER BY Id")
    crm.delete("Apttus_Billing__InvoiceLineItem__c", rng.choice(lines)["Id"])
    account = rng.choice(crm.query_all("SELECT Id FROM Account"))["Id"]
    crm.create("Contact", {"AccountId": account, "LastName": f"Round {round_}"})


@pytest.fixture
def killing_sandbox():
    """A sandbox of its own: clients vanishing mid-request is what this test is about."""
    with running_sandbox("--seed", "25", "--seed-random", "7") as sandbox:
        yield sandbox.url


def test_given_pull_killed_eight_times_at_random_when_rerun_then_converges_without_duplicates(
    killing_sandbox, database_url
):
    crm_sandbox = killing_sandbox
    env = {
        **os.environ,
        "SALESFORCE_INSTANCE_URL": crm_sandbox,
        "BILLING_SYNC_DATABASE_URL": database_url,
        "BILLING_SYNC_PULL_BATCH_SIZE": "200",
    }
    env.pop("SALESFORCE_USERNAME", None)
    rng = random.Random(20261122)
    crm = crm_client(crm_sandbox)
    # Slow each CRM answer a little so that a pass spans a couple of seconds.
    hook(crm_sandbox, "faults", {"latency_ms": 40})
    killed_running = 0
    watcher = make_engine(database_url)
    upgrade(watcher)
    try:
        for round_ in range(KILLS):
            # Every other round reloads everything: an interrupted full reload must resume.
            full = ["--full"] if round_ % 2 else []
            before = last_pass_id(watcher)
            process = subprocess.Popen(
                [*billing_sync(), "sync", *full],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                # Kill at a random instant once a pass has started writing.
                wait_for_new_pass(watcher, process, before)
                time.sleep(rng.uniform(0.0, 0.8))
                if process.poll() is None:
                    os.kill(process.pid, signal.SIGKILL)
                    killed_running += 1
            finally:
                process.wait(timeout=30)
            edit_crm(crm, rng, round_)
        hook(crm_sandbox, "faults", method="DELETE")

        final = subprocess.run(
            [*billing_sync(), "sync"], env=env, capture_output=True, text=True, timeout=300
        )

        assert final.returncode == 0, final.stdout + final.stderr
        mappings = load_mappings(PROJECT_MAPPINGS, MIRRORED_SHAPES)
        engine = make_engine(database_url)
        try:
            assert mirror_differences(engine, crm, mappings) == []
            assert set(duplicate_sfids(engine, mappings).values()) == {0}
            with engine.connect() as conn:
                interrupted = conn.scalar(
                    select(func.count()).where(SyncPass.outcome == "interrupted")
                )
        finally:
            engine.dispose()
        assert killed_running >= KILLS // 2
        assert interrupted >= KILLS // 2  # kills that landed in the middle of a pass
    finally:
        watcher.dispose()
        crm.close()
