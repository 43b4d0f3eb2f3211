"""service_state: optimistic updates (SQLite and PostgreSQL) and DB heartbeats."""

from __future__ import annotations

import datetime as dt
import threading

from sync.db import service_state
from sync.service import heartbeats

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


def test_given_concurrent_writers_when_updating_then_no_increment_is_lost(engine):
    def bump(doc):
        value = (doc or {}).get("n", 0) + 1
        return {"n": value}, value

    def writer():
        for _ in range(15):
            service_state.update_document(engine, "counter", bump, NOW, attempts=200)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert service_state.read(engine, "counter") == {"n": 60}


def test_given_documents_when_read_by_prefix_then_only_matching_keys(engine):
    service_state.write(engine, "heartbeat:a", {"x": 1}, NOW)
    service_state.write(engine, "heartbeat:b", {"x": 2}, NOW)
    service_state.write(engine, "budget", {"x": 3}, NOW)
    service_state.remove(engine, "heartbeat:b")

    found = service_state.read_prefix(engine, "heartbeat:")

    assert list(found) == ["heartbeat:a"]
    assert found["heartbeat:a"][0] == {"x": 1}
    assert service_state.read(engine, "missing") is None


def test_given_stored_field_limits_when_read_then_lengths_by_table_and_column(engine):
    assert service_state.field_limits(engine) == {}
    service_state.write(
        engine, service_state.FIELD_LIMITS_KEY, {"accounts": {"name": 255, "phone": "40"}}, NOW
    )

    assert service_state.field_limits(engine) == {"accounts": {"name": 255, "phone": 40}}


def test_given_in_process_runner_when_beating_then_status_sees_it_until_stopped(engine):
    clock = [NOW]
    writer = heartbeats.HeartbeatWriter(
        heartbeats.db_sink(engine),
        role="run",
        clock=lambda: clock[0],
        detail=lambda: {"running": ["poll"]},
        on_stop=heartbeats.db_withdraw(engine),
    )

    writer.beat()

    [beat] = heartbeats.read_db(engine, NOW + dt.timedelta(seconds=3))
    assert beat.role == "run"
    assert beat.detail == {"running": ["poll"]}
    assert heartbeats.read_db(engine, NOW + dt.timedelta(seconds=60)) == []  # stale
    writer.stop()
    assert heartbeats.read_db(engine, NOW) == []
