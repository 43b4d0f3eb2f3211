"""Bulk API 2.0 query jobs in the sandbox, through simple-salesforce's ``bulk2`` and raw HTTP."""

from __future__ import annotations

import csv
import io
import re

import pytest
import requests
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceOperationError

from tests.support.sandbox import sandbox_stats, set_faults

LINES = "Apttus_Billing__InvoiceLineItem__c"


def rows(pages: list[str]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for page in pages:
        out.extend(csv.DictReader(io.StringIO(page, newline="")))
    return out


def api(sf, crm_sandbox: str, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(
        method,
        f"{crm_sandbox}/services/data/v59.0/jobs/query{path}",
        headers={"Authorization": f"Bearer {sf.session_id}"},
        timeout=30,
        **kwargs,
    )


def create(sf, crm_sandbox: str, soql: str, operation: str = "query") -> dict:
    answer = api(sf, crm_sandbox, "POST", "", json={"operation": operation, "query": soql})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_given_deleted_contact_when_bulk_query_and_query_all_then_same_as_rest(sf):
    victim = sf.query("SELECT Id FROM Contact ORDER BY Id LIMIT 1")["records"][0]["Id"]
    sf.Contact.delete(victim)
    soql = "SELECT Id, LastName, Email, IsDeleted FROM Contact"

    live = rows(list(sf.bulk2.Contact.query(soql, wait=0.05)))
    everything = rows(list(sf.bulk2.Contact.query_all(soql, wait=0.05)))

    rest_live = sf.query_all(soql)["records"]
    rest_all = sf.query_all(soql, include_deleted=True)["records"]
    assert [r["Id"] for r in live] == [r["Id"] for r in rest_live]
    assert [r["Id"] for r in everything] == [r["Id"] for r in rest_all]
    assert victim not in {r["Id"] for r in live}
    deleted = next(r for r in everything if r["Id"] == victim)
    assert deleted["IsDeleted"] == "true"
    for bulk_row, rest_row in zip(everything, rest_all, strict=True):
        assert bulk_row["LastName"] == rest_row["LastName"]
        assert bulk_row["Email"] == (rest_row["Email"] or "")


def test_given_max_records_when_paging_then_header_on_every_page_and_all_records(sf):
    total = sf.query(f"SELECT COUNT() FROM {LINES}")["totalSize"]

    pages = list(
        sf.bulk2.__getattr__(LINES).query(
            f"SELECT Id, Apttus_Billing__Amount__c FROM {LINES}", max_records=100, wait=0.05
        )
    )

    assert len(pages) == -(-total // 100)
    assert all(p.startswith('"Id","Apttus_Billing__Amount__c"\n') for p in pages)
    ids = [r["Id"] for r in rows(pages)]
    assert len(ids) == len(set(ids)) == total


def test_given_values_of_every_kind_when_results_then_salesforce_csv_formats(sf, crm_sandbox):
    contact = sf.query("SELECT Id, AccountId FROM Contact ORDER BY Id LIMIT 1")["records"][0]
    sf.Contact.update(contact["Id"], {"Title": 'Head of "Billing", EMEA\nand APAC'})
    job = create(
        sf,
        crm_sandbox,
        "SELECT Id, Account.Name, Title, MobilePhone, CreatedDate, HasOptedOutOfEmail "
        f"FROM Contact WHERE Id = '{contact['Id']}'",
    )
    assert job["state"] == "UploadComplete"
    assert api(sf, crm_sandbox, "GET", f"/{job['id']}").json()["state"] == "JobComplete"

    answer = api(sf, crm_sandbox, "GET", f"/{job['id']}/results")

    assert answer.headers["Content-Type"].startswith("text/csv")
    assert answer.headers["Sforce-NumberOfRecords"] == "1"
    assert answer.headers["Sforce-Locator"] == "null"
    header, line = answer.text.split("\n", 1)
    assert header == '"Id","Account.Name","Title","MobilePhone","CreatedDate","HasOptedOutOfEmail"'
    account = sf.Account.get(contact["AccountId"])["Name"]
    record = next(csv.reader(io.StringIO(line, newline="")))
    assert record[1] == account
    assert record[2] == 'Head of "Billing", EMEA\nand APAC'
    assert '"Head of ""Billing"", EMEA\nand APAC"' in line
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record[4])
    assert record[3] == "" or record[3].startswith("(")
    assert record[5] == "false"
    amount = create(sf, crm_sandbox, f"SELECT Apttus_Billing__Quantity__c FROM {LINES} LIMIT 1")
    text = api(sf, crm_sandbox, "GET", f"/{amount['id']}/results").text
    assert text.split("\n")[1].endswith('.0"')


def test_given_locator_when_fetched_twice_then_same_page(sf, crm_sandbox):
    job = create(sf, crm_sandbox, f"SELECT Id FROM {LINES}")
    first = api(sf, crm_sandbox, "GET", f"/{job['id']}/results", params={"maxRecords": 50})
    locator = first.headers["Sforce-Locator"]
    assert locator not in ("", "null")

    again = [
        api(
            sf,
            crm_sandbox,
            "GET",
            f"/{job['id']}/results",
            params={"maxRecords": 50, "locator": locator},
        )
        for _ in range(2)
    ]

    assert again[0].text == again[1].text
    assert again[0].text != first.text
    assert again[0].headers["Sforce-NumberOfRecords"] == "50"


@pytest.mark.parametrize(
    ("soql", "fragment"),
    [
        ("SELECT COUNT() FROM Contact", "COUNT()"),
        ("SELECT AccountId, COUNT(Id) FROM Contact GROUP BY AccountId", "COUNT()"),
        ("SELECT Id FROM Contact GROUP BY Id", "GROUP BY"),
        ("SELECT Id FROM Contact LIMIT 5 OFFSET 2", "OFFSET"),
        ("SELECT TYPEOF What WHEN Account THEN Name END FROM Task", "TYPEOF"),
        ("SELECT Id, (SELECT Id FROM Contacts) FROM Account", "Aggregate Relationships"),
        ("SELECT Id, BillingAddress FROM Account", "compound data"),
    ],
)
def test_given_what_bulk_refuses_when_creating_then_400_api_error(sf, soql, fragment):
    with pytest.raises(SalesforceMalformedRequest) as caught:
        list(sf.bulk2.Contact.query(soql, wait=0.05))

    content = caught.value.content
    assert content[0]["errorCode"] == "API_ERROR"
    assert fragment in content[0]["message"]


def test_given_running_job_when_results_delete_abort_then_refused_then_aborted(sf, crm_sandbox):
    set_faults(crm_sandbox, bulk_processing_ms=600_000)
    job = create(sf, crm_sandbox, "SELECT Id FROM Contact")
    path = f"/{job['id']}"
    assert api(sf, crm_sandbox, "GET", path).json()["state"] == "InProgress"

    early = api(sf, crm_sandbox, "GET", path + "/results")
    refused = api(sf, crm_sandbox, "DELETE", path)
    aborted = api(sf, crm_sandbox, "PATCH", path, json={"state": "Aborted"})

    assert early.status_code == 412
    assert early.json()[0]["errorCode"] == "JOB_NOT_COMPLETE"
    assert refused.status_code == 400
    assert "not terminated" in refused.json()[0]["message"]
    assert aborted.status_code == 200
    assert aborted.json()["state"] == "Aborted"
    listed = api(sf, crm_sandbox, "GET", "").json()
    assert job["id"] in {j["id"] for j in listed["records"]}
    deleted = api(sf, crm_sandbox, "DELETE", path)
    assert deleted.status_code == 204
    assert api(sf, crm_sandbox, "GET", path).status_code == 404


def test_given_bulk_fail_rate_when_querying_then_job_failed_with_message(sf, crm_sandbox):
    set_faults(crm_sandbox, bulk_fail_rate=1.0)

    with pytest.raises(SalesforceOperationError) as caught:
        list(sf.bulk2.Contact.query("SELECT Id FROM Contact", wait=0.05))

    assert "InternalServerError" in str(caught.value)


def test_given_bulk_requests_when_stats_then_counted_as_bulk2_api_calls(sf, crm_sandbox):
    before = sandbox_stats(crm_sandbox)

    list(sf.bulk2.Contact.query("SELECT Id FROM Contact", max_records=40, wait=0.05))

    after = sandbox_stats(crm_sandbox)
    calls = after["by_endpoint"].get("bulk2", 0) - before["by_endpoint"].get("bulk2", 0)
    pages = -(-sf.query("SELECT COUNT() FROM Contact")["totalSize"] // 40)
    assert calls == 1 + 1 + pages  # create, one poll, the pages
    assert after["api_calls"] - before["api_calls"] == calls
    limits = sf.limits()
    assert limits["DailyBulkV2QueryJobs"]["Remaining"] < limits["DailyBulkV2QueryJobs"]["Max"]


def test_given_error_rate_when_bulk_request_then_faults_apply(sf, crm_sandbox):
    set_faults(crm_sandbox, error_rate=1.0, errors=["SERVER_UNAVAILABLE"])

    answer = api(sf, crm_sandbox, "GET", "")

    assert answer.status_code == 503
