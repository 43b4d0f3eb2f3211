"""CrmClient over mocked HTTP: login, session renewal, error sorting, retries, metering."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest
import requests
import responses

from sync.crm.client import CrmClient
from sync.crm.errors import (
    CrmConfigurationError,
    CrmRequestError,
    LoginError,
    MalformedResponseError,
    RequestLimitExceededError,
    SessionExpiredError,
    TransientCrmError,
)
from sync.crm.retry import RetryPolicy
from sync.crm.session import make_session
from sync.crm.usage import ApiUsage
from sync.settings import Settings
from tests.unit.crm_mock import (
    DATA,
    INSTANCE_URL,
    LOGIN_URL,
    PASSWORD,
    TOKEN,
    Sleeps,
    add_json,
    add_login,
    data,
    login_body,
    make_client,
    text,
)

LIMITS = f"{DATA}/limits"


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as m:
        yield m


def data_calls(mock: responses.RequestsMock) -> list[responses.Call]:
    return [c for c in mock.calls if "/services/data/" in (c.request.url or "")]


# ---------------------------------------------------------------------- login


def test_given_valid_credentials_when_first_request_then_logs_in_once_over_rewritten_url(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock, "SESSION-A")
    add_json(mock, "GET", LIMITS, data("limits.json"))
    add_json(mock, "GET", LIMITS, data("limits.json"))
    client = make_client()

    client.limits()
    client.limits()

    assert client.logins == 1
    assert mock.calls[0].request.url == LOGIN_URL
    assert mock.calls[1].request.url == LIMITS
    assert mock.calls[2].request.headers["Authorization"] == "Bearer SESSION-A"


def test_given_no_instance_url_when_requesting_then_real_salesforce_hosts_are_used(
    mock: responses.RequestsMock,
) -> None:
    mock.add(
        responses.POST,
        "https://login.salesforce.com/services/Soap/u/59.0",
        body=login_body("SESSION-A"),
        content_type="text/xml",
    )
    mock.add(
        responses.GET,
        "https://na1.salesforce.com/services/data/v59.0/limits",
        json=data("limits.json"),
    )
    client = CrmClient(
        make_client().credentials,
        session=make_session(),
        api_version="59.0",
        retry=RetryPolicy(max_attempts=1),
    )

    assert client.limits()["DailyApiRequests"]["Max"] == 15000


def test_given_bad_credentials_when_logging_in_then_login_error_without_retry_or_secrets(
    mock: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    mock.add(
        responses.POST,
        LOGIN_URL,
        body=text("login_invalid.xml"),
        status=500,
        content_type="text/xml",
    )
    client = make_client(max_attempts=5)
    caplog.set_level(logging.DEBUG)

    with pytest.raises(LoginError) as info:
        client.limits()

    assert info.value.error_code == "INVALID_LOGIN"
    assert "Invalid username, password" in str(info.value)
    assert len(mock.calls) == 1
    exposed = f"{info.value}\n{info.value!r}\n{info.value.__cause__}\n{caplog.text}\n{client!r}"
    assert PASSWORD not in exposed
    assert TOKEN not in exposed


def test_given_a_login_answer_echoing_the_password_when_refused_then_it_is_redacted(
    mock: responses.RequestsMock,
) -> None:
    fault = text("login_invalid.xml").replace(
        "Invalid username, password, security token; or user locked out.",
        f"bad password {PASSWORD}{TOKEN}",
    )
    mock.add(responses.POST, LOGIN_URL, body=fault, status=500, content_type="text/xml")

    with pytest.raises(LoginError) as info:
        make_client().login()

    assert PASSWORD not in str(info.value)
    assert TOKEN not in str(info.value)
    assert "***" in str(info.value)


def test_given_login_endpoint_502_then_ok_when_logging_in_then_login_is_retried(
    mock: responses.RequestsMock,
) -> None:
    mock.add(responses.POST, LOGIN_URL, body=text("proxy_error.html"), status=502)
    add_login(mock)
    sleeps = Sleeps()
    client = make_client(sleeps=sleeps)

    client.login()

    assert client.logins == 1
    assert len(sleeps.waits) == 1


def test_given_expired_session_when_requesting_then_logs_in_again_and_resends(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock, "SESSION-OLD")
    add_json(mock, "GET", LIMITS, data("error_invalid_session.json"), status=401)
    add_login(mock, "SESSION-NEW")
    add_json(mock, "GET", LIMITS, data("limits.json"))
    sleeps = Sleeps()
    client = make_client(sleeps=sleeps)

    result = client.limits()

    assert result["DailyApiRequests"]["Remaining"] == 14990
    assert client.logins == 2
    assert mock.calls[3].request.headers["Authorization"] == "Bearer SESSION-NEW"
    assert sleeps.waits == []  # renewing a session is not an outage: no backoff
    assert client.api_calls == 1  # the 401 never reached the API


def test_given_session_rejected_even_after_renewal_when_requesting_then_bounded_then_raises(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock, "S1")
    for renewed in ("S2", "S3"):  # each attempt: 401, log in again, 401 again
        add_json(mock, "GET", LIMITS, data("error_invalid_session.json"), status=401)
        add_login(mock, renewed)
        add_json(mock, "GET", LIMITS, data("error_invalid_session.json"), status=401)
    client = make_client(max_attempts=2)

    with pytest.raises(SessionExpiredError):
        client.limits()

    assert len(data_calls(mock)) == 4
    assert client.logins == 3


# ------------------------------------------------------------- error sorting


def test_given_request_limit_exceeded_when_requesting_then_raises_at_once_with_usage(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    add_json(mock, "GET", LIMITS, data("error_request_limit.json"), status=403, usage="15000/15000")
    sleeps = Sleeps()
    client = make_client(max_attempts=5, sleeps=sleeps)

    with pytest.raises(RequestLimitExceededError) as info:
        client.limits()

    assert info.value.status == 403
    assert info.value.error_code == "REQUEST_LIMIT_EXCEEDED"
    assert len(data_calls(mock)) == 1
    assert sleeps.waits == []
    assert client.api_usage == ApiUsage(used=15000, max=15000)
    assert client.api_calls == 0  # a refused request is not counted by the org


def test_given_concurrent_request_limit_then_ok_when_requesting_then_retried(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    add_json(mock, "GET", LIMITS, data("error_concurrent_limit.json"), status=403)
    add_json(mock, "GET", LIMITS, data("limits.json"))

    assert make_client().limits()["DailyApiRequests"]["Max"] == 15000


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (503, data("error_server_unavailable.json")),
        (500, [{"errorCode": "UNKNOWN_EXCEPTION", "message": "An unexpected error occurred"}]),
        (400, data("error_unable_to_lock_row.json")),
    ],
    ids=["503", "500", "unable-to-lock-row"],
)
def test_given_transient_failure_then_success_when_requesting_then_retried_after_a_logged_wait(
    mock: responses.RequestsMock,
    caplog: pytest.LogCaptureFixture,
    status: int,
    body: object,
) -> None:
    add_login(mock)
    add_json(mock, "GET", LIMITS, body, status=status)
    add_json(mock, "GET", LIMITS, data("limits.json"), usage="7/15000")
    sleeps = Sleeps()
    client = make_client(sleeps=sleeps)
    caplog.set_level(logging.WARNING, logger="sync.crm")

    result = client.limits()

    assert result["DailyApiRequests"]["Max"] == 15000
    assert len(sleeps.waits) == 1
    assert 0 <= sleeps.waits[0] <= 0.05
    assert "Retrying" in caplog.text
    assert "/services/data/v59.0/limits" in caplog.text
    assert client.api_calls == 2


@pytest.mark.parametrize(
    "failure",
    [
        requests.ConnectionError("Connection reset by peer"),
        requests.ReadTimeout("read timed out"),
        requests.ConnectTimeout("connect timed out"),
        requests.exceptions.ChunkedEncodingError("truncated chunk"),
    ],
    ids=["reset", "read-timeout", "connect-timeout", "truncated"],
)
def test_given_transport_failure_then_success_when_reading_then_retried(
    mock: responses.RequestsMock, failure: Exception
) -> None:
    add_login(mock)
    mock.add(responses.GET, LIMITS, body=failure)
    add_json(mock, "GET", LIMITS, data("limits.json"))
    client = make_client()

    assert client.limits()["DailyApiRequests"]["Max"] == 15000
    assert client.api_calls == 1  # the failed send got no answer to count


def test_given_persistent_5xx_when_requesting_then_gives_up_after_max_attempts(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    for _ in range(3):
        add_json(mock, "GET", LIMITS, data("error_server_unavailable.json"), status=503)
    sleeps = Sleeps()
    client = make_client(max_attempts=3, sleeps=sleeps)

    with pytest.raises(TransientCrmError) as info:
        client.limits()

    assert info.value.status == 503
    assert info.value.error_code == "SERVER_UNAVAILABLE"
    assert len(data_calls(mock)) == 3
    assert len(sleeps.waits) == 2


def test_given_invalid_field_when_querying_then_request_error_with_code_and_no_retry(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    add_json(mock, "GET", f"{DATA}/query/", data("error_invalid_field.json"), status=400)
    client = make_client(max_attempts=5)

    with pytest.raises(CrmRequestError) as info:
        next(client.query_pages("SELECT Id, Nmae FROM Account"))

    assert info.value.status == 400
    assert info.value.error_code == "INVALID_FIELD"
    assert "No such column 'Nmae'" in info.value.message
    assert len(data_calls(mock)) == 1


def test_given_validation_failure_when_updating_then_fields_are_reported(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    url = f"{DATA}/sobjects/Account/001000000000001AAA"
    add_json(mock, "PATCH", url, data("error_validation.json"), status=400)

    with pytest.raises(CrmRequestError) as info:
        make_client().update("Account", "001000000000001AAA", {"Billing_Email__c": "x@gmail.com"})

    assert info.value.error_code == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert info.value.fields == ["Billing_Email__c"]
    assert "Billing_Email__c" in str(info.value)


# ------------------------------------------------------------- garbage answers


def test_given_html_200_then_json_when_requesting_then_retried_once(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    mock.add(responses.GET, LIMITS, body=text("proxy_error.html"), content_type="text/html")
    add_json(mock, "GET", LIMITS, data("limits.json"))

    assert make_client().limits()["DailyApiRequests"]["Max"] == 15000


def test_given_always_garbage_when_requesting_then_malformed_error_names_endpoint_after_cap(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    for _ in range(3):
        mock.add(responses.GET, LIMITS, body=b"garbage", content_type="application/json")
    client = make_client(max_attempts=3)

    with pytest.raises(MalformedResponseError) as info:
        client.limits()

    assert "GET /services/data/v59.0/limits" in str(info.value)
    assert "not JSON" in str(info.value)
    assert "garbage" in str(info.value)
    assert len(data_calls(mock)) == 3


def test_given_truncated_json_then_json_when_paging_then_retried(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    whole = text("query_count.json")
    mock.add(responses.GET, f"{DATA}/query/", body=whole[: len(whole) // 2])
    mock.add(responses.GET, f"{DATA}/query/", body=whole)

    assert make_client().query_count("SELECT COUNT() FROM Account") == 42


def test_given_wrong_shape_when_querying_then_malformed_error_says_what_is_missing(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    for _ in range(2):
        add_json(mock, "GET", f"{DATA}/query/", {"totalSize": 1, "done": True})
    client = make_client(max_attempts=2)

    with pytest.raises(MalformedResponseError) as info:
        next(client.query_pages("SELECT Id FROM Account"))

    assert "'records' is missing" in str(info.value)
    assert "/services/data/v59.0/query/" in str(info.value)


def test_given_502_html_page_when_requesting_then_transient_and_retried(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    mock.add(responses.GET, LIMITS, body=text("proxy_error.html"), status=502)
    add_json(mock, "GET", LIMITS, data("limits.json"))

    assert make_client().limits()["DailyApiRequests"]["Max"] == 15000


def test_given_404_html_page_when_requesting_then_malformed_without_retry(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    mock.add(responses.GET, LIMITS, body="<html>Not Found</html>", status=404)

    with pytest.raises(MalformedResponseError) as info:
        make_client(max_attempts=5).limits()

    assert info.value.status == 404
    assert "body is not JSON" in str(info.value)
    assert len(data_calls(mock)) == 1


# ------------------------------------------------------------------ metering


def test_given_limit_info_headers_when_requesting_then_usage_and_calls_are_kept(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    add_json(mock, "GET", LIMITS, data("limits.json"), usage="10/15000")
    add_json(mock, "GET", LIMITS, data("limits.json"), usage="11/15000")
    client = make_client()
    assert client.api_usage is None

    client.limits()
    client.limits()

    assert client.api_usage == ApiUsage(used=11, max=15000)
    assert client.api_usage.remaining == 14989
    assert client.api_calls == 2


def test_given_successful_requests_when_logging_at_debug_then_session_id_never_appears(
    mock: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    add_login(mock, "SECRET-SESSION-ID")
    add_json(mock, "GET", LIMITS, data("error_invalid_session.json"), status=401)
    add_login(mock, "SECRET-SESSION-ID-2")
    add_json(mock, "GET", LIMITS, data("limits.json"))
    caplog.set_level(logging.DEBUG)

    make_client().limits()

    assert "SECRET-SESSION-ID" not in caplog.text
    assert PASSWORD not in caplog.text


# ------------------------------------------------------------------ settings


def test_given_no_login_and_no_sandbox_when_from_settings_then_names_missing_variables() -> None:
    with pytest.raises(CrmConfigurationError) as info:
        CrmClient.from_settings(Settings())

    assert "SALESFORCE_USERNAME and SALESFORCE_PASSWORD are not set" in str(info.value)


def test_given_username_without_password_when_from_settings_then_names_the_password() -> None:
    with pytest.raises(CrmConfigurationError) as info:
        CrmClient.from_settings(Settings(salesforce_username="ops@example.com"))

    assert "SALESFORCE_PASSWORD is not set" in str(info.value)
    assert "SALESFORCE_USERNAME is" not in str(info.value).split(":")[1]


def test_given_sandbox_url_when_from_settings_then_sandbox_login_goes_to_it(
    mock: responses.RequestsMock,
) -> None:
    # The sandbox's default login is its published app by client credentials, on its My
    # Domain host (a 2027 org has neither SOAP login nor the password flow).
    mock.add(
        responses.POST,
        f"{INSTANCE_URL}/services/oauth2/token",
        json={
            "access_token": "SANDBOX-SESSION",
            "instance_url": "https://sandbox.my.salesforce.com",
            "id": "https://sandbox.my.salesforce.com/id/00D/005",
            "token_type": "Bearer",
            "issued_at": "1",
            "signature": "x",
        },
        match=[
            responses.matchers.header_matcher({"X-Forwarded-Host": "sandbox.my.salesforce.com"})
        ],
    )
    client = CrmClient.from_settings(Settings(), sandbox_url=INSTANCE_URL + "/")

    client.login()

    sent = mock.calls[0].request.body
    assert isinstance(sent, str | bytes)
    sent_text = sent.decode() if isinstance(sent, bytes) else sent
    assert "grant_type=client_credentials" in sent_text
    assert "client_id=billing-sync" in sent_text
    assert client.authentication is not None
    assert client.authentication.instance == "sandbox.my.salesforce.com"
    client.close()


def test_given_settings_with_instance_url_when_from_settings_then_requests_are_rewritten(
    mock: responses.RequestsMock,
) -> None:
    add_login(mock)
    add_json(mock, "GET", LIMITS, data("limits.json"))
    settings = Settings(
        salesforce_username="ops@example.com",
        salesforce_password="pw",
        salesforce_security_token="tok",
        salesforce_instance_url=INSTANCE_URL,
        salesforce_api_version="59.0",
    )
    client = CrmClient.from_settings(settings, retry=RetryPolicy(max_attempts=1))

    client.limits()

    assert [c.request.url for c in mock.calls] == [LOGIN_URL, LIMITS]


def test_given_plain_requests_session_when_requesting_then_a_timeout_is_still_sent(
    mock: responses.RequestsMock,
) -> None:
    mock.add(
        responses.POST,
        "https://login.salesforce.com/services/Soap/u/59.0",
        body=login_body("S"),
        content_type="text/xml",
    )
    mock.add(responses.GET, "https://na1.salesforce.com/services/data/v59.0/limits", json={})
    client = CrmClient(make_client().credentials, session=requests.Session(), api_version="59.0")

    client.limits()

    assert mock.calls[1].request.req_kwargs["timeout"] == (10.0, 120.0)


def test_given_many_threads_hit_an_expired_session_when_requesting_then_one_renewal(
    mock: responses.RequestsMock,
) -> None:
    sessions: list[str] = []
    lock = threading.Lock()

    def soap_login(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        with lock:
            sessions.append(f"SESSION-{len(sessions) + 1}")
            return 200, {"Content-Type": "text/xml"}, login_body(sessions[-1])

    def limits(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        if request.headers["Authorization"] == "Bearer SESSION-1":
            return 401, {}, text("error_invalid_session.json")
        return 200, {}, text("limits.json")

    mock.add_callback(responses.POST, LOGIN_URL, callback=soap_login)
    mock.add_callback(responses.GET, LIMITS, callback=limits)
    client = make_client()
    client.login()
    barrier = threading.Barrier(8)
    answers: list[object] = []

    def worker() -> None:
        barrier.wait()
        answers.append(client.limits())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert len(answers) == 8
    assert sessions == ["SESSION-1", "SESSION-2"]
    assert client.logins == 2
