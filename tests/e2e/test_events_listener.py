"""The events listener end to end: sandbox over HTTP, in-process scheduler, SQLite and PostgreSQL.

Change events trigger pulls (the pulls' API calls are the only calls), events coalesce
behind a running pull, a restarted listener replays after its stored replay id, an
invalid replay id falls back to -1 plus a pull of every listening mapping, a gap event
triggers a pull, and when the stream is down or the delivery allocation runs low the
mappings are polled at the configured interval again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from sqlalchemy import func, select, text

from sync.context import SyncContext
from sync.crm.client import CrmClient
from sync.db import service_state
from sync.db.models import SyncPass
from sync.db.repo import events as replay_repo
from sync.events.listener import ListenerOptions
from sync.events.runner import ListenerThreads, in_process
from sync.pull import pull_all
from sync.sandbox.server import SandboxConfig, SandboxServer
from sync.service.jobs import Runtime
from sync.service.listener_status import SAFETY_KEY, listener_status
from sync.service.locks import LocalLocks
from sync.service.scheduler import InProcessScheduler
from tests.support.pull import crm_client, make_context
from tests.support.sandbox import jwt_keys
from tests.support.workers import wait_until

ACCOUNTS = "/data/AccountChangeEvent"
WAIT = 60.0  # generous: a loaded machine is slow, a correct system is far faster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    srv = SandboxServer(
        SandboxConfig(
            seed=2,
            seed_random=3,
            cometd_timeout=0.5,
            daily_limit=50_000_000,
            jwt_cert=str(jwt_keys().cert_file),
        )
    )
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def url(server: SandboxServer) -> Iterator[str]:
    requests.post(f"{server.url}/_sandbox/reset", timeout=30).raise_for_status()
    requests.delete(f"{server.url}/_sandbox/cometd", timeout=30).raise_for_status()
    hook(server.url, connect_timeout=0.5)
    yield server.url
    stats = requests.get(f"{server.url}/_sandbox/stats", timeout=30).json()
    assert stats["unhandled_errors"] == 0, stats["recent_unhandled"]


@pytest.fixture
def crm(url: str) -> Iterator[CrmClient]:
    client = crm_client(url)
    yield client
    client.close()


def hook(url: str, **spec: Any) -> dict[str, Any]:
    answer = requests.post(f"{url}/_sandbox/cometd", json=spec, timeout=30)
    answer.raise_for_status()
    body: dict[str, Any] = answer.json()
    return body


def api_calls(url: str) -> int:
    return int(requests.get(f"{url}/_sandbox/stats", timeout=10).json()["api_calls"])


@dataclass
class Service:
    ctx: SyncContext
    rt: Runtime
    scheduler: InProcessScheduler
    listener: ListenerThreads | None = None

    def status(self) -> dict[str, Any]:
        return listener_status(self.ctx.engine, dt.datetime.now(dt.UTC))

    def start_listener(self, options: ListenerOptions | None = None) -> None:
        self.listener = in_process(self.rt, self.scheduler, options=options)
        assert self.listener is not None
        self.listener.start()

    def stop_listener(self) -> None:
        if self.listener is not None:
            self.listener.stop()
            self.listener = None

    def column(self, table: str, column: str, sfid: str) -> Any:
        with self.ctx.engine.connect() as conn:
            return conn.execute(
                text(f"SELECT {column} FROM {table} WHERE sfid = :s"), {"s": sfid}
            ).scalar()

    def passes(self, mapping: str | None = None) -> int:
        query = select(func.count()).select_from(SyncPass)
        if mapping is not None:
            query = query.where(SyncPass.mapping == mapping)
        with self.ctx.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def passes_by_mapping(self) -> dict[str, int]:
        with self.ctx.engine.connect() as conn:
            rows = conn.execute(
                select(SyncPass.mapping, func.count()).group_by(SyncPass.mapping)
            ).all()
        return {row[0]: int(row[1]) for row in rows}

    def quiet(self) -> bool:
        """Nothing queued, waiting or running."""
        trigger = self.listener.listener.trigger if self.listener else None
        with self.scheduler._mutex:
            running = set(self.scheduler._running)
        return not running and (trigger is None or not trigger.pending())


@contextmanager
def service(
    url: str,
    database_url: str,
    *,
    pull_interval: float = 1.0,
    options: ListenerOptions | None = None,
    listen: bool = True,
) -> Iterator[Service]:
    ctx = make_context(url, database_url, pull_interval=pull_interval, safety_interval=300.0)
    svc = None
    try:
        pull_all(ctx, full=True)
        rt = Runtime(settings=ctx.settings, ctx=ctx, locks=LocalLocks())
        scheduler = InProcessScheduler(rt, heartbeat=False)
        scheduler.start()
        svc = Service(ctx, rt, scheduler)
        if listen:
            svc.start_listener(options)
            assert wait_until(lambda: svc.status()["healthy"], WAIT), svc.status()
        yield svc
    finally:
        if svc is not None:
            svc.stop_listener()
            svc.scheduler.stop()
        ctx.close()


def first_account(crm: CrmClient) -> str:
    return str(crm.query_all("SELECT Id FROM Account ORDER BY Id LIMIT 1")[0]["Id"])


def rename(crm: CrmClient, account: str, name: str) -> None:
    crm._request(
        "PATCH", crm.sobject_url("Account", account), body={"Name": name}, expect_body=False
    )


def test_given_a_healthy_listener_when_a_record_changes_then_its_pull_is_the_only_api_cost(
    url, crm, database_url
):
    with service(url, database_url) as svc:
        account = first_account(crm)
        # the first safety check runs as soon as the listener is healthy; then silence
        assert wait_until(lambda: service_state.read(svc.ctx.engine, SAFETY_KEY), WAIT)
        assert wait_until(svc.quiet, WAIT)
        calls_before, passes_before = api_calls(url), svc.passes("accounts")
        others_before = svc.passes() - passes_before

        rename(crm, account, "Evented")
        assert wait_until(lambda: svc.column("accounts", "name", account) == "Evented", WAIT)
        assert wait_until(svc.quiet, WAIT)
        calls_after, passes_after = api_calls(url), svc.passes("accounts")

        pulls = passes_after - passes_before
        assert pulls >= 1
        assert calls_after - calls_before == 1 + pulls  # the rename, then one query per pull
        assert svc.passes() - passes_after == others_before  # no other mapping was pulled
        status = svc.status()
        assert status["events"] >= 1 and status["last_event_age_seconds"] is not None
        stored = replay_repo.replay_ids(svc.ctx.engine)[ACCOUNTS]
        assert stored == status["channels"][ACCOUNTS]["replay_id"] and stored is not None


def test_given_a_running_pull_when_events_arrive_then_they_coalesce_into_one_more_pull(
    url, crm, database_url
):
    with service(url, database_url, pull_interval=3600) as svc:
        account = first_account(crm)
        assert wait_until(svc.quiet, WAIT)
        passes_before = svc.passes("accounts")
        events_before = svc.status()["events"]
        lock = svc.rt.locks.lock("accounts")  # a pull of accounts "runs" now
        assert lock.acquire()
        try:
            for i in range(5):
                rename(crm, account, f"Burst {i}")
            assert wait_until(lambda: svc.status()["events"] - events_before >= 5, WAIT)
            assert svc.listener is not None
            assert svc.listener.listener.trigger.pending() == ["accounts"]
            assert svc.passes("accounts") == passes_before
        finally:
            lock.release()

        assert wait_until(lambda: svc.column("accounts", "name", account) == "Burst 4", WAIT)
        assert wait_until(svc.quiet, WAIT)
        assert svc.passes("accounts") - passes_before == 1


def test_given_a_restart_when_events_happened_meanwhile_then_replayed_from_the_stored_id(
    url, crm, database_url
):
    no_catch_up = ListenerOptions(catch_up=False)
    with service(url, database_url, pull_interval=3600, options=no_catch_up) as svc:
        account = first_account(crm)
        rename(crm, account, "Seen live")
        assert wait_until(lambda: svc.column("accounts", "name", account) == "Seen live", WAIT)
        svc.stop_listener()
        stored = replay_repo.replay_ids(svc.ctx.engine)[ACCOUNTS]

        rename(crm, account, "Missed while down")
        svc.start_listener(no_catch_up)

        assert wait_until(
            lambda: svc.column("accounts", "name", account) == "Missed while down", WAIT
        )
        assert wait_until(
            lambda: (replay_repo.replay_ids(svc.ctx.engine)[ACCOUNTS] or 0) > (stored or 0), WAIT
        )
        assert svc.status()["replay_fallbacks"] == 0


def test_given_an_invalid_stored_replay_id_when_starting_then_new_events_and_every_mapping_pulled(
    url, crm, database_url
):
    with service(url, database_url, pull_interval=3600, listen=False) as svc:
        replay_repo.save_replay_id(svc.ctx.engine, ACCOUNTS, 999_999_999, dt.datetime.now(dt.UTC))
        before = svc.passes_by_mapping()

        svc.start_listener(ListenerOptions(catch_up=False))

        assert wait_until(lambda: svc.status().get("replay_fallbacks") == 1, WAIT), svc.status()
        names = svc.ctx.mappings.names
        assert wait_until(
            lambda: all(svc.passes_by_mapping().get(n, 0) > before.get(n, 0) for n in names),
            WAIT,
        ), svc.passes_by_mapping()
        assert replay_repo.replay_ids(svc.ctx.engine)[ACCOUNTS] is None
        assert svc.status()["channels"][ACCOUNTS]["state"] == "listening"


def test_given_a_gap_event_when_delivered_then_the_mapping_is_pulled(
    url, crm, server, database_url
):
    with service(
        url, database_url, pull_interval=3600, options=ListenerOptions(catch_up=False)
    ) as svc:
        account = first_account(crm)
        assert wait_until(svc.quiet, WAIT)
        store = server.store
        with store.transaction() as conn:  # a change applied in the database: no event
            stamp = store.clock.next_ms()
            from sync.sandbox.clock import format_ms

            conn.execute(
                'UPDATE "Account" SET "Name" = ?, "SystemModstamp" = ? WHERE "Id" = ?',
                ("Changed under the API", format_ms(stamp), account),
            )

        hook(url, gap={"object": "Account", "change_type": "GAP_UPDATE", "record_ids": [account]})

        assert wait_until(
            lambda: svc.column("accounts", "name", account) == "Changed under the API", WAIT
        )
        assert svc.status()["gaps"] == 1


def test_given_the_stream_goes_down_when_a_record_changes_then_polling_at_the_interval_finds_it(
    url, crm, database_url
):
    quick_retry = ListenerOptions(unavailable_retry=0.5)
    with service(url, database_url, pull_interval=1.0, options=quick_retry) as svc:
        account = first_account(crm)
        hook(url, unavailable=True, drop_sessions=True)
        assert wait_until(lambda: svc.status()["state"] == "unavailable", WAIT), svc.status()
        assert svc.status()["listening_mappings"] == []

        rename(crm, account, "Found by polling")

        assert wait_until(
            lambda: svc.column("accounts", "name", account) == "Found by polling", WAIT
        )
        hook(url, unavailable=False)
        assert wait_until(lambda: svc.status()["healthy"], WAIT), svc.status()
        assert "accounts" in svc.status()["listening_mappings"]


def test_given_the_delivery_allocation_runs_low_when_checked_then_busiest_channel_polls_again(
    url, crm, database_url
):
    fast_checks = ListenerOptions(allocation_every=0.2, allocation_low_every=0.2)
    with service(url, database_url, pull_interval=1.0, options=fast_checks) as svc:
        account = first_account(crm)
        rename(crm, account, "Busy 1")
        rename(crm, account, "Busy 2")
        assert wait_until(lambda: svc.column("accounts", "name", account) == "Busy 2", WAIT)

        hook(url, delivery_limit=1000, deliveries_used=950)

        assert wait_until(
            lambda: svc.status()["channels"][ACCOUNTS]["state"] == "suspended", WAIT
        ), svc.status()
        status = svc.status()
        assert "accounts" not in status["listening_mappings"]
        assert status["deliveries"]["remaining"] <= 50
        rename(crm, account, "Polled again")
        assert wait_until(lambda: svc.column("accounts", "name", account) == "Polled again", WAIT)

        hook(url, deliveries_used=0)
        assert wait_until(
            lambda: svc.status()["channels"][ACCOUNTS]["state"] == "listening", WAIT
        ), svc.status()


def test_given_a_paused_mapping_when_its_events_arrive_then_no_pull(url, crm, database_url):
    from sync.db.repo import set_paused

    with service(
        url, database_url, pull_interval=3600, options=ListenerOptions(catch_up=False)
    ) as svc:
        account = first_account(crm)
        assert wait_until(svc.quiet, WAIT)
        set_paused(svc.ctx.engine, "accounts", True, now=dt.datetime.now(dt.UTC))
        passes_before = svc.passes("accounts")
        events_before = svc.status()["events"]

        rename(crm, account, "While paused")
        assert wait_until(lambda: svc.status()["events"] > events_before, WAIT)
        assert wait_until(svc.quiet, WAIT)

        assert svc.passes("accounts") == passes_before
        assert svc.column("accounts", "name", account) != "While paused"
