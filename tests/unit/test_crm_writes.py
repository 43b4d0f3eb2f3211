"""CrmClient record and sObject Collections writes over mocked HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import requests
import responses
from responses import matchers

from sync.crm.errors import ConflictError, CrmRequestError, TransientCrmError
from tests.unit.crm_mock import DATA, add_json, add_login, data, make_client

ACCOUNT_ID = "001000000000001AAA"
ACCOUNT_URL = f"{DATA}/sobjects/Account/{ACCOUNT_ID}"
COLLECTIONS = f"{DATA}/composite/sobjects"


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as m:
        yield m


def sent_json(call: responses.Call) -> Any:
    body = call.request.body
    assert body is not None
    return json.loads(body)


# ------------------------------------------------------------ single records


def test_given_record_when_get_with_fields_then_fields_param_is_sent(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    add_json(
        mock,
        "GET",
        ACCOUNT_URL,
        {"Id": ACCOUNT_ID, "Name": "Acme"},
        match=[matchers.query_param_matcher({"fields": "Id,Name"})],
    )

    assert make_client().get("Account", ACCOUNT_ID, fields=["Id", "Name"])["Name"] == "Acme"


def test_given_missing_record_when_get_then_not_found_request_error(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    add_json(mock, "GET", ACCOUNT_URL, data("error_not_found.json"), status=404)

    with pytest.raises(CrmRequestError) as info:
        make_client().get("Account", ACCOUNT_ID)

    assert info.value.status == 404
    assert info.value.error_code == "NOT_FOUND"


@pytest.mark.parametrize("bad", ["001' OR 1=1", "../limits", "", "0010000000000"])
def test_given_malformed_id_when_get_then_value_error_before_any_call(
    mock: responses.RequestsMock, bad: str
) -> None:
    with pytest.raises(ValueError, match="record Id"):
        make_client().get("Account", bad)


def test_given_fields_when_create_then_returns_new_id(mock: responses.RequestsMock) -> None:
    add_login(mock)
    add_json(
        mock,
        "POST",
        f"{DATA}/sobjects/Account",
        data("create_ok.json"),
        status=201,
        match=[matchers.json_params_matcher({"Name": "Acme"})],
    )

    assert make_client().create("Account", {"Name": "Acme"}) == "001000000000009AAA"


def test_given_read_timeout_when_create_then_not_resent(mock: responses.RequestsMock) -> None:
    add_login(mock)
    mock.add(responses.POST, f"{DATA}/sobjects/Account", body=requests.ReadTimeout("slow"))

    with pytest.raises(TransientCrmError) as info:
        make_client(max_attempts=5).create("Account", {"Name": "Acme"})

    assert info.value.ambiguous
    assert len(mock.calls) == 2  # login + one create: a second might duplicate the record


def test_given_refused_connection_when_create_then_resent(mock: responses.RequestsMock) -> None:
    add_login(mock)
    refused = requests.ConnectionError(ConnectionRefusedError(111, "Connection refused"))
    mock.add(responses.POST, f"{DATA}/sobjects/Account", body=refused)
    add_json(mock, "POST", f"{DATA}/sobjects/Account", data("create_ok.json"), status=201)

    assert make_client().create("Account", {"Name": "Acme"}) == "001000000000009AAA"


def test_given_if_unmodified_since_when_update_then_http_date_header_is_sent(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    mock.add(
        responses.PATCH,
        ACCOUNT_URL,
        status=204,
        match=[
            matchers.header_matcher({"If-Unmodified-Since": "Sun, 22 Nov 2026 10:00:00 GMT"}),
            matchers.json_params_matcher({"Name": "Acme Corp"}),
        ],
    )
    since = datetime(2026, 11, 22, 11, 0, 0, 500000, tzinfo=timezone(timedelta(hours=1)))

    make_client().update("Account", ACCOUNT_ID, {"Name": "Acme Corp"}, if_unmodified_since=since)


def test_given_record_changed_since_when_update_then_conflict_error(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    add_json(mock, "PATCH", ACCOUNT_URL, data("error_precondition_failed.json"), status=412)
    client = make_client(max_attempts=5)

    with pytest.raises(ConflictError) as info:
        client.update(
            "Account",
            ACCOUNT_ID,
            {"Name": "Acme Corp"},
            if_unmodified_since=datetime(2026, 11, 22, 10, tzinfo=UTC),
        )

    assert info.value.status == 412
    assert isinstance(info.value, CrmRequestError)
    assert client.api_calls == 1


def test_given_412_with_empty_body_when_update_then_conflict_error(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    mock.add(responses.PATCH, ACCOUNT_URL, status=412, body=b"")

    with pytest.raises(ConflictError):
        make_client().update(
            "Account", ACCOUNT_ID, {"Name": "X"}, if_unmodified_since=datetime.now(UTC)
        )


def test_given_naive_datetime_when_update_then_value_error(mock: responses.RequestsMock) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_client().update(
            "Account", ACCOUNT_ID, {"Name": "X"}, if_unmodified_since=datetime(2026, 1, 1)
        )


def test_given_record_when_delete_then_no_content_is_fine(mock: responses.RequestsMock) -> None:
    add_login(mock)
    mock.add(responses.DELETE, ACCOUNT_URL, status=204)

    make_client().delete("Account", ACCOUNT_ID)


@pytest.mark.parametrize(
    ("status", "fixture", "created"),
    [(201, "upsert_created.json", True), (200, "upsert_updated.json", False)],
)
def test_given_external_id_when_upsert_then_id_and_created_flag(
    mock: responses.RequestsMock, status: int, fixture: str, created: bool
) -> None:
    add_login(mock)
    url = f"{DATA}/sobjects/Apttus_Config2__Order__c/Billing_Sync_Key__c/key%2F1%20a"
    add_json(mock, "PATCH", url, data(fixture), status=status)

    result = make_client().upsert(
        "Apttus_Config2__Order__c", "Billing_Sync_Key__c", "key/1 a", {"Name": "Order 1"}
    )

    assert result == ("a01000000000001AAA", created)


# ------------------------------------------------------------- collections


def _echo_results(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
    records = json.loads(request.body or b"{}")["records"]
    results = [
        {"id": f"001{r['Name'][-12:]:0>12}AAA", "success": True, "errors": []} for r in records
    ]
    return 200, {}, json.dumps(results)


def test_given_450_records_when_collection_create_then_three_calls_and_ordered_results(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    mock.add_callback(responses.POST, COLLECTIONS, callback=_echo_results)
    records = [{"Name": f"{n:012d}"} for n in range(450)]
    client = make_client()

    results = client.collection_create("Account", records)

    sizes = [len(sent_json(c)["records"]) for c in mock.calls[1:]]
    assert sizes == [200, 200, 50]
    assert [r.id for r in results] == [f"001{n:012d}AAA" for n in range(450)]
    assert all(r.success for r in results)
    first = sent_json(mock.calls[1])
    assert first["allOrNone"] is False
    assert first["records"][0] == {"attributes": {"type": "Account"}, "Name": "000000000000"}
    assert client.api_calls == 3


def test_given_locked_record_when_collection_update_then_only_it_is_resent(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    locked = {
        "success": False,
        "errors": [
            {"statusCode": "UNABLE_TO_LOCK_ROW", "message": "unable to obtain exclusive access"}
        ],
    }
    ok = {"id": "001000000000002AAA", "success": True, "errors": []}
    add_json(
        mock, "PATCH", COLLECTIONS, [{"id": ACCOUNT_ID, "success": True, "errors": []}, locked]
    )
    add_json(mock, "PATCH", COLLECTIONS, [ok])
    records = [{"Id": ACCOUNT_ID, "Name": "A"}, {"Id": "001000000000002AAA", "Name": "B"}]
    sleeps: list[float] = []
    client = make_client(sleeps=None)
    client.retry = type(client.retry)(
        max_attempts=3, initial_wait=0, max_wait=0, sleep=sleeps.append
    )

    results = client.collection_update("Account", records)

    assert [r.success for r in results] == [True, True]
    assert [r["Id"] for r in sent_json(mock.calls[2])["records"]] == ["001000000000002AAA"]
    assert len(sleeps) == 1


def test_given_record_locked_past_the_cap_when_collection_update_then_returned_as_failure(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    locked = {
        "success": False,
        "errors": [{"statusCode": "UNABLE_TO_LOCK_ROW", "message": "locked", "fields": []}],
    }
    add_json(mock, "PATCH", COLLECTIONS, [{"id": ACCOUNT_ID, "success": True}, locked])
    add_json(mock, "PATCH", COLLECTIONS, [locked])

    results = make_client(max_attempts=2).collection_update(
        "Account", [{"Id": ACCOUNT_ID, "Name": "A"}, {"Id": "001000000000002AAA", "Name": "B"}]
    )

    assert results[0].success
    assert not results[1].success
    assert results[1].transient
    assert results[1].errors[0].status_code == "UNABLE_TO_LOCK_ROW"


def test_given_validation_error_per_record_when_collection_upsert_then_mapped_not_retried(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    answer = [
        {"id": "a01000000000001AAA", "success": True, "errors": [], "created": True},
        {
            "success": False,
            "errors": [
                {
                    "statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                    "message": "Amount must be positive",
                    "fields": ["Apttus_Config2__OrderAmount__c"],
                }
            ],
        },
    ]
    add_json(mock, "PATCH", f"{COLLECTIONS}/Apttus_Config2__Order__c/Billing_Sync_Key__c", answer)
    records = [
        {"Billing_Sync_Key__c": "k1", "Name": "O1"},
        {"Billing_Sync_Key__c": "k2", "Apttus_Config2__OrderAmount__c": -1},
    ]

    results = make_client().collection_upsert(
        "Apttus_Config2__Order__c", "Billing_Sync_Key__c", records
    )

    assert results[0].created is True
    assert not results[1].success
    assert not results[1].transient
    assert results[1].errors[0].fields == ("Apttus_Config2__OrderAmount__c",)
    assert "Amount must be positive" in results[1].error_text


def test_given_record_without_external_id_when_collection_upsert_then_value_error(
    mock: responses.RequestsMock,
) -> None:
    with pytest.raises(ValueError, match="Billing_Sync_Key__c"):
        make_client().collection_upsert(
            "Apttus_Config2__Order__c", "Billing_Sync_Key__c", [{"Name": "no key"}]
        )


def test_given_all_or_none_over_200_records_when_collection_create_then_value_error(
    mock: responses.RequestsMock,
) -> None:
    with pytest.raises(ValueError, match="all_or_none"):
        make_client().collection_create(
            "Account", [{"Name": str(n)} for n in range(201)], all_or_none=True
        )


def test_given_ids_when_collection_delete_then_ids_param_and_ordered_results(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    ids = [ACCOUNT_ID, "001000000000002AAA"]
    add_json(
        mock,
        "DELETE",
        COLLECTIONS,
        [{"id": i, "success": True, "errors": []} for i in ids],
        match=[matchers.query_param_matcher({"ids": ",".join(ids), "allOrNone": "false"})],
    )

    results = make_client().collection_delete(ids)

    assert [r.id for r in results] == ids


def test_given_result_count_mismatch_when_collection_create_then_malformed(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    add_json(mock, "POST", COLLECTIONS, [{"id": ACCOUNT_ID, "success": True}])

    with pytest.raises(Exception, match="1 results for 2 records"):
        make_client(max_attempts=1).collection_create("Account", [{"Name": "a"}, {"Name": "b"}])


def test_given_decimal_amount_when_create_then_sent_as_exact_json_number(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    add_json(mock, "POST", f"{DATA}/sobjects/Apttus_Config2__Order__c", data("create_ok.json"))

    make_client().create(
        "Apttus_Config2__Order__c",
        {"Apttus_Config2__OrderAmount__c": Decimal("1234567890123456.78"), "Name": "O-1"},
    )

    assert mock.calls[1].request.body == (
        b'{"Apttus_Config2__OrderAmount__c":1234567890123456.78,"Name":"O-1"}'
    )


def test_given_update_answered_with_unexpected_body_when_updating_then_body_is_ignored(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    mock.add(responses.PATCH, ACCOUNT_URL, status=200, body=b"<html>ok</html>")

    make_client(max_attempts=1).update("Account", ACCOUNT_ID, {"Name": "X"})

    assert len(mock.calls) == 2
