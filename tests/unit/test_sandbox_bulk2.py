"""The sandbox's Bulk API 2.0 jobs in process: locators, refusals, bounded job memory."""

from __future__ import annotations

import orjson
import pytest

from sync.sandbox import bulk2
from sync.sandbox.app import Sandbox
from sync.sandbox.config import SandboxConfig
from sync.sandbox.rest import ApiRequest


@pytest.fixture(scope="module")
def sandbox():
    sb = Sandbox(SandboxConfig(seed=3))
    sb.start()
    yield sb
    sb.close()


def create(sb: Sandbox, soql: str) -> str:
    body = orjson.dumps({"operation": "query", "query": soql})
    answer = sb.api.handle(ApiRequest("POST", "jobs/query", "59.0", body=body))
    assert answer.status == 200, answer.body
    job_id: str = answer.body["id"]
    return job_id


def test_given_offsets_when_encoded_then_opaque_and_decoded_back():
    assert bulk2.encode_locator(10000) == "MTAwMDA"
    assert [bulk2.decode_locator(bulk2.encode_locator(n)) for n in (0, 7, 123456)] == [
        0,
        7,
        123456,
    ]
    assert bulk2.decode_locator("not a locator!") is None


@pytest.mark.parametrize(
    ("soql", "refused"),
    [
        ("SELECT Id, Name FROM Account WHERE Name = 'GROUP BY'", False),
        ("SELECT Id FROM Contact WHERE AccountId IN (SELECT Id FROM Account)", False),
        ("SELECT Id, Account.Name FROM Contact", False),
        ("SELECT Id FROM Account GROUP BY Id", True),
        ("SELECT Id, ShippingAddress FROM Account", True),
        ("SELECT MAX(Name) FROM Account", True),
    ],
)
def test_given_query_when_judged_for_bulk_then_only_what_bulk_refuses(soql, refused):
    assert (bulk2._refusal(soql, bulk2._object_hint(soql)) is not None) is refused


def test_given_more_jobs_than_kept_when_creating_then_oldest_finished_dropped(sandbox, monkeypatch):
    monkeypatch.setattr(bulk2, "MAX_JOBS", 2)
    first = create(sandbox, "SELECT Id FROM Account")
    create(sandbox, "SELECT Id FROM Account")
    create(sandbox, "SELECT Id FROM Account")
    create(sandbox, "SELECT Id FROM Account")

    gone = sandbox.api.handle(ApiRequest("GET", f"jobs/query/{first}", "59.0"))

    assert gone.status == 404
    assert len(sandbox.bulk) == 2


def test_given_rows_over_the_cap_when_creating_then_oldest_job_dropped(sandbox, monkeypatch):
    sandbox.bulk.clear()
    monkeypatch.setattr(bulk2, "MAX_JOB_ROWS", 5)
    first = create(sandbox, "SELECT Id FROM Contact")
    second = create(sandbox, "SELECT Id FROM Contact")

    assert sandbox.api.handle(ApiRequest("GET", f"jobs/query/{first}", "59.0")).status == 404
    assert sandbox.api.handle(ApiRequest("GET", f"jobs/query/{second}", "59.0")).status == 200
