"""``/composite`` and sObject Collections against the sandbox, over real HTTP."""

from __future__ import annotations

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

from tests.support.sandbox import sandbox_stats

V = "/services/data/v59.0"


def count(sf, soql_from: str) -> int:
    return sf.query(f"SELECT COUNT() FROM {soql_from}")["totalSize"]


def account(name: str, **fields) -> dict:
    return {"attributes": {"type": "Account"}, "Name": name, **fields}


def test_given_all_or_none_and_one_bad_record_when_creating_then_nothing_is_created(sf):
    before = count(sf, "Account")
    records = [account("Good One"), account("Bad", Billing_Email__c="not-an-email"), account("Ok")]

    results = sf.restful(
        "composite/sobjects", method="POST", json={"allOrNone": True, "records": records}
    )

    assert count(sf, "Account") == before
    assert [r["success"] for r in results] == [False, False, False]
    assert results[1]["errors"][0]["statusCode"] == "INVALID_EMAIL_ADDRESS"
    assert results[1]["errors"][0]["fields"] == ["Billing_Email__c"]
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[2]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"


def test_given_partial_success_when_creating_then_good_records_created_in_order(sf):
    before = count(sf, "Account")
    records = [account("First"), {"attributes": {"type": "Account"}}, account("Third")]

    results = sf.restful(
        "composite/sobjects", method="POST", json={"allOrNone": False, "records": records}
    )

    assert [r["success"] for r in results] == [True, False, True]
    assert results[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert count(sf, "Account") == before + 2
    assert sf.Account.get(results[2]["id"])["Name"] == "Third"


def test_given_records_when_updating_and_deleting_by_collection_then_applied(sf):
    rows = sf.query("SELECT Id FROM Contact ORDER BY Id LIMIT 3")["records"]
    ids = [r["Id"] for r in rows]
    updates = [{"attributes": {"type": "Contact"}, "id": i, "FirstName": "Zed"} for i in ids]

    updated = sf.restful("composite/sobjects", method="PATCH", json={"records": updates})
    deleted = sf.restful(
        "composite/sobjects",
        method="DELETE",
        params={"ids": ",".join(ids[:2]), "allOrNone": "true"},
    )

    assert all(r["success"] for r in updated)
    assert sf.Contact.get(ids[2])["FirstName"] == "Zed"
    assert [r["id"] for r in deleted] == ids[:2]
    assert count(sf, f"Contact WHERE Id IN ('{ids[0]}', '{ids[1]}')") == 0


def test_given_external_ids_when_collection_upsert_then_created_flags(sf):
    account_id = sf.query("SELECT Id FROM Account LIMIT 1")["records"][0]["Id"]
    existing = sf.query("SELECT Billing_Sync_Key__c FROM Apttus_Billing__PaymentMethod__c LIMIT 1")[
        "records"
    ][0]["Billing_Sync_Key__c"]
    records = [
        {
            "attributes": {"type": "Apttus_Billing__PaymentMethod__c"},
            "Billing_Sync_Key__c": key,
            "Apttus_Billing__AccountId__c": account_id,
            "Apttus_Billing__Status__c": "Inactive",
        }
        for key in (existing, "pm-new-1")
    ]

    results = sf.restful(
        "composite/sobjects/Apttus_Billing__PaymentMethod__c/Billing_Sync_Key__c",
        method="PATCH",
        json={"allOrNone": True, "records": records},
    )

    assert [(r["success"], r["created"]) for r in results] == [(True, False), (True, True)]
    statuses = sf.query(
        "SELECT Apttus_Billing__Status__c FROM Apttus_Billing__PaymentMethod__c "
        f"WHERE Billing_Sync_Key__c IN ('{existing}', 'pm-new-1')"
    )["records"]
    assert [r["Apttus_Billing__Status__c"] for r in statuses] == ["Inactive", "Inactive"]


def test_given_more_than_200_records_when_collection_then_400_exceeded_id_limit(sf):
    with pytest.raises(SalesforceMalformedRequest) as failure:
        sf.restful(
            "composite/sobjects",
            method="POST",
            json={"records": [account(f"A{n}") for n in range(201)]},
        )

    assert failure.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_given_composite_with_references_when_posting_then_one_api_call(sf, crm_sandbox):
    calls_before = sandbox_stats(crm_sandbox)["api_calls"]
    body = {
        "compositeRequest": [
            {
                "method": "POST",
                "url": f"{V}/sobjects/Account",
                "referenceId": "acct",
                "body": {"Name": "Initech"},
            },
            {
                "method": "POST",
                "url": f"{V}/sobjects/Contact",
                "referenceId": "person",
                "body": {"LastName": "Lumbergh", "AccountId": "@{acct.id}"},
            },
            {
                "method": "GET",
                "url": f"{V}/query?q=SELECT+Id,AccountId+FROM+Contact+WHERE+Id='@{{person.id}}'",
                "referenceId": "check",
            },
            {
                "method": "GET",
                "url": f"{V}/sobjects/Account/@{{acct.id}}?fields=Name",
                "referenceId": "fetch",
            },
        ]
    }

    answer = sf.restful("composite", method="POST", json=body)

    stats = sandbox_stats(crm_sandbox)
    codes = [r["httpStatusCode"] for r in answer["compositeResponse"]]
    assert codes == [201, 201, 200, 200]
    check = answer["compositeResponse"][2]["body"]
    assert check["records"][0]["AccountId"] == answer["compositeResponse"][0]["body"]["id"]
    assert answer["compositeResponse"][3]["body"]["Name"] == "Initech"
    assert stats["api_calls"] - calls_before == 1
    assert stats["by_endpoint"]["composite"] == 1
    assert "query" not in stats["by_endpoint"]


def test_given_all_or_none_composite_when_one_fails_then_all_rolled_back(sf):
    before = count(sf, "Account")
    body = {
        "allOrNone": True,
        "compositeRequest": [
            {
                "method": "POST",
                "url": f"{V}/sobjects/Account",
                "referenceId": "a",
                "body": {"Name": "Kept?"},
            },
            {
                "method": "POST",
                "url": f"{V}/sobjects/Contact",
                "referenceId": "b",
                "body": {"FirstName": "No last name"},
            },
            {
                "method": "POST",
                "url": f"{V}/sobjects/Account",
                "referenceId": "c",
                "body": {"Name": "Never"},
            },
        ],
    }

    answer = sf.restful("composite", method="POST", json=body)["compositeResponse"]

    assert count(sf, "Account") == before
    assert [r["httpStatusCode"] for r in answer] == [400, 400, 400]
    assert answer[1]["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert answer[0]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert answer[2]["body"][0]["errorCode"] == "PROCESSING_HALTED"


def test_given_failed_subrequest_when_later_one_references_it_then_processing_halted(sf):
    body = {
        "compositeRequest": [
            {
                "method": "POST",
                "url": f"{V}/sobjects/Contact",
                "referenceId": "bad",
                "body": {"FirstName": "x"},
            },
            {"method": "GET", "url": f"{V}/sobjects/Contact/@{{bad.id}}", "referenceId": "next"},
            {"method": "GET", "url": f"{V}/limits", "referenceId": "independent"},
        ]
    }

    answer = sf.restful("composite", method="POST", json=body)["compositeResponse"]

    assert [r["httpStatusCode"] for r in answer] == [400, 400, 200]
    assert answer[1]["body"][0]["errorCode"] == "PROCESSING_HALTED"


@pytest.mark.parametrize(
    ("subrequests", "reason"),
    [
        ([("GET", f"{V}/limits")] * 26, "26 subrequests"),
        ([("GET", f"{V}/query?q=SELECT+Id+FROM+Account")] * 6, "6 queries"),
    ],
)
def test_given_composite_over_limits_when_posting_then_400(sf, subrequests, reason):
    body = {
        "compositeRequest": [
            {"method": method, "url": url, "referenceId": f"r{n}"}
            for n, (method, url) in enumerate(subrequests)
        ]
    }

    with pytest.raises(SalesforceMalformedRequest, match="LIMIT_EXCEEDED"):
        sf.restful("composite", method="POST", json=body)


def test_given_five_queries_when_composite_then_all_answered(sf):
    body = {
        "compositeRequest": [
            {
                "method": "GET",
                "url": f"{V}/queryAll?q=SELECT+COUNT()+FROM+Account",
                "referenceId": f"q{n}",
            }
            for n in range(5)
        ]
    }

    answer = sf.restful("composite", method="POST", json=body)["compositeResponse"]

    assert [r["body"]["totalSize"] for r in answer] == [25] * 5
