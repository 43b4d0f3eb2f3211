"""The events package's pure parts and its hooks into the change check."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

import sync.pull
from sync.db import service_state
from sync.db.engine import make_engine, upgrade
from sync.db.repo import events as replay_repo
from sync.db.shapes import MIRRORED_SHAPES
from sync.events.channels import channel_of, plan_channels
from sync.events.model import parse_event
from sync.events.trigger import PullTrigger
from sync.mapping.loader import load_mappings
from sync.mapping.spec import MappingError
from sync.service import jobs
from sync.service.listener_status import (
    STATUS_KEY,
    ListenerState,
    listener_status,
    listening_mappings,
    summary,
)
from sync.service.locks import LocalLocks
from sync.settings import Settings
from tests.unit.test_jobs import NAMES, T0, FakeCrm

# -- model and channels --------------------------------------------------------------------


def test_given_a_change_event_message_when_parsed_then_header_parts_are_read():
    message = {
        "channel": "/data/AccountChangeEvent",
        "data": {
            "event": {"replayId": 17},
            "payload": {
                "ChangeEventHeader": {
                    "entityName": "Account",
                    "changeType": "GAP_OVERFLOW",
                    "recordIds": [],
                    "commitTimestamp": 1_796_000_000_000,
                }
            },
        },
    }

    event = parse_event(message)

    assert event.replay_id == 17 and event.entity == "Account"
    assert event.is_gap and event.is_overflow and event.record_ids == ()
    assert event.commit_ms == 1_796_000_000_000


def test_given_a_malformed_message_when_parsed_then_missing_parts_are_none():
    event = parse_event({"channel": "/data/X", "data": "nonsense"})
    assert event.replay_id is None and event.entity is None and not event.is_gap


@pytest.mark.parametrize(
    ("obj", "channel"),
    [
        ("Account", "/data/AccountChangeEvent"),
        ("Apttus_Config2__Order__c", "/data/Apttus_Config2__Order__ChangeEvent"),
        ("Billing_Authorization__c", "/data/Billing_Authorization__ChangeEvent"),
    ],
)
def test_given_an_object_when_naming_its_channel_then_salesforce_convention(obj, channel):
    assert channel_of(obj) == channel


def test_given_the_default_mappings_when_planned_then_one_channel_per_object():
    mappings = load_mappings(Path(__file__).resolve().parents[2] / "mappings", MIRRORED_SHAPES)

    plan = plan_channels(mappings)

    assert plan["/data/AccountChangeEvent"] == ["accounts"]
    assert plan["/data/AccountContactRoleChangeEvent"] == ["account_contact_roles"]
    assert sum(len(v) for v in plan.values()) == len(mappings.names)


def _write_mapping(folder: Path, extra: str) -> None:
    (folder / "accounts.yaml").write_text(
        "name: accounts\nobject: Account\ntable: accounts\n"
        f"fields:\n  Name: {{column: name, type: string}}\n{extra}"
    )


def test_given_events_false_when_loaded_then_the_mapping_does_not_listen(tmp_path):
    _write_mapping(tmp_path, "events: false\n")

    mappings = load_mappings(tmp_path, MIRRORED_SHAPES)

    assert mappings["accounts"].events is False
    assert plan_channels(mappings) == {}


def test_given_events_not_boolean_when_loaded_then_refused_naming_the_key(tmp_path):
    _write_mapping(tmp_path, "events: sometimes\n")

    with pytest.raises(MappingError, match="'events' must be true or false"):
        load_mappings(tmp_path, MIRRORED_SHAPES)


# -- the trigger -----------------------------------------------------------------------------


def trigger_with(locks: LocalLocks) -> tuple[PullTrigger, list[str]]:
    queued: list[str] = []
    return PullTrigger(locks, queued.append, queue_ttl=30.0), queued


def test_given_events_for_an_idle_mapping_when_dispatched_then_one_pull_queued():
    trigger, queued = trigger_with(LocalLocks())

    trigger.request(["accounts"])
    trigger.request(["accounts"])
    trigger.dispatch()

    assert queued == ["accounts"] and trigger.pending() == [] and trigger.coalesced == 1


def test_given_a_running_pull_when_events_arrive_then_one_more_pull_after_it():
    locks = LocalLocks()
    trigger, queued = trigger_with(locks)
    lock = locks.lock("accounts")
    assert lock.acquire()

    for _ in range(5):
        trigger.request(["accounts"])
    trigger.dispatch()
    waiting = trigger.pending()
    lock.release()
    trigger.dispatch()
    trigger.dispatch()

    assert waiting == ["accounts"]
    assert queued == ["accounts"]


def test_given_a_queued_pull_when_an_event_arrives_then_nothing_more_is_queued():
    locks = LocalLocks()
    trigger, queued = trigger_with(locks)
    assert locks.mark_queued("accounts", 30.0)

    trigger.request(["accounts"])
    trigger.dispatch()

    assert queued == [] and trigger.pending() == []


def test_given_enqueue_fails_when_dispatching_then_the_marker_is_cleared_and_it_stays_wanted():
    locks = LocalLocks()

    def broken(name: str) -> None:
        raise ConnectionError("broker down")

    trigger = PullTrigger(locks, broken)
    trigger.request(["accounts"])
    trigger.dispatch()

    assert trigger.pending() == ["accounts"]
    assert locks.mark_queued("accounts", 1.0)  # the failed attempt left no marker


def test_given_an_overflow_when_dispatched_then_reconcile_queued_once():
    reconciles: list[int] = []
    trigger = PullTrigger(
        LocalLocks(), lambda name: None, enqueue_reconcile=lambda: reconciles.append(1)
    )

    trigger.request(["accounts"], reconcile=True)
    trigger.request(["accounts"], reconcile=True)
    trigger.dispatch()
    trigger.dispatch()

    assert reconciles == [1]


def test_given_the_dispatch_loop_when_a_request_comes_then_queued_without_waiting_for_a_tick():
    queued = threading.Event()
    trigger = PullTrigger(LocalLocks(), lambda name: queued.set())
    stop = threading.Event()
    thread = trigger.start(stop)
    try:
        trigger.request(["accounts"])
        assert queued.wait(timeout=30)
    finally:
        stop.set()
        trigger.wake()
        thread.join(timeout=10)


# -- status and the safety net -------------------------------------------------------------


@pytest.fixture
def engine(tmp_path):
    eng = make_engine(f"sqlite:///{tmp_path / 'events.db'}")
    upgrade(eng)
    yield eng
    eng.dispose()


def write_listener(engine, when: dt.datetime, state: str = "listening", mappings=("accounts",)):
    doc = {
        "state": state,
        "channels": {
            "/data/AccountChangeEvent": {
                "mappings": list(mappings),
                "state": "listening",
                "replay_id": 42,
            },
            "/data/ContactChangeEvent": {"mappings": ["contacts"], "state": "refused"},
        },
        "last_event_at": (when - dt.timedelta(seconds=3)).timestamp(),
        "deliveries": {"used": 10, "max": 100, "remaining": 90},
        "events": 7,
    }
    service_state.write(engine, STATUS_KEY, doc, when)


def test_given_a_fresh_listening_status_when_read_then_healthy_with_its_mappings(engine):
    write_listener(engine, T0)

    status = listener_status(engine, T0 + dt.timedelta(seconds=2))

    assert status["healthy"] and status["listening_mappings"] == ["accounts"]
    assert status["last_event_age_seconds"] == 5.0
    assert summary(status)["replay_ids"]["/data/AccountChangeEvent"] == 42


def test_given_a_stale_status_when_read_then_down_and_nothing_listens(engine):
    write_listener(engine, T0)

    status = listener_status(engine, T0 + dt.timedelta(seconds=60))

    assert status["state"] == ListenerState.DOWN.value and not status["healthy"]
    assert listening_mappings(engine, T0 + dt.timedelta(seconds=60)) == set()


def test_given_no_listener_ever_when_read_then_down(engine):
    assert listener_status(engine, T0)["state"] == "down"


def test_given_replay_ids_when_saved_twice_then_the_last_one_is_kept(engine):
    replay_repo.save_replay_id(engine, "/data/AccountChangeEvent", 5, T0)
    replay_repo.save_replay_id(engine, "/data/AccountChangeEvent", 9, T0)
    replay_repo.save_replay_id(engine, "/data/ContactChangeEvent", None, T0)

    assert replay_repo.replay_ids(engine) == {
        "/data/AccountChangeEvent": 9,
        "/data/ContactChangeEvent": None,
    }


@pytest.fixture
def rt(engine, monkeypatch):
    clock = [T0]
    ctx = SimpleNamespace(engine=engine, crm=FakeCrm(), mappings=SimpleNamespace(names=NAMES))
    runtime = jobs.Runtime(
        settings=Settings(pull_interval=10.0, safety_interval=300.0),
        ctx=ctx,
        locks=LocalLocks(clock=lambda: (clock[0] - T0).total_seconds()),
        clock=lambda: clock[0],
    )
    runtime.advance = lambda seconds: clock.__setitem__(0, clock[0] + dt.timedelta(seconds=seconds))
    runtime.now = lambda: clock[0]
    checked: list[list[str]] = []

    def fake(ctx, names=None, *, now=None):
        checked.append(list(names or []))
        ctx.crm.api_calls += 1
        return []

    monkeypatch.setattr(sync.pull, "changed_mappings", fake)
    runtime.checked = checked
    return runtime


def test_given_a_healthy_listener_when_polling_then_listening_mappings_wait_for_the_safety_interval(
    rt,
):
    write_listener(rt.ctx.engine, T0, mappings=NAMES)

    first = jobs.poll(rt, lambda name: None)  # the first safety check runs at once
    reports = []
    for _ in range(20):  # 200 s at the configured 10 s pace
        rt.advance(10)
        write_listener(rt.ctx.engine, rt.now(), mappings=NAMES)
        reports.append(jobs.poll(rt, lambda name: None))
    rt.advance(100)
    write_listener(rt.ctx.engine, rt.now(), mappings=NAMES)
    safety = jobs.poll(rt, lambda name: None)

    assert first.polled and first.checked == NAMES
    assert not any(r.polled for r in reports)
    assert safety.polled and safety.checked == NAMES
    assert rt.checked == [NAMES, NAMES]


def test_given_some_mappings_not_listening_when_polling_then_those_poll_as_configured(rt):
    write_listener(rt.ctx.engine, T0, mappings=["accounts"])
    jobs.poll(rt, lambda name: None)
    rt.advance(10)
    write_listener(rt.ctx.engine, rt.now(), mappings=["accounts"])

    report = jobs.poll(rt, lambda name: None)

    assert report.polled and report.checked == ["contacts", "orders"]
    assert report.listening == ["accounts"]


def test_given_the_listener_goes_silent_when_polling_then_every_mapping_at_the_configured_pace(rt):
    write_listener(rt.ctx.engine, T0, mappings=NAMES)
    jobs.poll(rt, lambda name: None)
    rt.advance(30)  # no status written: stale after 20 s

    report = jobs.poll(rt, lambda name: None)

    assert report.polled and report.checked == NAMES and report.listening == []


def test_given_events_switched_off_when_polling_then_the_listener_is_ignored(rt):
    rt.settings = rt.settings.with_(events_enabled=False)
    write_listener(rt.ctx.engine, T0, mappings=NAMES)

    report = jobs.poll(rt, lambda name: None)
    rt.advance(10)
    again = jobs.poll(rt, lambda name: None)

    assert report.checked == NAMES and again.checked == NAMES


def test_given_settings_when_read_from_env_then_safety_interval_and_events_switch():
    settings = Settings.from_env(
        {"BILLING_SYNC_SAFETY_INTERVAL": "120", "BILLING_SYNC_EVENTS": "off"}
    )
    assert settings.safety_interval == 120.0 and settings.events_enabled is False
    assert Settings.from_env({}).safety_interval == 300.0 and Settings.from_env({}).events_enabled


@pytest.mark.redis
def test_given_a_listener_lock_held_by_a_dead_local_process_when_checked_then_freed(redis_url):
    import os
    import socket
    import subprocess
    import uuid

    import redis

    from sync.events.runner import free_if_holder_dead

    client = redis.Redis.from_url(redis_url)
    key = f"bs-test-{uuid.uuid4().hex[:8]}:listener"
    host = socket.gethostname()
    child = subprocess.Popen(["sleep", "0"])
    child.wait()
    try:
        client.set(key, f"{host}:{child.pid}:abc")
        freed = free_if_holder_dead(client, key)
        client.set(key, f"{host}:{os.getppid()}:abc")  # alive
        kept_alive = not free_if_holder_dead(client, key)
        client.set(key, f"elsewhere:{child.pid}:abc")  # another host: cannot tell
        kept_remote = not free_if_holder_dead(client, key)
    finally:
        client.delete(key)
        client.close()

    assert freed and kept_alive and kept_remote
