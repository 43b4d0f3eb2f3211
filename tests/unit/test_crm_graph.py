"""Typed composite calls of the CRM door over mocked HTTP: reads and atomic graph writes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import responses

from sync.changes import plan
from sync.changes.plan import MethodState, Staged, write_shape
from sync.changes.rules import CardWords, ChangeKind
from sync.crm import graph
from sync.crm.composite import RecordRead
from sync.crm.errors import CrmRequestError
from sync.crm.graph import AtomicWrite, GraphLimitError, WriteOutcome
from tests.unit.crm_mock import DATA, add_json, add_login, make_client

GRAPH = f"{DATA}/composite/graph"
COMPOSITE = f"{DATA}/composite"
ACCOUNT_ID = "001000000000001AAA"


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as m:
        yield m


def sent_json(call: responses.Call) -> Any:
    body = call.request.body
    assert body is not None
    return json.loads(body)


def node(ref: str, status: int, body: Any) -> dict[str, Any]:
    return {"referenceId": ref, "httpStatusCode": status, "httpHeaders": {}, "body": body}


def graph_answer(success: bool, *nodes: dict[str, Any]) -> dict[str, Any]:
    return {
        "graphs": [
            {
                "graphId": "changes",
                "graphResponse": {"compositeResponse": list(nodes)},
                "isSuccessful": success,
            }
        ]
    }


def a_write() -> tuple[AtomicWrite, str, str, str]:
    write = AtomicWrite()
    auth = write.upsert(
        "Billing_Authorization__c", "Billing_Sync_Key__c", "k1", {"Summary__c": "s"}, label="Auth"
    )
    update = write.update(
        "Account",
        ACCOUNT_ID,
        {"BillingCity": "Oslo"},
        label=f"Account {ACCOUNT_ID}",
        unmodified_since=datetime(2026, 11, 22, 10, 0, 5, tzinfo=UTC),
    )
    order = write.upsert(
        "Apttus_Config2__Order__c", "Billing_Sync_Key__c", "k2", {"Name": "o"}, label="Order"
    )
    write.upsert(
        "Apttus_Config2__OrderLineItem__c",
        "Billing_Sync_Key__c",
        "k3",
        {"Apttus_Config2__OrderId__c": AtomicWrite.ref(order)},
        label="Line",
    )
    return write, auth, update, order


def test_given_an_atomic_write_when_sent_then_one_graph_with_conditional_nodes_and_typed_results(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    write, auth, update, order = a_write()
    add_json(
        mock,
        "POST",
        GRAPH,
        graph_answer(
            True,
            node(auth, 201, {"id": "a01000000000001AAA", "created": True, "success": True}),
            node(update, 204, None),
            node(order, 200, {"id": "a02000000000001AAA", "created": False}),
            node("n3", 201, {"id": "a03000000000001AAA", "created": True}),
        ),
    )

    result = make_client().write_atomic(write)

    sent = sent_json(mock.calls[-1])
    (one,) = sent["graphs"]
    nodes = one["compositeRequest"]
    assert [(n["method"], n["url"]) for n in nodes] == [
        ("PATCH", "/services/data/v59.0/sobjects/Billing_Authorization__c/Billing_Sync_Key__c/k1"),
        ("PATCH", f"/services/data/v59.0/sobjects/Account/{ACCOUNT_ID}"),
        ("PATCH", "/services/data/v59.0/sobjects/Apttus_Config2__Order__c/Billing_Sync_Key__c/k2"),
        (
            "PATCH",
            "/services/data/v59.0/sobjects/Apttus_Config2__OrderLineItem__c/Billing_Sync_Key__c/k3",
        ),
    ]
    assert nodes[1]["httpHeaders"] == {"If-Unmodified-Since": "Sun, 22 Nov 2026 10:00:05 GMT"}
    assert nodes[3]["body"] == {"Apttus_Config2__OrderId__c": "@{n2.id}"}
    assert result.committed
    assert [r.outcome for r in result.results] == [WriteOutcome.DONE] * 4
    assert result.get(auth).record_id == "a01000000000001AAA"
    assert result.get(auth).created is True
    assert result.get(order).created is False


def test_given_a_validation_failure_when_sent_then_the_node_names_record_and_crm_words(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    write, auth, update, _ = a_write()
    halted = [{"errorCode": "PROCESSING_HALTED", "message": "rolled back"}]
    add_json(
        mock,
        "POST",
        GRAPH,
        graph_answer(
            False,
            node(auth, 400, halted),
            node(
                update,
                400,
                [
                    {
                        "errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                        "message": "Billing city must be real",
                        "fields": ["BillingCity"],
                    }
                ],
            ),
        ),
    )

    result = make_client().write_atomic(write)

    assert not result.committed
    assert [r.outcome for r in result.results] == [
        WriteOutcome.HALTED,
        WriteOutcome.REJECTED,
        WriteOutcome.HALTED,  # never reached: not in the answer
        WriteOutcome.HALTED,
    ]
    (rejected,) = result.rejected
    assert rejected.label == f"Account {ACCOUNT_ID}"
    assert isinstance(rejected.error, CrmRequestError)
    assert rejected.error.error_code == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert rejected.error.message == "Billing city must be real"


def test_given_a_412_node_when_sent_then_the_result_is_stale(mock: responses.RequestsMock) -> None:
    add_login(mock)
    write, auth, update, _ = a_write()
    add_json(
        mock,
        "POST",
        GRAPH,
        graph_answer(
            False,
            node(auth, 400, [{"errorCode": "PROCESSING_HALTED", "message": "x"}]),
            node(update, 412, [{"errorCode": "PRECONDITION_FAILED", "message": "modified"}]),
        ),
    )

    result = make_client().write_atomic(write)

    assert result.stale and not result.committed
    assert result.get(update).outcome is WriteOutcome.STALE


def test_given_a_locked_row_then_success_when_sent_then_the_rolled_back_graph_is_resent(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    write = AtomicWrite()
    ref = write.update("Account", ACCOUNT_ID, {"Name": "x"}, label="Account")
    locked = [{"errorCode": "UNABLE_TO_LOCK_ROW", "message": "unable to obtain exclusive access"}]
    add_json(mock, "POST", GRAPH, graph_answer(False, node(ref, 400, locked)))
    add_json(mock, "POST", GRAPH, graph_answer(True, node(ref, 204, None)))

    result = make_client().write_atomic(write)

    assert result.committed
    assert len([c for c in mock.calls if c.request.url == GRAPH]) == 2


def test_given_501_nodes_when_sent_then_refused_before_any_call(
    mock: responses.RequestsMock,
) -> None:
    write = AtomicWrite()
    for i in range(501):
        write.upsert("Account", "Key__c", f"k{i}", {}, label=f"#{i}")

    with pytest.raises(GraphLimitError, match="at most 500"):
        make_client().write_atomic(write)
    assert len(mock.calls) == 0


def test_given_16_objects_or_16_levels_when_shaped_then_over_the_limits() -> None:
    kinds = AtomicWrite()
    for i in range(16):
        kinds.update(f"Obj{i}__c", ACCOUNT_ID, {}, label=str(i))
    deep = AtomicWrite()
    previous = deep.upsert("Account", "Key__c", "k0", {}, label="0")
    for i in range(1, 16):
        previous = deep.upsert("Account", "Key__c", f"k{i}", {"P__c": deep.ref(previous)}, label="")

    assert kinds.shape.kinds == 16 and "at most 15" in (kinds.shape.problem() or "")
    assert deep.shape.depth == 16 and "16 levels deep" in (deep.shape.problem() or "")
    with pytest.raises(GraphLimitError):
        deep.check()


def test_given_reads_when_get_many_then_one_composite_per_25_and_404_is_not_found(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    reads = [RecordRead("Account", f"001000000000{i:03d}AAA", ("Name",)) for i in range(26)]
    first = [node(f"r{i}", 200, {"attributes": {}, "Name": f"n{i}"}) for i in range(24)]
    first.append(node("r24", 404, [{"errorCode": "NOT_FOUND", "message": "gone"}]))
    add_json(mock, "POST", COMPOSITE, {"compositeResponse": first})
    add_json(mock, "POST", COMPOSITE, {"compositeResponse": [node("r0", 200, {"Name": "last"})]})

    answers = make_client().get_many(reads)

    assert len(answers) == 26
    assert answers[0].record == {"Name": "n0"}
    assert (answers[24].found, answers[24].error) == (False, None)
    assert answers[25].record == {"Name": "last"}
    urls = [s["url"] for s in sent_json(mock.calls[1])["compositeRequest"]]
    assert urls[0] == "/services/data/v59.0/sobjects/Account/001000000000000AAA?fields=Name"


def test_given_eleven_queries_when_query_many_then_three_calls_and_failures_are_results(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    page = {"totalSize": 7, "done": True, "records": []}
    bad = [{"errorCode": "INVALID_FIELD", "message": "No such column 'Nope'"}]
    for size in (5, 5, 1):
        items = [node(f"q{i}", 200, page) for i in range(size)]
        if size == 1:
            items = [node("q0", 400, bad)]
        add_json(mock, "POST", COMPOSITE, {"compositeResponse": items})

    answers = make_client().query_many([f"SELECT Id FROM T{i}" for i in range(11)])

    assert [a.page.total_size for a in answers[:10] if a.page] == [7] * 10
    assert answers[10].page is None
    assert answers[10].text == "INVALID_FIELD: No such column 'Nope'"
    assert len(mock.calls) == 4  # login + three /composite calls


def test_given_the_staging_limits_then_they_are_the_door_graph_limits() -> None:
    assert (plan.MAX_WRITES, plan.MAX_WRITE_KINDS, plan.MAX_WRITE_DEPTH) == (
        graph.MAX_GRAPH_NODES,
        graph.MAX_GRAPH_KINDS,
        graph.MAX_GRAPH_DEPTH,
    )


def _card(i: int) -> Staged:
    payload = {
        "token": f"tok{i}",
        "brand": "Visa",
        "last_four": "4242",
        "exp_month": 12,
        "exp_year": 2030,
        "is_default": False,
        "is_one_time": False,
    }
    return Staged(i, ChangeKind.ADD_CARD, None, payload, "")


def test_given_staged_changes_when_shaped_then_one_write_per_record_like_the_push() -> None:
    mirrored = [
        MethodState("a0A000000000001AAA", True, "Active", CardWords("Visa", "1111", 1, 2030))
    ]
    fields = [Staged(100 + i, ChangeKind.ACCOUNT_FIELD, c, {}, "") for i, c in enumerate("abc")]
    purchases = [Staged(200 + i, ChangeKind.ADD_LICENSES, f"p{i}", {}, "") for i in range(3)]

    shape = write_shape(mirrored, [*fields, *(_card(i) for i in range(4)), *purchases])

    # authorization + the account once + 4 cards + order + 3 lines
    assert (shape.writes, shape.kinds, shape.depth) == (10, 5, 2)
    assert shape.problem() is None
    assert "500" in (write_shape(mirrored, [_card(i) for i in range(500)]).problem() or "")
    assert write_shape(mirrored, [_card(i) for i in range(499)]).problem() is None
