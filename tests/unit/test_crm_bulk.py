"""The Bulk API 2.0 query client over mocked HTTP: create, poll with backoff, pages, delete."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import responses
from responses import matchers

from sync.crm.bulk import (
    BulkJobFailed,
    BulkJobTimeout,
    BulkQueries,
    backoff_delays,
    parse_csv_page,
)
from sync.crm.errors import CrmRequestError, ErrorResolution
from tests.unit.crm_mock import DATA, add_json, add_login, data, make_client, text

JOBS = f"{DATA}/jobs/query"
JOB_ID = "7505g000001ABCDAAA"
SOQL = "SELECT Id, Name, IsDeleted, SystemModstamp, Amount__c FROM Account"


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as m:
        yield m


class FakeTime:
    """A clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def job(state: str, **extra: object) -> dict[str, object]:
    return {**data("bulk_job_created.json"), "state": state, **extra}


def bulk(client, fake: FakeTime, **kwargs) -> BulkQueries:
    return BulkQueries(client, sleep=fake.sleep, clock=fake.clock, **kwargs)


def test_given_backoff_when_iterated_then_doubles_up_to_cap() -> None:
    delays = backoff_delays(0.5, 5.0)

    assert [next(delays) for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_given_job_when_created_then_query_all_csv_body(mock: responses.RequestsMock) -> None:
    add_login(mock)
    add_json(
        mock,
        "POST",
        JOBS,
        data("bulk_job_created.json"),
        match=[
            matchers.json_params_matcher(
                {
                    "operation": "queryAll",
                    "query": SOQL,
                    "contentType": "CSV",
                    "columnDelimiter": "COMMA",
                    "lineEnding": "LF",
                }
            )
        ],
    )
    client = make_client()

    created = bulk(client, FakeTime()).create(SOQL, include_deleted=True)

    assert created.id == JOB_ID
    assert created.state == "UploadComplete"
    assert client.api_calls == 1


def test_given_refused_query_when_created_then_request_error_not_retried(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    body = [{"errorCode": "API_ERROR", "message": "GROUP BY is not supported"}]
    add_json(mock, "POST", JOBS, body, status=400)

    with pytest.raises(CrmRequestError) as caught:
        bulk(make_client(), FakeTime()).create(SOQL)

    assert caught.value.error_code == "API_ERROR"
    assert caught.value.resolution is ErrorResolution.FAIL


def test_given_running_job_when_waiting_then_polls_with_backoff_until_complete(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    for state in ("InProgress", "InProgress", "InProgress", "JobComplete"):
        add_json(mock, "GET", f"{JOBS}/{JOB_ID}", job(state, numberRecordsProcessed=2))
    fake = FakeTime()
    client = make_client()

    done = bulk(client, fake).wait(job_from("UploadComplete"))

    assert done.state == "JobComplete"
    assert done.records_processed == 2
    assert fake.sleeps == [0.5, 1.0, 2.0, 4.0]
    assert client.api_calls == 4


def job_from(state: str):
    from sync.crm.bulk import BulkJob

    return BulkJob.from_json(job(state))


def test_given_failed_job_when_waiting_then_raises_with_error_message(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    add_json(mock, "GET", f"{JOBS}/{JOB_ID}", job("Failed", errorMessage="InternalServerError"))

    with pytest.raises(BulkJobFailed) as caught:
        bulk(make_client(), FakeTime()).wait(job_from("UploadComplete"))

    assert "InternalServerError" in str(caught.value)
    assert caught.value.job is not None and caught.value.job.state == "Failed"


def test_given_job_past_give_up_time_when_waiting_then_aborted(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    for _ in range(3):
        add_json(mock, "GET", f"{JOBS}/{JOB_ID}", job("InProgress"))
    add_json(
        mock,
        "PATCH",
        f"{JOBS}/{JOB_ID}",
        job("Aborted"),
        match=[matchers.json_params_matcher({"state": "Aborted"})],
    )
    fake = FakeTime()

    with pytest.raises(BulkJobTimeout) as caught:
        bulk(make_client(), fake, give_up=3.0).wait(job_from("UploadComplete"))

    assert fake.sleeps == [0.5, 1.0, 1.5]  # the last wait ends at the give-up time
    assert caught.value.job is not None and caught.value.job.state == "Aborted"


def test_given_two_pages_when_reading_then_follows_locator_and_parses_csv(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    mock.add(
        "GET",
        f"{JOBS}/{JOB_ID}/results",
        body=text("bulk_results_page1.csv"),
        headers={"Sforce-NumberOfRecords": "2", "Sforce-Locator": "MTAwMDA"},
        content_type="text/csv",
        match=[matchers.query_param_matcher({"maxRecords": "2"})],
    )
    mock.add(
        "GET",
        f"{JOBS}/{JOB_ID}/results",
        body='"Id","Name","IsDeleted","SystemModstamp","Amount__c"\n',
        headers={"Sforce-NumberOfRecords": "0", "Sforce-Locator": "null"},
        content_type="text/csv",
        match=[matchers.query_param_matcher({"maxRecords": "2", "locator": "MTAwMDA"})],
    )

    pages = list(bulk(make_client(), FakeTime(), page_size=2).pages(job_from("JobComplete")))

    assert [p.locator for p in pages] == ["MTAwMDA", None]
    first = list(pages[0].rows)
    assert pages[0].header == ["Id", "Name", "IsDeleted", "SystemModstamp", "Amount__c"]
    assert first[0][1] == 'Acme, "the" first\nline two'
    assert first[1] == ["001000000000002AAA", "", "true", "2026-11-22T10:00:01.000Z", ""]
    assert list(pages[1].rows) == []


def test_given_page_without_record_count_when_read_then_malformed(
    mock: responses.RequestsMock,
) -> None:
    from sync.crm.errors import MalformedResponseError

    add_login(mock)
    mock.add("GET", f"{JOBS}/{JOB_ID}/results", body='"Id"\n', content_type="text/csv")

    with pytest.raises(MalformedResponseError):
        bulk(make_client(), FakeTime()).page(JOB_ID, None)


def test_given_finished_job_when_finishing_then_deleted_without_abort(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    mock.add("DELETE", f"{JOBS}/{JOB_ID}", status=204)

    bulk(make_client(), FakeTime()).finish(job_from("JobComplete"))


def test_given_csv_with_nul_and_ragged_row_when_parsed_then_nul_dropped_and_row_refused() -> None:
    header, rows = parse_csv_page(b'"Id","Name"\n"a","b\x00c"\n')
    assert header == ["Id", "Name"]
    assert list(rows) == [["a", "bc"]]

    _, ragged = parse_csv_page(b'"Id","Name"\n"a"\n')
    with pytest.raises(ValueError, match="1 values for 2 columns"):
        list(ragged)
