"""The outbox on SQLite and PostgreSQL: per-account order, claims, leases, ops moves."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import insert, select

from sync.changes import outbox
from sync.changes.rules import ChangeState, ItemOutcome, Operation, PushOutcome
from sync.db.models import AuditEntry, ChangeItem, ChangeSet

T0 = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


def add_set(conn, account: str, *, state: str = "accepted", **values) -> int:
    row = {
        "key": f"k{account}{values.get('n', 0)}{state}{id(values)}",
        "account_sfid": account,
        "contact_sfid": "003000000000001AAA",
        "typed_name": "Ada Admin",
        "terms_version": "sha256:x",
        "summary": "Accepted by Ada Admin:\n- x",
        "staged": "[]",
        "accepted_at": T0,
        "state": state,
        "attempts": 0,
        "updated_at": T0,
    }
    row.update({k: v for k, v in values.items() if k != "n"})
    return conn.execute(insert(ChangeSet).values(**row).returning(ChangeSet.id)).scalar_one()


def test_given_sets_of_two_accounts_when_due_then_only_the_oldest_of_each(engine):
    with engine.begin() as conn:
        a1 = add_set(conn, "001A", n=1)
        add_set(conn, "001A", n=2)
        b1 = add_set(conn, "001B", n=1)
        add_set(conn, "001C", state="applied")
        assert outbox.due_sets(conn, T0) == sorted([a1, b1])


def test_given_the_oldest_set_waits_for_a_retry_then_later_sets_of_its_account_wait(engine):
    with engine.begin() as conn:
        add_set(conn, "001A", n=1, next_attempt_at=T0 + dt.timedelta(seconds=30))
        add_set(conn, "001A", n=2)
        assert outbox.due_sets(conn, T0) == []
        assert len(outbox.due_sets(conn, T0 + dt.timedelta(seconds=31))) == 1


def test_given_a_claim_when_claimed_again_then_refused_until_the_lease_ends(engine):
    with engine.begin() as conn:
        set_id = add_set(conn, "001A")
    with engine.begin() as conn:
        assert outbox.claim(conn, set_id, T0, lease=10)
    with engine.begin() as conn:
        assert not outbox.claim(conn, set_id, T0 + dt.timedelta(seconds=5), lease=10)
        assert outbox.due_sets(conn, T0 + dt.timedelta(seconds=5)) == []
        # the claimer died: after the lease the set is due again
        assert outbox.due_sets(conn, T0 + dt.timedelta(seconds=11)) == [set_id]
        assert outbox.claim(conn, set_id, T0 + dt.timedelta(seconds=11), lease=10)
        attempts = conn.execute(select(ChangeSet.attempts).where(ChangeSet.id == set_id))
        assert attempts.scalar_one() == 2


def test_given_failed_and_applied_sets_when_ops_retry_or_cancel_then_only_allowed_moves(engine):
    with engine.begin() as conn:
        failed = add_set(conn, "001A", state="failed", n=1)
        applied = add_set(conn, "001B", state="applied", n=2)
    with engine.begin() as conn:
        outbox.retry(conn, failed, "ops:alice", T0)
        assert outbox.due_sets(conn, T0) == [failed]
        outbox.cancel(conn, failed, "ops:alice", T0)
        with pytest.raises(outbox.OutboxError, match="only conflict, failed sets can be"):
            outbox.retry(conn, applied, "ops:alice", T0)
        with pytest.raises(outbox.OutboxError, match="no change set"):
            outbox.cancel(conn, 424242, "ops:alice", T0)
        actions = conn.execute(select(AuditEntry.actor, AuditEntry.action)).all()
    assert [tuple(a) for a in actions] == [("ops:alice", "retry"), ("ops:alice", "cancel")]
    with engine.connect() as conn:
        counts = outbox.counts(conn)
    assert counts == {
        "accepted": 0,
        "sending": 0,
        "applied": 1,
        "conflict": 0,
        "failed": 0,
        "cancelled": 1,
    }


def test_given_pending_sets_when_status_is_read_then_the_oldest_pending_age(engine):
    with engine.begin() as conn:
        add_set(conn, "001A", n=1, accepted_at=T0 - dt.timedelta(minutes=7))
        add_set(conn, "001B", state="applied", n=2, accepted_at=T0 - dt.timedelta(hours=7))
    status = outbox.status(engine, T0)
    assert status["oldest_pending_seconds"] == 420.0
    assert status["counts"]["accepted"] == 1 and status["paused_until"] is None


def test_given_item_outcomes_when_recorded_then_read_back_as_enums_and_plain_json(engine):
    with engine.begin() as conn:
        set_id = add_set(conn, "001A")
        ids = [
            conn.execute(
                insert(ChangeItem)
                .values(
                    change_set_id=set_id,
                    position=n,
                    operation=operation,
                    sobject="Account",
                    record_sfid="001A",
                    field="Phone",
                    old_value='"a"',
                    new_value='"b"',
                    label=f"item {n}",
                )
                .returning(ChangeItem.id)
            ).scalar_one()
            for n, operation in enumerate(["update", "check", "create"], start=1)
        ]
        outbox.set_item_outcomes(
            conn,
            {
                ids[0]: (ItemOutcome.CONFLICT, "c", True),
                ids[1]: (ItemOutcome.UNCHANGED, None, False),
                ids[2]: (ItemOutcome.NOT_SENT, None, False),
            },
        )
        outbox.finish(conn, set_id, ChangeState.CONFLICT, T0, message="changed")
        stored = conn.execute(
            select(ChangeItem.outcome, ChangeItem.crm_value).order_by(ChangeItem.position)
        ).all()
        view = outbox.get_set(conn, set_id)
    assert [tuple(r) for r in stored] == [
        ("conflict", '"c"'),
        ("unchanged", None),
        ("not_sent", None),
    ]
    assert view is not None and view.state is ChangeState.CONFLICT
    assert [i.operation for i in view.items] == [
        Operation.UPDATE,
        Operation.CHECK,
        Operation.CREATE,
    ]
    assert [i.id for i in view.conflicts] == [ids[0]]
    doc = json.loads(json.dumps(view.to_dict()))
    assert doc["state"] == "conflict"
    assert [(i["operation"], i["outcome"], i["crm"]) for i in doc["items"]] == [
        ("update", "conflict", "c"),
        ("check", "unchanged", None),
        ("create", "not_sent", None),
    ]


@pytest.mark.parametrize(
    ("outcome", "state"),
    [
        (PushOutcome.APPLIED, ChangeState.APPLIED),
        (PushOutcome.CONFLICT, ChangeState.CONFLICT),
        (PushOutcome.FAILED, ChangeState.FAILED),
        (PushOutcome.DEFERRED, None),
    ],
)
def test_given_a_push_outcome_then_the_state_the_set_takes(outcome, state):
    assert outcome.state is state
