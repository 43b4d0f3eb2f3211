"""API limits, usage headers and injected faults of the sandbox."""

from __future__ import annotations

import time

import pytest
import requests
from simple_salesforce.exceptions import (
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
)

from tests.support.sandbox import sandbox_stats, set_faults, simple_salesforce


def test_given_calls_when_reading_limits_then_daily_api_requests_and_api_usage_agree(sf):
    sf.query("SELECT Id FROM Account LIMIT 1")
    limits = sf.limits()

    used = limits["DailyApiRequests"]["Max"] - limits["DailyApiRequests"]["Remaining"]
    assert limits["DailyApiRequests"]["Max"] == 100_000
    assert used == 2
    assert sf.api_usage["api-usage"].used == 2
    assert sf.api_usage["api-usage"].total == 100_000


def test_given_daily_limit_when_exhausted_then_403_request_limit_exceeded_and_not_counted(
    sf, crm_sandbox
):
    set_faults(crm_sandbox, daily_limit=3)
    for _ in range(3):
        sf.query("SELECT Id FROM Account LIMIT 1")

    with pytest.raises(SalesforceRefusedRequest) as failure:
        sf.query("SELECT Id FROM Account LIMIT 1")

    assert failure.value.status == 403
    assert failure.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    assert sandbox_stats(crm_sandbox)["api_calls"] == 3
    requests.delete(f"{crm_sandbox}/_sandbox/faults", timeout=10).raise_for_status()
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 25


def test_given_server_unavailable_fault_when_calling_then_503(sf, crm_sandbox):
    set_faults(crm_sandbox, error_rate=1.0, errors=["SERVER_UNAVAILABLE"])

    with pytest.raises(SalesforceGeneralError) as failure:
        sf.query("SELECT Id FROM Account")

    assert failure.value.status == 503
    assert failure.value.content[0]["errorCode"] == "SERVER_UNAVAILABLE"


def test_given_lock_fault_when_calling_then_400_unable_to_lock_row(sf, crm_sandbox):
    set_faults(crm_sandbox, error_rate=1.0, errors=["UNABLE_TO_LOCK_ROW"])

    with pytest.raises(SalesforceMalformedRequest) as failure:
        sf.Account.create({"Name": "Locked"})

    assert failure.value.content[0]["errorCode"] == "UNABLE_TO_LOCK_ROW"


def test_given_limit_fault_when_calling_then_403_refused(sf, crm_sandbox):
    set_faults(crm_sandbox, error_rate=1.0, errors=["REQUEST_LIMIT_EXCEEDED"])

    with pytest.raises(SalesforceRefusedRequest):
        sf.limits()


def test_given_partial_error_rate_when_calling_many_times_then_some_fail(sf, crm_sandbox):
    set_faults(crm_sandbox, error_rate=0.5, errors=["SERVER_UNAVAILABLE"], seed=11)
    outcomes = []
    for _ in range(40):
        try:
            sf.limits()
            outcomes.append(True)
        except SalesforceGeneralError:
            outcomes.append(False)

    assert 5 < outcomes.count(False) < 35
    assert sandbox_stats(crm_sandbox)["api_calls"] == 40


def test_given_latency_fault_when_calling_then_answer_is_delayed(sf, crm_sandbox):
    set_faults(crm_sandbox, latency_ms=300)

    started = time.perf_counter()
    sf.limits()
    elapsed = time.perf_counter() - started

    assert elapsed >= 0.3


def test_given_faults_when_cleared_then_calls_succeed_again(sf, crm_sandbox):
    set_faults(crm_sandbox, error_rate=1.0, latency_ms=10)
    response = requests.delete(f"{crm_sandbox}/_sandbox/faults", timeout=10)

    assert response.json()["error_rate"] == 0.0
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 25


def test_given_faults_when_logging_in_or_calling_hooks_then_unaffected_and_uncounted(
    sf, crm_sandbox
):

    set_faults(crm_sandbox, error_rate=1.0)

    again = simple_salesforce(crm_sandbox, "59.0")

    assert again.session_id
    assert sandbox_stats(crm_sandbox)["api_calls"] == 0


@pytest.mark.parametrize(
    "spec",
    [{"error_rate": 2}, {"errors": ["NOPE"]}, {"latency_ms": -1}, {"surprise": 1}],
)
def test_given_bad_fault_settings_when_posting_then_400(crm_sandbox, spec):
    response = requests.post(f"{crm_sandbox}/_sandbox/faults", json=spec, timeout=10)

    assert response.status_code == 400


def test_given_every_response_when_inspecting_headers_then_sforce_limit_info(sf, crm_sandbox):
    sf.query("SELECT Id FROM Account LIMIT 1")
    response = requests.get(
        f"{crm_sandbox}/services/data/v59.0/sobjects/Account/001nope",
        headers={"Authorization": f"Bearer {sf.session_id}"},
        timeout=10,
    )

    assert response.status_code == 404
    assert response.headers["Sforce-Limit-Info"] == "api-usage=2/100000"
