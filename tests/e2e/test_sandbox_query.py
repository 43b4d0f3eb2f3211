"""SOQL queries, locator pages and batch sizes against the sandbox, over real HTTP."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from tests.support.sandbox import reseed, sandbox_stats, simple_salesforce

LINES = "Apttus_Billing__InvoiceLineItem__c"


def new_client(url: str) -> Salesforce:
    return simple_salesforce(url, "59.0")


def pages(sf: Salesforce, soql: str, *, include_deleted: bool = False, headers=None):
    headers = headers or {}
    page = sf.query(soql, include_deleted=include_deleted, headers=headers)
    yield page
    while not page["done"]:
        page = sf.query_more(page["nextRecordsUrl"], identifier_is_url=True, headers=headers)
        yield page


def test_given_more_than_2000_records_when_querying_then_pages_of_2000_with_locators(
    sf, crm_sandbox
):
    reseed(crm_sandbox, 50, 3)
    expected = sf.query(f"SELECT COUNT() FROM {LINES}")["totalSize"]
    assert expected > 2100

    seen = list(pages(sf, f"SELECT Id, Apttus_Billing__Amount__c FROM {LINES}"))

    sizes = [len(p["records"]) for p in seen]
    assert sizes[:-1] == [2000] * (len(seen) - 1)
    assert sum(sizes) == expected
    assert all(p["totalSize"] == expected for p in seen)
    first_locator = seen[0]["nextRecordsUrl"]
    assert first_locator.startswith("/services/data/v59.0/query/01g")
    assert first_locator.endswith("-2000")
    ids = [r["Id"] for p in seen for r in p["records"]]
    assert len(set(ids)) == expected
    assert isinstance(seen[0]["records"][0]["Apttus_Billing__Amount__c"], float)


def test_given_batch_size_header_when_querying_then_pages_have_that_size(sf):
    headers = {"Sforce-Query-Options": "batchSize=200"}
    total = sf.query("SELECT COUNT() FROM Apttus_Billing__Invoice__c")["totalSize"]

    seen = list(pages(sf, "SELECT Id FROM Apttus_Billing__Invoice__c", headers=headers))

    assert [len(p["records"]) for p in seen[:-1]] == [200] * (len(seen) - 1)
    assert sum(len(p["records"]) for p in seen) == total == 600


@pytest.mark.parametrize(("asked", "served"), [("batchSize=50", 200), ("batchSize=5000", 2000)])
def test_given_batch_size_out_of_range_when_querying_then_brought_into_200_to_2000(
    sf, asked, served
):
    page = sf.query(f"SELECT Id FROM {LINES}", headers={"Sforce-Query-Options": asked})

    assert len(page["records"]) == min(served, page["totalSize"])


def test_given_query_all_iter_when_paging_then_every_record_once(sf):
    total = sf.query(f"SELECT COUNT() FROM {LINES}")["totalSize"]

    records = list(sf.query_all_iter(f"SELECT Id FROM {LINES}"))

    assert len(records) == total
    assert len({r["Id"] for r in records}) == total


def test_given_deleted_record_when_query_and_query_all_then_only_query_all_returns_it(sf):
    contact = sf.query("SELECT Id FROM Contact ORDER BY Id LIMIT 1")["records"][0]["Id"]
    sf.Contact.delete(contact)
    soql = f"SELECT Id, IsDeleted FROM Contact WHERE Id = '{contact}'"

    live = sf.query(soql)
    everything = sf.query_all(soql, include_deleted=True)

    assert live["totalSize"] == 0
    assert everything["records"][0]["IsDeleted"] is True
    assert sandbox_stats(sf.session.instance_url)["by_endpoint"]["queryAll"] == 1


def test_given_where_order_limit_offset_when_querying_then_applied(sf):
    result = sf.query(
        "SELECT Name, Apttus_Billing__InvoiceDate__c FROM Apttus_Billing__Invoice__c "
        "WHERE Apttus_Billing__Status__c = 'Historical' "
        "ORDER BY Apttus_Billing__InvoiceDate__c DESC, Name ASC LIMIT 5 OFFSET 2"
    )

    dates = [r["Apttus_Billing__InvoiceDate__c"] for r in result["records"]]
    assert result["totalSize"] == 5
    assert dates == sorted(dates, reverse=True)
    assert dates[0].endswith(".000+0000")


def test_given_count_query_when_running_then_total_size_and_no_records(sf):
    result = sf.query("SELECT COUNT() FROM Account WHERE Name != null")

    assert result == {"totalSize": 25, "done": True, "records": []}


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        ("SELECT Id FROM", "MALFORMED_QUERY"),
        ("SELECT Nope__c FROM Account", "INVALID_FIELD"),
        ("SELECT Id FROM Nothing__c", "INVALID_TYPE"),
    ],
)
def test_given_bad_soql_when_querying_then_malformed_request_with_salesforce_code(sf, soql, code):
    with pytest.raises(SalesforceMalformedRequest) as failure:
        sf.query(soql)

    assert failure.value.status == 400
    assert failure.value.content[0]["errorCode"] == code


def test_given_unknown_locator_when_fetching_page_then_invalid_query_locator(sf):
    with pytest.raises(SalesforceMalformedRequest) as failure:
        sf.query_more("01g5g0000000zzzAAA-2000")

    assert failure.value.content[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_given_many_clients_when_paging_concurrently_then_each_gets_every_record(crm_sandbox):
    reseed(crm_sandbox, 30, 5)
    sf = new_client(crm_sandbox)
    expected = sf.query(f"SELECT COUNT() FROM {LINES}")["totalSize"]
    headers = {"Sforce-Query-Options": "batchSize=200"}

    def page_all(_: int) -> list[str]:
        client = new_client(crm_sandbox)
        return [
            r["Id"]
            for page in pages(client, f"SELECT Id FROM {LINES}", headers=headers)
            for r in page["records"]
        ]

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(page_all, range(12)))

    assert expected > 1000
    for ids in results:
        assert len(ids) == expected
        assert len(set(ids)) == expected
    assert all(ids == results[0] for ids in results)


def test_given_locator_when_another_query_runs_between_pages_then_locator_still_works(sf):
    headers = {"Sforce-Query-Options": "batchSize=200"}
    first = sf.query("SELECT Id FROM Apttus_Billing__Invoice__c", headers=headers)
    sf.query("SELECT Id FROM Contact", headers=headers)

    second = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)

    assert len(second["records"]) == 200
    assert not {r["Id"] for r in first["records"]} & {r["Id"] for r in second["records"]}


def test_given_query_without_q_when_calling_then_malformed_query(sf, crm_sandbox):
    response = requests.get(
        f"{crm_sandbox}/services/data/v59.0/query",
        headers={"Authorization": f"Bearer {sf.session_id}"},
        timeout=10,
    )

    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "MALFORMED_QUERY"
