"""The sandbox's /composite/graph in process: limits, per-graph rollback, events on commit."""

from __future__ import annotations

import orjson
import pytest

from sync.sandbox.app import Sandbox
from sync.sandbox.config import SandboxConfig
from sync.sandbox.rest import ApiRequest

V = "/services/data/v59.0"


@pytest.fixture(scope="module")
def sandbox():
    sb = Sandbox(SandboxConfig(seed=2))
    sb.start()
    yield sb
    sb.close()


def graph(sb: Sandbox, *graphs: tuple[str, list[dict]]):
    body = {"graphs": [{"graphId": gid, "compositeRequest": nodes} for gid, nodes in graphs]}
    return sb.api.handle(ApiRequest("POST", "composite/graph", "59.0", body=orjson.dumps(body)))


def create(ref: str, sobject: str = "Account", **fields) -> dict:
    return {"method": "POST", "url": f"{V}/sobjects/{sobject}", "referenceId": ref, "body": fields}


def names(sb: Sandbox, *wanted: str) -> list[str]:
    soql = "SELECT Name FROM Account WHERE Name IN ('" + "', '".join(wanted) + "')"
    answer = sb.api.handle(ApiRequest("GET", "query", "59.0", params={"q": soql}))
    return sorted(r["Name"] for r in answer.body["records"])


def test_given_two_graphs_one_failing_when_sent_then_only_the_good_graph_commits(sandbox):
    answer = graph(
        sandbox,
        ("good", [create("a", Name="Graph Good A"), create("b", Name="Graph Good B")]),
        (
            "bad",
            [
                create("c", Name="Graph Bad C"),
                create("d", Name="Graph Bad D", Billing_Email__c="not-an-email"),
                create("e", Name="Graph Bad E"),
            ],
        ),
    )

    assert answer.status == 200
    good, bad = answer.body["graphs"]
    assert (good["graphId"], good["isSuccessful"]) == ("good", True)
    assert (bad["graphId"], bad["isSuccessful"]) == ("bad", False)
    assert [n["httpStatusCode"] for n in good["graphResponse"]["compositeResponse"]] == [201, 201]
    codes = [
        (n["referenceId"], n["body"][0]["errorCode"])
        for n in bad["graphResponse"]["compositeResponse"]
    ]
    assert codes == [
        ("c", "PROCESSING_HALTED"),
        ("d", "INVALID_EMAIL_ADDRESS"),
        ("e", "PROCESSING_HALTED"),
    ]
    assert names(sandbox, "Graph Good A", "Graph Good B", "Graph Bad C", "Graph Bad E") == [
        "Graph Good A",
        "Graph Good B",
    ]


def test_given_a_failing_graph_when_sent_then_no_change_event_is_emitted(sandbox):
    before = sandbox.store.newest_replay_id()
    graph(
        sandbox,
        ("bad", [create("a", Name="Event Bad A"), create("b", Billing_Email__c="x")]),
    )
    assert sandbox.store.events_after(before, None) == []

    graph(sandbox, ("good", [create("a", Name="Event Good A")]))
    events = sandbox.store.events_after(before, None)
    assert [e.entity for e in events] == ["Account"]


def test_given_references_when_sent_then_a_node_uses_an_earlier_answer(sandbox):
    answer = graph(
        sandbox,
        (
            "refs",
            [
                create("acct", Name="Graph Parent"),
                create("contact", "Contact", LastName="Child", AccountId="@{acct.id}"),
            ],
        ),
    )
    (only,) = answer.body["graphs"]
    assert only["isSuccessful"] is True
    contact_id = only["graphResponse"]["compositeResponse"][1]["body"]["id"]
    contact = sandbox.api.handle(ApiRequest("GET", f"sobjects/Contact/{contact_id}", "59.0"))
    account_id = only["graphResponse"]["compositeResponse"][0]["body"]["id"]
    assert contact.body["AccountId"] == account_id


def _refused(answer) -> str:
    assert answer.status == 400, answer.body
    return str(answer.body[0]["message"])


def test_given_501_nodes_when_sent_then_refused_and_nothing_runs(sandbox):
    nodes = [create(f"n{i}", Name=f"Too Many {i}") for i in range(501)]

    assert "at most 500 nodes" in _refused(graph(sandbox, ("big", nodes)))
    assert names(sandbox, "Too Many 0") == []


def test_given_500_nodes_over_two_graphs_plus_one_when_sent_then_refused(sandbox):
    first = [create(f"a{i}", Name=f"Split {i}") for i in range(250)]
    second = [create(f"b{i}", Name=f"Split b{i}") for i in range(251)]

    assert "at most 500 nodes in all its graphs" in _refused(
        graph(sandbox, ("one", first), ("two", second))
    )


def test_given_16_node_kinds_when_sent_then_refused(sandbox):
    objects = [
        "Account",
        "Contact",
        "Product2",
        "AccountContactRole",
        "Apttus_Config2__Order__c",
        "Apttus_Config2__OrderLineItem__c",
        "Apttus_Config2__AssetLineItem__c",
        "Apttus_Billing__Invoice__c",
    ]
    nodes = []
    for i, name in enumerate(objects):
        nodes.append(create(f"p{i}", name))
        nodes.append(
            {
                "method": "GET",
                "url": f"{V}/sobjects/{name}/001000000000000AAA",
                "referenceId": f"g{i}",
            }
        )
    nodes.append(
        {"method": "DELETE", "url": f"{V}/sobjects/Account/001000000000000AAA", "referenceId": "x"}
    )

    assert "at most 15 different nodes" in _refused(graph(sandbox, ("kinds", nodes)))


def test_given_references_16_deep_when_sent_then_refused(sandbox):
    nodes = [create("n0", Name="Deep 0")]
    for i in range(1, 16):
        nodes.append(
            create(f"n{i}", "Contact", LastName=f"Deep {i}", Description=f"@{{n{i - 1}.id}}")
        )

    assert "at most 15 nodes deep" in _refused(graph(sandbox, ("deep", nodes)))


def test_given_a_query_node_when_sent_then_refused(sandbox):
    node = {"method": "GET", "url": f"{V}/query?q=SELECT+Id+FROM+Account", "referenceId": "q"}

    assert "sObject resource" in _refused(graph(sandbox, ("query", [node])))


def test_given_a_stale_conditional_update_when_sent_then_412_and_rolled_back(sandbox):
    answer = graph(sandbox, ("seed", [create("a", Name="Stale Before")]))
    record_id = answer.body["graphs"][0]["graphResponse"]["compositeResponse"][0]["body"]["id"]
    nodes = [
        create("c", Name="Stale Companion"),
        {
            "method": "PATCH",
            "url": f"{V}/sobjects/Account/{record_id}",
            "referenceId": "u",
            "body": {"Name": "Stale After"},
            "httpHeaders": {"If-Unmodified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"},
        },
    ]

    (only,) = graph(sandbox, ("stale", nodes)).body["graphs"]

    assert only["isSuccessful"] is False
    assert only["graphResponse"]["compositeResponse"][1]["httpStatusCode"] == 412
    assert names(sandbox, "Stale Before", "Stale After", "Stale Companion") == ["Stale Before"]
