"""Record resources of the sandbox: CRUD, upsert, describe, windows, errors."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
from simple_salesforce.exceptions import (
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceResourceNotFound,
)

from sync.sandbox import ids
from tests.support.sandbox import sandbox_stats, simple_salesforce_cc

ORDER = "Apttus_Config2__Order__c"


def account_id(sf) -> str:
    return sf.query("SELECT Id FROM Account ORDER BY Name LIMIT 1")["records"][0]["Id"]


def raw(sf, method: str, path: str, **kwargs) -> requests.Response:
    url = f"{sf.session.instance_url}/services/data/v59.0/{path}"
    headers = {"Authorization": f"Bearer {sf.session_id}", **kwargs.pop("headers", {})}
    return requests.request(method, url, headers=headers, timeout=10, **kwargs)


def test_given_new_record_when_created_then_18_char_id_with_prefix_and_checksum(sf):
    created = sf.Account.create({"Name": "Globex Corporation", "Phone": "(212) 555-0100"})

    record_id = created["id"]
    assert created["success"] is True
    assert len(record_id) == 18
    assert record_id.startswith("001")
    assert ids.is_valid(record_id)
    assert ids.checksum(record_id[:15]) == record_id[15:]
    fetched = sf.Account.get(record_id)
    assert fetched["Name"] == "Globex Corporation"
    assert fetched["CreatedDate"] == fetched["SystemModstamp"]
    assert fetched["IsDeleted"] is False


def test_given_15_char_id_when_getting_record_then_found(sf):
    record_id = account_id(sf)

    assert sf.Account.get(record_id[:15])["Id"] == record_id


def test_given_record_when_updated_then_fields_and_modstamp_change(sf):
    record_id = account_id(sf)
    before = sf.Account.get(record_id)

    status = sf.Account.update(record_id, {"BillingCity": "Reno"})

    after = sf.Account.get(record_id)
    assert status == 204
    assert after["BillingCity"] == "Reno"
    assert after["SystemModstamp"] > before["SystemModstamp"]
    assert after["CreatedDate"] == before["CreatedDate"]


def test_given_many_writes_when_reading_modstamps_then_strictly_increasing(sf):
    record_id = account_id(sf)
    stamps = []
    for n in range(30):
        sf.Account.update(record_id, {"BillingPostalCode": f"{n:05d}"})
        stamps.append(sf.Account.get(record_id, headers={})["SystemModstamp"])

    assert stamps == sorted(stamps)
    assert len(set(stamps)) == len(stamps)


def test_given_deleted_record_when_getting_then_404_entity_is_deleted(sf):
    record_id = sf.Account.create({"Name": "Short-lived Ltd."})["id"]
    sf.Account.delete(record_id)

    with pytest.raises(SalesforceResourceNotFound) as failure:
        sf.Account.get(record_id)

    assert failure.value.content[0]["errorCode"] == "ENTITY_IS_DELETED"


def test_given_unknown_id_when_getting_then_404_not_found(sf):
    with pytest.raises(SalesforceResourceNotFound) as failure:
        sf.Account.get(ids.make_id("001", 999_999))

    assert failure.value.content[0]["errorCode"] == "NOT_FOUND"


def test_given_external_id_when_upserting_then_201_created_then_200_updated(sf):
    account = account_id(sf)
    body = {"Apttus_Config2__SoldToAccountId__c": account, "Apttus_Config2__Status__c": "Pending"}

    first = sf.__getattr__(ORDER).upsert("Billing_Sync_Key__c/new-key-1", body)
    second = sf.__getattr__(ORDER).upsert(
        "Billing_Sync_Key__c/new-key-1", {"Apttus_Config2__Status__c": "Activated"}
    )

    rows = sf.query(
        f"SELECT Id, Apttus_Config2__Status__c FROM {ORDER} WHERE Billing_Sync_Key__c = 'new-key-1'"
    )["records"]
    assert (first, second) == (201, 200)
    assert len(rows) == 1
    assert rows[0]["Apttus_Config2__Status__c"] == "Activated"


def test_given_non_external_field_when_upserting_then_404(sf):
    with pytest.raises(SalesforceResourceNotFound):
        sf.Account.upsert("Name/Acme", {"Phone": "1"})


def test_given_if_unmodified_since_before_change_when_updating_then_412(sf):
    record_id = account_id(sf)
    modified = datetime.strptime(
        sf.Account.get(record_id)["LastModifiedDate"], "%Y-%m-%dT%H:%M:%S.%f%z"
    )
    stale = format_datetime(modified - timedelta(seconds=5), usegmt=True)
    fresh = format_datetime(modified + timedelta(seconds=1), usegmt=True)

    ok = sf.Account.update(record_id, {"Phone": "1"}, headers={"If-Unmodified-Since": fresh})
    with pytest.raises(SalesforceGeneralError) as failure:
        sf.Account.update(record_id, {"Phone": "2"}, headers={"If-Unmodified-Since": stale})

    assert ok == 204
    assert failure.value.status == 412
    assert failure.value.content[0]["errorCode"] == "PRECONDITION_FAILED"
    assert sf.Account.get(record_id)["Phone"] == "1"


def test_given_missing_required_field_when_creating_then_400_naming_it(sf):
    with pytest.raises(SalesforceMalformedRequest) as failure:
        sf.Contact.create({"FirstName": "Ann"})

    error = failure.value.content[0]
    assert error["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert error["fields"] == ["LastName"]


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("Apttus_Config2__OrderDate__c", "2026-13-45", "JSON_PARSER_ERROR"),
        ("Apttus_Config2__OrderAmount__c", "lots", "JSON_PARSER_ERROR"),
        ("Apttus_Config2__Status__c", "Shipped", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
        ("Name", "x" * 81, "STRING_TOO_LONG"),
        ("Nope__c", 1, "INVALID_FIELD"),
        ("Apttus_Config2__SoldToAccountId__c", "003000000000000", "FIELD_INTEGRITY_EXCEPTION"),
        ("Apttus_Config2__SoldToAccountId__c", "not-an-id", "MALFORMED_ID"),
    ],
)
def test_given_bad_value_when_creating_then_400_naming_the_field(sf, field, value, code):
    body = {"Apttus_Config2__SoldToAccountId__c": account_id(sf), field: value}

    with pytest.raises(SalesforceMalformedRequest) as failure:
        sf.__getattr__(ORDER).create(body)

    error = failure.value.content[0]
    assert error["errorCode"] == code
    assert error["fields"] == [field]


def test_given_read_only_field_when_updating_then_invalid_field_for_insert_update(sf):
    with pytest.raises(SalesforceMalformedRequest) as failure:
        sf.Account.update(account_id(sf), {"CreatedDate": "2020-01-01T00:00:00Z"})

    assert failure.value.content[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"


def test_given_duplicate_unique_external_id_when_creating_then_duplicate_value(sf):
    existing = sf.query(f"SELECT Billing_Sync_Key__c FROM {ORDER} LIMIT 1")["records"][0]
    body = {
        "Apttus_Config2__SoldToAccountId__c": account_id(sf),
        "Billing_Sync_Key__c": existing["Billing_Sync_Key__c"],
    }

    with pytest.raises(SalesforceMalformedRequest) as failure:
        sf.__getattr__(ORDER).create(body)

    assert failure.value.content[0]["errorCode"] == "DUPLICATE_VALUE"


def test_given_describe_when_reading_fields_then_typed_metadata(sf):
    described = sf.__getattr__("Apttus_Billing__PaymentMethod__c").describe()

    fields = {f["name"]: f for f in described["fields"]}
    assert described["keyPrefix"] == "a0F"
    assert fields["Billing_Sync_Key__c"]["externalId"] is True
    assert fields["Apttus_Billing__AccountId__c"]["type"] == "reference"
    assert fields["Apttus_Billing__AccountId__c"]["referenceTo"] == ["Account"]
    assert fields["Apttus_Billing__AccountId__c"]["nillable"] is False
    assert fields["Id"]["createable"] is False
    assert {p["value"] for p in fields["Apttus_Billing__Type__c"]["picklistValues"]} >= {
        "Credit Card",
        "ACH",
    }
    assert sandbox_stats(sf.session.instance_url)["by_endpoint"]["describe"] == 1


def test_given_describe_global_when_listing_then_every_object(sf):
    names = {o["name"] for o in sf.describe()["sobjects"]}

    assert {"Account", "Contact", "AccountContactRole", ORDER, "Billing_Authorization__c"} <= names


def test_given_deletes_and_updates_when_reading_windows_then_records_in_window(sf):
    start = datetime.now(UTC) - timedelta(seconds=1)
    record_id = account_id(sf)
    other = sf.query("SELECT Id FROM Contact ORDER BY Id LIMIT 1")["records"][0]["Id"]
    sf.Account.update(record_id, {"Phone": "5"})
    sf.Contact.delete(other)
    end = datetime.now(UTC) + timedelta(minutes=1)

    updated = sf.Account.updated(start, end)
    deleted = sf.Contact.deleted(start, end)
    earlier = sf.Contact.deleted(start - timedelta(hours=2), start - timedelta(hours=1))

    assert updated["ids"] == [record_id]
    assert [d["id"] for d in deleted["deletedRecords"]] == [other]
    assert deleted["latestDateCovered"] <= end.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    assert earlier["deletedRecords"] == []


def test_given_window_end_before_start_when_reading_then_invalid_replication_date(sf):
    now = datetime.now(UTC)

    with pytest.raises(SalesforceMalformedRequest) as failure:
        sf.Account.updated(now, now - timedelta(hours=1))

    assert failure.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"


def test_given_unknown_resource_when_calling_then_404_not_found_in_salesforce_shape(sf):
    response = raw(sf, "GET", "nothing/here")
    unknown_object = raw(sf, "GET", "sobjects/Nothing__c/describe")

    assert response.status_code == 404
    assert response.json() == [
        {"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}
    ]
    assert unknown_object.status_code == 404
    assert response.headers["Sforce-Limit-Info"].startswith("api-usage=")


def test_given_wrong_method_when_calling_then_405(sf):
    response = raw(sf, "PUT", "sobjects/Account")

    assert response.status_code == 405
    assert response.json()[0]["errorCode"] == "METHOD_NOT_ALLOWED"


def test_given_malformed_json_when_creating_then_400_json_parser_error(sf):
    response = raw(
        sf,
        "POST",
        "sobjects/Account",
        data="{not json",
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "JSON_PARSER_ERROR"


def test_given_retired_api_version_when_calling_then_410(sf, crm_sandbox):
    response = requests.get(
        f"{crm_sandbox}/services/data/v20.0/limits",
        headers={"Authorization": f"Bearer {sf.session_id}"},
        timeout=10,
    )
    listing = requests.get(f"{crm_sandbox}/services/data/", timeout=10)

    assert response.status_code == 410
    assert {"version": "59.0", "label": "v59.0", "url": "/services/data/v59.0"} in listing.json()
    assert {"version": "68.0", "label": "v68.0", "url": "/services/data/v68.0"} in listing.json()
    assert {
        "version": "30.0",
        "label": "v30.0",
        "url": "/services/data/v30.0",
    } not in listing.json()


def test_given_short_retention_when_deleted_record_ages_then_purged_from_query_all():

    from sync.sandbox.server import SandboxConfig, SandboxServer

    with SandboxServer(SandboxConfig(seed=1, retention=0.5)) as server:
        sf = simple_salesforce_cc(server.url, "59.0")
        contact = sf.query("SELECT Id FROM Contact LIMIT 1")["records"][0]["Id"]
        sf.Contact.delete(contact)
        soql = f"SELECT Id FROM Contact WHERE Id = '{contact}'"
        right_after = sf.query_all(soql, include_deleted=True)["totalSize"]
        time.sleep(1.6)
        later = sf.query_all(soql, include_deleted=True)["totalSize"]
        with pytest.raises(SalesforceResourceNotFound) as failure:
            sf.Contact.get(contact)

    assert (right_after, later) == (1, 0)
    assert failure.value.content[0]["errorCode"] == "NOT_FOUND"


def test_given_duplicated_external_id_when_upserting_then_300_listing_matches():
    from simple_salesforce.exceptions import SalesforceMoreThanOneRecord

    from sync.sandbox.server import SandboxConfig, SandboxServer

    with SandboxServer(SandboxConfig(seed=1)) as server:
        store = server.store
        rows = store.conn.execute(f'SELECT "Id" FROM "{ORDER}" ORDER BY "Id" LIMIT 2').fetchall()
        with store.transaction() as conn:
            conn.execute(
                f'UPDATE "{ORDER}" SET "Billing_Sync_Key__c" = \'twin\' WHERE "Id" IN (?, ?)',
                (rows[0][0], rows[1][0]),
            )
        sf = simple_salesforce_cc(server.url, "59.0")
        with pytest.raises(SalesforceMoreThanOneRecord) as failure:
            sf.__getattr__(ORDER).upsert("Billing_Sync_Key__c/twin", {"Name": "x"})

    assert failure.value.status == 300
    assert sorted(failure.value.content) == [
        f"/services/data/v59.0/sobjects/{ORDER}/{rows[0][0]}",
        f"/services/data/v59.0/sobjects/{ORDER}/{rows[1][0]}",
    ]


def test_given_changes_when_resetting_then_startup_data_back(sf, crm_sandbox):
    before = sf.query("SELECT COUNT() FROM Account")["totalSize"]
    contacts = sf.query("SELECT COUNT() FROM Contact")["totalSize"]
    created = sf.Account.create({"Name": "Temporary"})["id"]
    sf.Contact.delete(sf.query("SELECT Id FROM Contact ORDER BY Id LIMIT 1")["records"][0]["Id"])

    requests.post(f"{crm_sandbox}/_sandbox/reset", timeout=30).raise_for_status()

    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == before
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == contacts
    with pytest.raises(SalesforceResourceNotFound):
        sf.Account.get(created)
    assert sandbox_stats(crm_sandbox)["api_calls"] == 3


def test_given_keep_alive_client_when_calling_repeatedly_then_no_delayed_ack_stall():
    # with Nagle's algorithm on the server socket every answer with a body waited for the
    # client's delayed ACK of its headers: about 40 ms per call on Linux. The in-process
    # server runs on asyncio's own loop, which only disables Nagle on sockets it sees as
    # TCP (uvloop, which the command line server uses, always does)

    from sync.sandbox.server import SandboxConfig, SandboxServer

    with SandboxServer(SandboxConfig()) as server:
        sf = simple_salesforce_cc(server.url, "59.0")
        http = requests.Session()
        url = f"{server.url}/services/data/v59.0/limits"
        headers = {"Authorization": f"Bearer {sf.session_id}"}
        http.get(url, headers=headers, timeout=10).raise_for_status()
        timings = []
        for _ in range(21):
            started = time.perf_counter()
            http.get(url, headers=headers, timeout=10).raise_for_status()
            timings.append(time.perf_counter() - started)

    assert sorted(timings)[10] < 0.02
