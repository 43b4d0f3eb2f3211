"""CrmClient queries and /composite over mocked HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import responses
from responses import matchers

from sync.crm.client import subresponse_error
from sync.crm.errors import CrmRequestError, TransientCrmError
from tests.unit.crm_mock import DATA, add_json, add_login, data, make_client

PAGE2_URL = f"{DATA}/query/01gD0000002HU6KIAW-2"
SOQL = "SELECT Id, Name, SystemModstamp, IsDeleted FROM Account"


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as m:
        yield m


# ------------------------------------------------------------------- paging


def test_given_two_pages_when_paging_then_follows_next_records_url_with_batch_header(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    batch = matchers.header_matcher({"Sforce-Query-Options": "batchSize=500"})
    add_json(
        mock,
        "GET",
        f"{DATA}/queryAll/",
        data("query_accounts_page1.json"),
        match=[batch, matchers.query_param_matcher({"q": SOQL})],
    )
    add_json(mock, "GET", PAGE2_URL, data("query_accounts_page2.json"), match=[batch])
    client = make_client()

    pages = list(client.query_pages(SOQL, include_deleted=True, batch_size=500))

    assert [p.done for p in pages] == [False, True]
    assert pages[0].next_records_url == "/services/data/v59.0/query/01gD0000002HU6KIAW-2"
    assert pages[1].next_records_url is None
    assert [r["Id"] for p in pages for r in p.records] == [
        "001000000000001AAA",
        "001000000000002AAA",
        "001000000000003AAA",
    ]
    assert pages[0].total_size == 3
    assert pages[1].records[0]["IsDeleted"] is True
    assert pages[0].records[0]["attributes"]["type"] == "Account"  # kept, not stripped
    assert client.api_calls == 2


def test_given_default_options_when_querying_then_uses_query_endpoint_and_2000_batch(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    add_json(
        mock,
        "GET",
        f"{DATA}/query/",
        data("query_count.json"),
        match=[matchers.header_matcher({"Sforce-Query-Options": "batchSize=2000"})],
    )

    pages = list(make_client().query_pages("SELECT COUNT() FROM Account"))

    assert len(pages) == 1
    assert pages[0].total_size == 42


def test_given_failure_on_second_page_when_paging_then_only_that_page_is_retried(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    add_json(mock, "GET", f"{DATA}/query/", data("query_accounts_page1.json"))
    add_json(mock, "GET", PAGE2_URL, data("error_server_unavailable.json"), status=503)
    add_json(mock, "GET", PAGE2_URL, data("query_accounts_page2.json"))
    client = make_client()

    records = [r["Id"] for p in client.query_pages(SOQL) for r in p.records]

    assert len(records) == 3
    urls = [c.request.url for c in mock.calls[1:]]
    assert urls[0].startswith(f"{DATA}/query/?q=")
    assert urls[1:] == [PAGE2_URL, PAGE2_URL]


def test_given_pages_when_consumed_lazily_then_next_page_is_fetched_only_on_demand(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    add_json(mock, "GET", f"{DATA}/query/", data("query_accounts_page1.json"))
    add_json(mock, "GET", PAGE2_URL, data("query_accounts_page2.json"))
    pages = make_client().query_pages(SOQL)

    next(pages)
    assert len(mock.calls) == 2
    next(pages)
    assert len(mock.calls) == 3


def test_given_next_records_url_outside_query_api_when_paging_then_malformed(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    page = data("query_accounts_page1.json") | {"nextRecordsUrl": "https://evil.example/x"}
    add_json(mock, "GET", f"{DATA}/query/", page)
    client = make_client(max_attempts=1)

    with pytest.raises(Exception, match="nextRecordsUrl") as info:
        list(client.query_pages(SOQL))

    assert type(info.value).__name__ == "MalformedResponseError"


@pytest.mark.parametrize("size", [199, 2001, 0])
def test_given_batch_size_out_of_range_when_querying_then_value_error_before_any_call(
    mock: responses.RequestsMock, size: int
) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        next(make_client().query_pages(SOQL, batch_size=size))

    assert len(mock.calls) == 0


def test_given_count_query_when_counting_then_total_size_is_returned(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    add_json(mock, "GET", f"{DATA}/queryAll/", data("query_count.json"))

    assert make_client().query_count("SELECT COUNT() FROM Account", include_deleted=True) == 42


# ---------------------------------------------------------------- composite


def _query(ref: str, soql: str = "SELECT Id FROM Account LIMIT 1") -> dict[str, object]:
    return {"method": "GET", "url": f"/services/data/v59.0/query?q={soql}", "referenceId": ref}


def test_given_query_subrequests_when_composite_then_one_call_returns_items_in_order(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    subrequests = [_query("accounts"), _query("contacts")]
    add_json(
        mock,
        "POST",
        f"{DATA}/composite",
        data("composite_changed.json"),
        match=[matchers.json_params_matcher({"allOrNone": False, "compositeRequest": subrequests})],
    )
    client = make_client()

    items = client.composite(subrequests)

    assert [i["referenceId"] for i in items] == ["accounts", "contacts"]
    assert items[0]["body"]["totalSize"] == 2
    assert client.api_calls == 1


def test_given_26_subrequests_when_composite_then_value_error_and_no_call(
    mock: responses.RequestsMock,
) -> None:
    subrequests = [
        {
            "method": "GET",
            "url": f"/services/data/v59.0/sobjects/Account/{n}",
            "referenceId": f"r{n}",
        }
        for n in range(26)
    ]

    with pytest.raises(ValueError, match="at most 25 subrequests"):
        make_client().composite(subrequests)

    assert len(mock.calls) == 0


def test_given_six_queries_when_composite_then_value_error_and_no_call(
    mock: responses.RequestsMock,
) -> None:
    subrequests = [_query(f"q{n}") for n in range(5)]
    subrequests.append(
        {"method": "GET", "url": "/services/data/v59.0/queryAll/01gXX-2000", "referenceId": "next"}
    )

    with pytest.raises(ValueError, match="at most 5 queries"):
        make_client().composite(subrequests)

    assert len(mock.calls) == 0


def test_given_five_queries_and_twenty_gets_when_composite_then_accepted(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    subrequests = [_query(f"q{n}") for n in range(5)] + [
        {
            "method": "GET",
            "url": f"/services/data/v59.0/sobjects/Account/{n}",
            "referenceId": f"g{n}",
        }
        for n in range(20)
    ]
    answer = {
        "compositeResponse": [
            {"body": {}, "httpHeaders": {}, "httpStatusCode": 200, "referenceId": s["referenceId"]}
            for s in subrequests
        ]
    }
    add_json(mock, "POST", f"{DATA}/composite", answer)

    assert len(make_client().composite(subrequests)) == 25


def test_given_locked_row_in_idempotent_composite_when_called_then_whole_call_is_retried(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    add_json(mock, "POST", f"{DATA}/composite", data("composite_locked.json"))
    add_json(mock, "POST", f"{DATA}/composite", data("composite_updated.json"))
    subrequests = [
        {
            "method": "PATCH",
            "url": f"/services/data/v59.0/sobjects/Account/00100000000000{n}AAA",
            "referenceId": f"update{n}",
            "body": {"Name": f"Acme {n}"},
        }
        for n in (1, 2)
    ]

    items = make_client().composite(subrequests)

    assert [i["httpStatusCode"] for i in items] == [204, 204]


def test_given_locked_row_in_non_atomic_create_when_composite_then_not_resent(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    add_json(mock, "POST", f"{DATA}/composite", data("composite_locked.json"))
    subrequests = [
        {
            "method": "POST",
            "url": "/services/data/v59.0/sobjects/Account",
            "referenceId": f"update{n}",
            "body": {"Name": f"Acme {n}"},
        }
        for n in (1, 2)
    ]

    items = make_client().composite(subrequests)

    error = subresponse_error(items[0])
    assert isinstance(error, TransientCrmError)
    assert error.error_code == "UNABLE_TO_LOCK_ROW"
    assert subresponse_error(items[1]) is None


def test_given_failed_query_subresponse_when_mapped_then_request_error_with_code() -> None:
    item = {
        "body": [{"errorCode": "INVALID_FIELD", "message": "No such column 'Nmae'"}],
        "httpHeaders": {},
        "httpStatusCode": 400,
        "referenceId": "accounts",
    }

    error = subresponse_error(item)

    assert isinstance(error, CrmRequestError)
    assert error.error_code == "INVALID_FIELD"
    assert "accounts" in str(error)


def test_given_subresponse_count_mismatch_when_composite_then_malformed(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    add_json(mock, "POST", f"{DATA}/composite", data("composite_changed.json"))
    client = make_client(max_attempts=1)

    with pytest.raises(Exception, match="2 subresponses for 3 subrequests"):
        client.composite([_query("a"), _query("b"), _query("c")])
