"""/metrics from the database: every metric, zeros for fixed label sets, the outbox, counters."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from sqlalchemy import create_engine, insert, select

from sync.db import repo
from sync.db.models import Account, AuditEntry, ChangeSet, RecordError, SyncPass
from sync.db.repo.metrics import read_counters
from sync.db.shapes import MIRRORED_SHAPES
from sync.mapping.loader import default_mappings_dir, load_mappings
from sync.monitoring import metrics, outbox
from sync.portal.monitoring import Monitor
from sync.service.flush import flush
from sync.settings import Settings
from sync.telemetry import counters
from tests.support.metrics import clear_buffer, label_values, parse, value

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
MAPPINGS = load_mappings(default_mappings_dir(None), MIRRORED_SHAPES)

EVERY_METRIC = [
    "billing_sync_mapping_lag_seconds",
    "billing_sync_mapping_records",
    "billing_sync_mapping_record_errors",
    "billing_sync_mapping_paused",
    "billing_sync_mapping_last_success_timestamp_seconds",
    "billing_sync_pass_duration_seconds",
    "billing_sync_pass",
    "billing_sync_crm_api_calls",
    "billing_sync_crm_api_usage_ratio",
    "billing_sync_crm_errors",
    "billing_sync_poll_interval_seconds",
    "billing_sync_outbox_change_sets",
    "billing_sync_outbox_oldest_pending_seconds",
    "billing_sync_push_duration_seconds",
    "billing_sync_portal_requests",
    "billing_sync_portal_request_duration_seconds",
    "billing_sync_portal_denied",
    "billing_sync_worker_heartbeat_age_seconds",
    "billing_sync_build_info",
]


@pytest.fixture
def monitor(engine):
    clear_buffer()
    mon = Monitor(Settings(pull_interval=10.0), engine, clock=lambda: NOW, mappings=MAPPINGS)
    yield mon
    mon.close()
    clear_buffer()


def scrape(monitor: Monitor):
    return parse(metrics.render(monitor.status).decode())


def change_set(engine, n: int, state: str, accepted: dt.datetime, finished=None) -> int:
    with engine.begin() as conn:
        result = conn.execute(
            insert(ChangeSet).values(
                key=f"cs-{n}",
                account_sfid="001000000000000AAA",
                contact_sfid="003000000000000AAA",
                typed_name="Ada Lovelace",
                terms_version="1",
                summary=f"change {n}",
                staged="[]",
                accepted_at=accepted,
                state=state,
                attempts=1,
                finished_at=finished,
                message="FIELD_CUSTOM_VALIDATION_EXCEPTION: phone" if state == "failed" else None,
                updated_at=accepted,
            )
        )
        return int(result.inserted_primary_key[0])


def test_given_an_empty_database_when_scraped_then_every_metric_with_zeros_per_label(monitor):
    types, samples = scrape(monitor)

    for name in EVERY_METRIC:
        assert name in types, name
    assert types["billing_sync_pass_duration_seconds"] == "histogram"
    assert types["billing_sync_pass"] == "counter"
    names = set(MAPPINGS.names)
    assert label_values(samples, "billing_sync_mapping_records", "mapping") == names
    assert label_values(samples, "billing_sync_mapping_paused", "mapping") == names
    assert label_values(samples, "billing_sync_pass_total", "mapping") == names
    assert label_values(samples, "billing_sync_pass_duration_seconds_count", "mapping") == names
    assert value(samples, "billing_sync_mapping_records", mapping="accounts", state="live") == 0
    assert (
        value(samples, "billing_sync_mapping_last_success_timestamp_seconds", mapping="accounts")
        == 0
    )
    assert math.isnan(value(samples, "billing_sync_mapping_lag_seconds", mapping="accounts"))
    assert label_values(samples, "billing_sync_outbox_change_sets", "state") == {
        "accepted",
        "sending",
        "applied",
        "conflict",
        "failed",
        "cancelled",
    }
    assert label_values(samples, "billing_sync_portal_denied_total", "reason") == {
        "not_admin",
        "unauthenticated",
        "not_found",
    }
    assert value(samples, "billing_sync_outbox_oldest_pending_seconds") == 0
    assert value(samples, "billing_sync_push_duration_seconds_count") == 0
    assert value(samples, "billing_sync_poll_interval_seconds") == 10.0
    assert value(samples, "billing_sync_workers_alive", role="worker") == 0
    assert value(samples, "billing_sync_crm_api_calls_total", endpoint="query") == 0


def test_given_mirrored_rows_state_and_errors_when_scraped_then_per_mapping_gauges(engine, monitor):
    with engine.begin() as conn:
        for i, deleted in enumerate([False, False, True]):
            conn.execute(
                insert(Account).values(
                    sfid=f"001000000000000{i:03d}",
                    system_modstamp=NOW,
                    is_deleted=deleted,
                    synced_at=NOW,
                )
            )
        conn.execute(
            insert(RecordError).values(
                mapping="contacts",
                sfid="003000000000000AAA",
                reason="too long",
                first_seen=NOW,
                last_seen=NOW,
                attempts=1,
            )
        )
        repo.save_state(conn, "accounts", NOW, watermark=NOW - dt.timedelta(seconds=90))
    repo.set_paused(engine, "orders", True, now=NOW)

    _, samples = scrape(monitor)

    assert value(samples, "billing_sync_mapping_records", mapping="accounts", state="live") == 2
    assert value(samples, "billing_sync_mapping_records", mapping="accounts", state="deleted") == 1
    assert value(samples, "billing_sync_mapping_lag_seconds", mapping="accounts") == 90
    assert value(samples, "billing_sync_mapping_record_errors", mapping="contacts") == 1
    assert value(samples, "billing_sync_mapping_record_errors", mapping="accounts") == 0
    assert value(samples, "billing_sync_mapping_paused", mapping="orders") == 1
    assert value(samples, "billing_sync_mapping_paused", mapping="accounts") == 0


def test_given_finished_passes_when_scraped_then_pass_counters_histogram_and_last_success(
    engine, monitor
):
    started = NOW - dt.timedelta(seconds=3)
    with engine.begin() as conn:
        ok = repo.begin_pass(conn, "invoices", "incremental", started)
        repo.finish_pass(
            conn, ok, outcome="ok", records=5, api_calls=2, error=None, finished_at=NOW
        )
        failed = repo.begin_pass(conn, "invoices", "incremental", NOW)
        repo.finish_pass(
            conn,
            failed,
            outcome="failed",
            records=0,
            api_calls=1,
            error="x",
            finished_at=NOW + dt.timedelta(seconds=40),
        )
        repo.begin_pass(conn, "orders", "incremental", NOW)
        repo.close_stale_passes(conn, "orders", NOW)  # a pass whose process died

    _, samples = scrape(monitor)

    assert value(samples, "billing_sync_pass_total", mapping="invoices", outcome="ok") == 1
    assert value(samples, "billing_sync_pass_total", mapping="invoices", outcome="failed") == 1
    assert value(samples, "billing_sync_pass_total", mapping="orders", outcome="interrupted") == 1
    assert value(samples, "billing_sync_pass_total", mapping="orders", outcome="ok") == 0
    count = "billing_sync_pass_duration_seconds_count"
    assert value(samples, count, mapping="invoices") == 2
    assert value(samples, "billing_sync_pass_duration_seconds_sum", mapping="invoices") == 43
    bucket = "billing_sync_pass_duration_seconds_bucket"
    assert value(samples, bucket, mapping="invoices", le="5.0") == 1
    assert value(samples, bucket, mapping="invoices", le="60.0") == 2
    assert value(samples, bucket, mapping="invoices", le="+Inf") == 2
    success = "billing_sync_mapping_last_success_timestamp_seconds"
    assert value(samples, success, mapping="invoices") == NOW.timestamp()
    assert value(samples, success, mapping="orders") == 0


def test_given_in_step_marks_when_an_older_one_arrives_then_the_newest_stays(engine, monitor):
    with engine.begin() as conn:
        repo.mark_in_step(conn, ["products"], NOW)
        repo.mark_in_step(conn, ["products"], NOW - dt.timedelta(minutes=5))

    _, samples = scrape(monitor)

    success = "billing_sync_mapping_last_success_timestamp_seconds"
    assert value(samples, success, mapping="products") == NOW.timestamp()


def test_given_change_sets_in_every_state_when_scraped_then_outbox_gauges_and_push_latency(
    engine, monitor
):
    change_set(engine, 1, "accepted", NOW - dt.timedelta(minutes=7))
    change_set(engine, 2, "sending", NOW - dt.timedelta(minutes=2))
    change_set(
        engine,
        3,
        "applied",
        NOW - dt.timedelta(minutes=10),
        NOW - dt.timedelta(minutes=10) + dt.timedelta(seconds=12),
    )
    change_set(
        engine,
        4,
        "applied",
        NOW - dt.timedelta(minutes=9),
        NOW - dt.timedelta(minutes=9) + dt.timedelta(seconds=200),
    )
    change_set(engine, 5, "failed", NOW - dt.timedelta(minutes=8), NOW)
    change_set(engine, 6, "conflict", NOW - dt.timedelta(minutes=8), NOW)

    _, samples = scrape(monitor)

    states = {
        s: value(samples, "billing_sync_outbox_change_sets", state=s)
        for s in ("accepted", "sending", "applied", "conflict", "failed", "cancelled")
    }
    assert states == {
        "accepted": 1,
        "sending": 1,
        "applied": 2,
        "conflict": 1,
        "failed": 1,
        "cancelled": 0,
    }
    assert value(samples, "billing_sync_outbox_oldest_pending_seconds") == pytest.approx(
        420, abs=0.01
    )
    assert value(samples, "billing_sync_push_duration_seconds_count") == 2
    assert value(samples, "billing_sync_push_duration_seconds_sum") == pytest.approx(212, abs=0.01)
    assert value(samples, "billing_sync_push_duration_seconds_bucket", le="15.0") == 1
    assert value(samples, "billing_sync_push_duration_seconds_bucket", le="300.0") == 2


def test_given_a_change_set_when_it_goes_from_pending_to_applied_then_the_gauges_follow(
    engine, monitor
):
    cs = change_set(engine, 1, "accepted", NOW - dt.timedelta(seconds=30))
    _, before = scrape(monitor)
    with engine.begin() as conn:
        conn.execute(
            ChangeSet.__table__.update()
            .where(ChangeSet.id == cs)
            .values(state="applied", finished_at=NOW)
        )

    _, after = scrape(monitor)

    assert value(before, "billing_sync_outbox_change_sets", state="accepted") == 1
    assert value(before, "billing_sync_outbox_oldest_pending_seconds") == 30
    assert value(after, "billing_sync_outbox_change_sets", state="accepted") == 0
    assert value(after, "billing_sync_outbox_change_sets", state="applied") == 1
    assert value(after, "billing_sync_outbox_oldest_pending_seconds") == 0
    assert value(after, "billing_sync_push_duration_seconds_sum") == pytest.approx(30, abs=0.01)


def test_given_tallies_of_two_processes_when_flushed_then_scrape_shows_their_sum(engine, monitor):
    other = counters.CounterBuffer()  # another process's buffer
    other.inc(counters.CRM_CALLS, {"endpoint": "query"}, 3)
    other.inc(counters.CRM_ERRORS, {"code": "SERVER_UNAVAILABLE"})
    assert flush(engine, buffer=other, now=NOW)
    counters.BUFFER.inc(counters.CRM_CALLS, {"endpoint": "query"}, 2)
    counters.BUFFER.note_api_usage(850, 1000)

    _, samples = scrape(monitor)  # flushes this process's buffer first

    assert value(samples, "billing_sync_crm_api_calls_total", endpoint="query") == 5
    assert value(samples, "billing_sync_crm_errors_total", code="SERVER_UNAVAILABLE") == 1
    assert value(samples, "billing_sync_crm_api_usage_ratio") == 0.85


def test_given_a_database_that_refuses_when_flushing_then_tallies_wait_in_the_buffer(
    engine, tmp_path
):
    buffer = counters.CounterBuffer()
    buffer.inc(counters.CRM_CALLS, {"endpoint": "composite"}, 4)
    refusing = create_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'metrics.db'}")

    assert not flush(refusing, buffer=buffer, now=NOW)
    assert flush(engine, buffer=buffer, now=NOW)

    with engine.connect() as conn:
        stored = read_counters(conn)
    key = (counters.CRM_CALLS, counters.label_string({"endpoint": "composite"}))
    assert stored[key] == 4
    refusing.dispose()


def test_given_failed_and_pending_change_sets_when_ops_retry_and_cancel_then_states_and_audit(
    engine,
):
    failed = change_set(engine, 1, "failed", NOW - dt.timedelta(minutes=5), NOW)
    conflict = change_set(engine, 2, "conflict", NOW - dt.timedelta(minutes=5), NOW)
    applied = change_set(engine, 3, "applied", NOW - dt.timedelta(minutes=5), NOW)
    accepted = change_set(engine, 4, "accepted", NOW - dt.timedelta(minutes=1))
    later = NOW + dt.timedelta(minutes=1)

    assert outbox.retry(engine, failed, who="alice", now=later)
    assert outbox.cancel(engine, conflict, who="bob", now=later)
    assert outbox.cancel(engine, accepted, who="bob", now=later)
    assert not outbox.retry(engine, applied, who="alice", now=later)
    assert not outbox.cancel(engine, applied, who="alice", now=later)
    assert not outbox.retry(engine, 999, who="alice", now=later)

    with engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(ChangeSet))}
        audit = conn.execute(select(AuditEntry).order_by(AuditEntry.id)).all()
    assert rows[failed].state == "accepted"
    assert rows[failed].next_attempt_at is None
    assert rows[failed].message == "FIELD_CUSTOM_VALIDATION_EXCEPTION: phone"
    assert rows[conflict].state == "cancelled" and rows[conflict].finished_at == later
    assert rows[accepted].state == "cancelled"
    assert rows[applied].state == "applied"
    assert [(a.actor, a.action, a.change_set_id) for a in audit] == [
        ("ops:alice", "retry", failed),
        ("ops:bob", "cancel", conflict),
        ("ops:bob", "cancel", accepted),
    ]
    assert audit[0].detail == "failed -> accepted"


def test_given_pass_history_when_calls_per_hour_asked_then_grouped_by_utc_hour(engine):
    from sync.db.repo.monitoring import api_calls_by_hour

    with engine.begin() as conn:
        for minutes, calls in ((10, 3), (50, 4), (70, 5), (60 * 30, 100)):
            conn.execute(
                insert(SyncPass).values(
                    mapping="accounts",
                    kind="incremental",
                    started_at=NOW - dt.timedelta(minutes=minutes),
                    finished_at=NOW,
                    records=0,
                    api_calls=calls,
                    outcome="ok",
                )
            )
    with engine.connect() as conn:
        hours = api_calls_by_hour(conn, NOW - dt.timedelta(hours=24))

    assert hours == {
        dt.datetime(2026, 11, 30, 11, 0, tzinfo=dt.UTC): 7,
        dt.datetime(2026, 11, 30, 10, 0, tzinfo=dt.UTC): 5,
    }


def test_given_rows_written_any_way_when_read_then_counts_exact_without_recounting(engine):
    from sqlalchemy import delete, update

    from sync.service.status import StatusReader

    def account(n: int, when: dt.datetime) -> dict:
        return {"sfid": f"001000000000{n:06d}", "system_modstamp": when, "synced_at": when}

    reader = StatusReader(Settings(), engine, MAPPINGS)
    counts = lambda snap, name: next(  # noqa: E731
        (m.live, m.deleted) for m in snap.mappings if m.name == name
    )
    with engine.begin() as conn:
        conn.execute(insert(Account), [account(1, NOW)])
    assert counts(reader.read(now=NOW), "accounts") == (1, 0)

    with engine.begin() as conn:  # a write that leaves the mapping's state alone
        conn.execute(insert(Account), [account(2, NOW)])
    assert counts(reader.read(now=NOW), "accounts") == (2, 0)

    with engine.begin() as conn:  # a pass stores a page: rows and state together
        conn.execute(insert(Account), [account(3, NOW)])
        repo.save_state(conn, "accounts", NOW + dt.timedelta(seconds=1), watermark=NOW)
    assert counts(reader.read(now=NOW), "accounts") == (3, 0)

    with engine.begin() as conn:  # a reconcile's tombstones
        repo.tombstone(conn, Account.__table__, [account(1, NOW)["sfid"]], now=NOW)
        repo.tombstone(conn, Account.__table__, [account(2, NOW)["sfid"]], now=NOW)
    assert counts(reader.read(now=NOW), "accounts") == (1, 2)

    later = NOW + dt.timedelta(seconds=1)
    with engine.begin() as conn:  # a page that brings one back, a rewrite, a delete
        repo.upsert_rows(conn, Account.__table__, [{**account(2, later), "is_deleted": False}])
        conn.execute(update(Account).values(synced_at=later))  # no count moves
        conn.execute(delete(Account).where(Account.sfid == account(1, NOW)["sfid"]))
        conn.execute(insert(Account), [account(4, NOW)])
    assert counts(reader.read(now=later), "accounts") == (3, 0)
    with engine.connect() as conn:
        assert repo.row_counts(conn, Account.__table__) == (3, 0)


def test_given_a_busy_status_when_rendered_then_the_bytes_prometheus_client_writes(engine, monitor):
    from prometheus_client import CollectorRegistry, generate_latest

    with engine.begin() as conn:
        conn.execute(
            insert(Account),
            [{"sfid": "001000000000000AAA", "system_modstamp": NOW, "synced_at": NOW}],
        )
        repo.save_state(conn, "accounts", NOW, watermark=NOW - dt.timedelta(seconds=90))
        repo.count_pass(conn, "accounts", "ok", NOW, NOW + dt.timedelta(seconds=2))
    counters.BUFFER.inc(counters.CRM_ERRORS, {"code": 'odd "code" \\ here'})
    snap = monitor.status()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics.StatusCollector(lambda: snap))

    assert metrics.render(lambda: snap) == generate_latest(registry)
