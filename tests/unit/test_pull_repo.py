import datetime as dt
from decimal import Decimal

from sqlalchemy import func, select

from sync.db import repo
from sync.db.models import Order, SyncPass

UTC = dt.UTC
T0 = dt.datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
ORDERS = repo.mirrored_table("orders")


def order(n, *, stamp=T0, amount="10.00", deleted=False, synced=T0, sfid=None):
    return {
        "sfid": sfid or f"a0A00000000{n:04d}AAA",
        "system_modstamp": stamp,
        "is_deleted": deleted,
        "synced_at": synced,
        "name": f"O-{n}",
        "amount": Decimal(amount),
    }


def rows(engine):
    with engine.connect() as conn:
        result = conn.execute(
            select(
                Order.sfid, Order.amount, Order.system_modstamp, Order.synced_at, Order.is_deleted
            ).order_by(Order.sfid)
        )
        return {r.sfid: r for r in result}


def upsert(engine, batch):
    with engine.begin() as conn:
        return repo.upsert_rows(conn, ORDERS, batch)


def test_given_new_rows_when_upserted_then_inserted(engine):
    upsert(engine, [order(1), order(2)])

    stored = rows(engine)
    assert sorted(stored) == ["a0A000000000001AAA", "a0A000000000002AAA"]
    assert stored["a0A000000000001AAA"].amount == Decimal("10.00")


def test_given_identical_rows_when_upserted_again_then_not_rewritten(engine):
    upsert(engine, [order(1)])
    later = T0 + dt.timedelta(minutes=5)

    written = upsert(engine, [order(1, synced=later)])

    assert rows(engine)["a0A000000000001AAA"].synced_at == T0
    assert written in (0, None)


def test_given_newer_version_when_upserted_then_updated(engine):
    upsert(engine, [order(1)])
    later = T0 + dt.timedelta(minutes=5)

    upsert(engine, [order(1, stamp=later, amount="12.50", synced=later)])

    row = rows(engine)["a0A000000000001AAA"]
    assert (row.amount, row.system_modstamp, row.synced_at) == (Decimal("12.50"), later, later)


def test_given_older_version_when_upserted_then_newer_row_kept(engine):
    later = T0 + dt.timedelta(minutes=5)
    upsert(engine, [order(1, stamp=later, amount="12.50")])

    upsert(engine, [order(1, stamp=T0, amount="10.00")])

    assert rows(engine)["a0A000000000001AAA"].amount == Decimal("12.50")


def test_given_same_version_with_other_value_when_upserted_then_corrected(engine):
    upsert(engine, [order(1)])

    upsert(engine, [order(1, amount="11.00")])

    assert rows(engine)["a0A000000000001AAA"].amount == Decimal("11.00")


def test_given_delete_when_upserted_then_tombstone_not_removed(engine):
    upsert(engine, [order(1)])

    upsert(engine, [order(1, stamp=T0 + dt.timedelta(seconds=1), deleted=True)])

    assert rows(engine)["a0A000000000001AAA"].is_deleted is True


def test_given_many_rows_when_upserted_then_all_stored_once(engine):
    batch = [order(n) for n in range(3000)]

    upsert(engine, batch)
    upsert(engine, batch)

    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(ORDERS)) == 3000


def test_given_missing_sfids_when_tombstoned_then_only_older_live_rows_flagged(engine):
    recent = T0 + dt.timedelta(hours=1)
    upsert(engine, [order(1), order(2, stamp=recent), order(3)])
    later = T0 + dt.timedelta(hours=2)

    with engine.begin() as conn:
        count = repo.tombstone(
            conn,
            ORDERS,
            ["a0A000000000001AAA", "a0A000000000002AAA"],
            now=later,
            not_after=T0 + dt.timedelta(minutes=30),
        )

    stored = rows(engine)
    assert count == 1
    assert stored["a0A000000000001AAA"].is_deleted is True
    assert stored["a0A000000000001AAA"].synced_at == later
    assert stored["a0A000000000002AAA"].is_deleted is False
    assert stored["a0A000000000003AAA"].is_deleted is False


def test_given_mixed_case_ids_when_streamed_then_byte_order(engine):
    ids = ["a0A0000000000zzAAA", "a0A0000000000ZZAAA", "a0A0000000000aaAAA", "a0A0000000000AAAAA"]
    upsert(engine, [order(i, sfid=s) for i, s in enumerate(ids)])
    upsert(engine, [order(9, sfid="a0A0000000000BBAAA", deleted=True)])

    with engine.connect() as conn:
        streamed = list(repo.stream_live_sfids(conn, ORDERS, batch=2))

    assert streamed == sorted(ids)


def test_given_record_errors_when_saved_twice_then_attempts_counted_and_cleared(engine):
    later = T0 + dt.timedelta(minutes=1)
    with engine.begin() as conn:
        repo.save_record_errors(conn, "orders", {"a0A000000000001AAA": "bad date"}, now=T0)
    with engine.begin() as conn:
        repo.save_record_errors(conn, "orders", {"a0A000000000001AAA": "still bad"}, now=later)

    with engine.connect() as conn:
        [error] = repo.record_errors(conn, "orders")
    assert (error.reason, error.attempts, error.first_seen, error.last_seen) == (
        "still bad",
        2,
        T0,
        later,
    )

    with engine.begin() as conn:
        assert repo.clear_record_errors(conn, "orders", ["a0A000000000001AAA"]) == 1
    with engine.connect() as conn:
        assert repo.record_errors(conn, "orders") == []


def test_given_running_pass_when_next_pass_begins_then_marked_interrupted(engine):
    with engine.begin() as conn:
        first = repo.begin_pass(conn, "orders", "full", T0)
    with engine.begin() as conn:
        second = repo.begin_pass(conn, "orders", "incremental", T0 + dt.timedelta(minutes=1))

    with engine.connect() as conn:
        outcomes = dict(conn.execute(select(SyncPass.id, SyncPass.outcome)).all())
    assert outcomes == {first: "interrupted", second: "running"}


def test_given_state_when_saved_then_read_back(engine):
    with engine.begin() as conn:
        repo.save_state(conn, "orders", T0, watermark=T0, last_outcome="ok")
        repo.save_state(conn, "orders", T0, paused=True)

    with engine.connect() as conn:
        state = repo.get_state(conn, "orders")
        missing = repo.get_state(conn, "assets")
    assert (state.watermark, state.paused, state.last_outcome) == (T0, True, "ok")
    assert missing.watermark is None and not missing.paused
