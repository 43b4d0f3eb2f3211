"""Migrations that move data: upgrade with the old data present, then downgrade."""

import datetime as dt
import json

import pytest
from alembic import command
from sqlalchemy import insert, inspect, select

from sync.db import repo
from sync.db.engine import alembic_config, current_revision, make_engine, upgrade
from sync.db.models import ServiceState, SyncState

UTC = dt.UTC
THEN = dt.datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
FINISHED = dt.datetime(2026, 11, 30, 9, 5, 12, 345000, tzinfo=UTC)
BULK = {
    "method": "bulk",
    "counted": 52000,
    "job_id": "750000000000001AAA",
    "api_calls": 9,
    "fallback": None,
    "at": FINISHED.isoformat(),
}
REST = {
    "method": "rest",
    "counted": 120,
    "job_id": None,
    "api_calls": 2,
    "fallback": "bulk job 750000000000002AAA failed: InternalServerError",
    "at": FINISHED.isoformat(),
}


def downgrade(engine, revision):
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def document(key, value):
    payload = json.dumps(value, separators=(",", ":"), sort_keys=True)
    return {"key": key, "value": payload, "version": 3, "updated_at": THEN}


def documents(conn):
    rows = conn.execute(select(ServiceState.key, ServiceState.value)).all()
    return {key: json.loads(value) for key, value in rows}


@pytest.fixture
def at_0006(database_url):
    engine = make_engine(database_url)
    upgrade(engine, "0006")
    with engine.begin() as conn:
        # the 0006 sync_state, without the new columns
        conn.execute(
            insert(SyncState.__table__).values(
                mapping="invoice_lines", watermark=THEN, updated_at=THEN, paused=False
            ),
        )
        conn.execute(
            insert(SyncState.__table__).values(
                mapping="accounts", watermark=THEN, updated_at=THEN, paused=False
            ),
        )
        conn.execute(
            insert(ServiceState),
            [
                document("mapping-fingerprint:invoice_lines", {"fingerprint": "0123456789abcdef"}),
                document("last-load:invoice_lines", BULK),
                # a mapping that has documents but (no longer) a state row
                document("mapping-fingerprint:products", {"fingerprint": "fedcba9876543210"}),
                document("last-load:products", REST),
                # documents of other owners stay as they are
                document("budget", {"spent": 12}),
                document("heartbeat:worker-1", {"at": THEN.isoformat()}),
            ],
        )
    yield engine
    engine.dispose()


def test_given_documents_at_0006_when_upgraded_then_state_rows_hold_them(at_0006):
    engine = at_0006

    upgrade(engine, "0007")

    assert current_revision(engine) == "0007"
    with engine.connect() as conn:
        states = repo.all_states(conn)
        left = documents(conn)
    lines = states["invoice_lines"]
    assert lines.fingerprint == "0123456789abcdef"
    assert lines.watermark == THEN
    assert lines.last_load is not None
    assert lines.last_load.to_json() == BULK
    assert lines.last_load.at == FINISHED
    products = states["products"]
    assert products.fingerprint == "fedcba9876543210"
    assert products.last_load is not None
    assert products.last_load.to_json() == REST
    accounts = states["accounts"]
    assert accounts.fingerprint is None
    assert accounts.last_load is None
    assert set(left) == {"budget", "heartbeat:worker-1"}


def test_given_state_rows_at_0007_when_downgraded_then_documents_back_and_columns_gone(at_0006):
    engine = at_0006
    upgrade(engine)
    with engine.begin() as conn:
        repo.close_mapping_pass(
            conn,
            "accounts",
            outcome="ok",
            error=None,
            finished_at=FINISHED,
            succeeded=True,
            load=repo.StoredLoad("rest", 30, None, 1, None, FINISHED),
            fingerprint="aaaabbbbccccdddd",
        )

    downgrade(engine, "0006")

    assert current_revision(engine) == "0006"
    columns = {c["name"] for c in inspect(engine).get_columns("sync_state")}
    assert "fingerprint" not in columns
    assert not any(c.startswith("load_") for c in columns)
    with engine.connect() as conn:
        back = documents(conn)
    assert back["mapping-fingerprint:invoice_lines"] == {"fingerprint": "0123456789abcdef"}
    assert back["last-load:invoice_lines"] == BULK
    assert back["mapping-fingerprint:products"] == {"fingerprint": "fedcba9876543210"}
    assert back["last-load:products"] == REST
    assert back["mapping-fingerprint:accounts"] == {"fingerprint": "aaaabbbbccccdddd"}
    assert back["last-load:accounts"] == {
        "method": "rest",
        "counted": 30,
        "job_id": None,
        "api_calls": 1,
        "fallback": None,
        "at": FINISHED.isoformat(),
    }
    assert back["budget"] == {"spent": 12}

    upgrade(engine)  # and up again: the round trip loses nothing

    with engine.connect() as conn:
        states = repo.all_states(conn)
    assert states["accounts"].fingerprint == "aaaabbbbccccdddd"
    assert states["invoice_lines"].last_load is not None
    assert states["invoice_lines"].last_load.to_json() == BULK


def test_given_0007_when_upgraded_to_0008_and_back_then_history_table_and_number_come_and_go(
    at_0006,
):
    engine = at_0006
    upgrade(engine, "0007")

    upgrade(engine, "0008")

    inspector = inspect(engine)
    assert "billing_admin_history" in inspector.get_table_names()
    assert "account_number" in {c["name"] for c in inspector.get_columns("accounts")}
    assert {i["name"] for i in inspector.get_indexes("billing_admin_history")} >= {
        "ix_billing_admin_history_account_changed",
        "ix_billing_admin_history_role_sfid",
    }

    downgrade(engine, "0007")

    inspector = inspect(engine)
    assert current_revision(engine) == "0007"
    assert "billing_admin_history" not in inspector.get_table_names()
    assert "account_number" not in {c["name"] for c in inspector.get_columns("accounts")}
    with engine.connect() as conn:
        assert repo.all_states(conn)["invoice_lines"].fingerprint == "0123456789abcdef"


def mirrored_row(n, *, deleted=False):
    return {
        "sfid": f"001000000000{n:06d}",
        "system_modstamp": THEN,
        "is_deleted": deleted,
        "synced_at": THEN,
    }


def test_given_rows_when_row_counts_added_then_filled_and_kept_then_gone_on_downgrade(
    database_url,
):
    from sqlalchemy import delete, update

    from sync.db.models import Account, RowCount

    engine = make_engine(database_url)
    upgrade(engine, "0008")
    with engine.begin() as conn:
        conn.execute(insert(Account), [mirrored_row(n, deleted=n % 3 == 0) for n in range(1, 8)])

    upgrade(engine, "0009")

    def kept():
        with engine.connect() as conn:
            rows = conn.execute(select(RowCount.table_name, RowCount.live, RowCount.deleted))
            return {name: (live, deleted) for name, live, deleted in rows}

    counts = kept()
    assert counts["accounts"] == (5, 2)
    assert set(counts) == set(repo.rows.MIRRORED_MODELS)
    assert all(value == (0, 0) for name, value in counts.items() if name != "accounts")
    with engine.begin() as conn:
        conn.execute(insert(Account), [mirrored_row(8), mirrored_row(9, deleted=True)])
        conn.execute(
            update(Account).where(Account.sfid == mirrored_row(1)["sfid"]).values(is_deleted=True)
        )
        conn.execute(delete(Account).where(Account.sfid == mirrored_row(3)["sfid"]))
    assert kept()["accounts"] == (5, 3)
    with engine.connect() as conn:
        assert repo.row_counts(conn, Account.__table__) == (5, 3)

    downgrade(engine, "0008")

    assert "row_counts" not in inspect(engine).get_table_names()
    with engine.begin() as conn:  # no trigger left behind to write to a missing table
        conn.execute(insert(Account), [mirrored_row(10)])
        conn.execute(delete(Account))
    engine.dispose()
