"""Sandbox logins and sessions, driven with simple-salesforce over real HTTP."""

from __future__ import annotations

import time

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed, SalesforceExpiredSession

from sync.crm.session import make_session
from sync.sandbox.server import SandboxConfig, SandboxServer
from tests.support.sandbox import sandbox_stats

USERNAME = "admin@sandbox.local"
PASSWORD = "sandbox"
TOKEN = "sandbox-token"


@pytest.fixture(autouse=True)
def legacy_logins(crm_sandbox):
    """These tests drive the legacy flows: an org that still allows them (reset after)."""
    requests.post(
        f"{crm_sandbox}/_sandbox/auth",
        json={"soap_login": True, "allow_password_flow": True},
        timeout=10,
    ).raise_for_status()


def login(url: str, **kwargs) -> Salesforce:
    params = {"username": USERNAME, "password": PASSWORD, "security_token": TOKEN}
    params.update(kwargs)
    return Salesforce(session=make_session(url), version="59.0", **params)


def test_given_default_credentials_when_soap_login_then_session_and_instance_point_at_sandbox(
    crm_sandbox,
):
    sf = login(crm_sandbox)

    assert sf.sf_instance == crm_sandbox.removeprefix("http://")
    assert sf.session_id.startswith("00D")
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 25
    assert sandbox_stats(crm_sandbox)["by_endpoint"]["login"] == 1


def test_given_wrong_password_when_soap_login_then_authentication_failed_invalid_login(
    crm_sandbox,
):
    with pytest.raises(SalesforceAuthenticationFailed) as failure:
        login(crm_sandbox, password="wrong")

    assert failure.value.code == "INVALID_LOGIN"
    assert "Invalid username, password, security token" in str(failure.value)


def test_given_missing_security_token_when_soap_login_then_refused(crm_sandbox):
    with pytest.raises(SalesforceAuthenticationFailed):
        login(crm_sandbox, security_token="")


def test_given_login_when_counting_api_calls_then_login_is_not_an_api_call(crm_sandbox):
    sf = login(crm_sandbox)
    sf.query("SELECT Id FROM Account LIMIT 1")

    stats = sandbox_stats(crm_sandbox)
    assert stats["api_calls"] == 1
    assert stats["by_endpoint"] == {"login": 1, "query": 1}


def test_given_expired_sessions_when_querying_then_simple_salesforce_logs_in_again(crm_sandbox):
    sf = login(crm_sandbox)
    old_session = sf.session_id
    requests.post(f"{crm_sandbox}/_sandbox/expire-sessions", timeout=10).raise_for_status()

    result = sf.query("SELECT Id FROM Account LIMIT 2")

    assert len(result["records"]) == 2
    assert sf.session_id != old_session
    assert sandbox_stats(crm_sandbox)["by_endpoint"]["login"] == 2


def test_given_session_id_only_client_when_session_expired_then_expired_session_error(
    crm_sandbox,
):
    sf = login(crm_sandbox)
    bare = Salesforce(
        instance=sf.sf_instance,
        session_id=sf.session_id,
        session=make_session(crm_sandbox),
        version="59.0",
    )
    requests.post(f"{crm_sandbox}/_sandbox/expire-sessions", timeout=10).raise_for_status()

    with pytest.raises(SalesforceExpiredSession) as failure:
        bare.query("SELECT Id FROM Account")

    assert failure.value.status == 401
    assert failure.value.content == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]


def test_given_no_or_unknown_token_when_calling_rest_then_401_invalid_session(crm_sandbox):
    no_token = requests.get(f"{crm_sandbox}/services/data/v59.0/limits", timeout=10)
    bad_token = requests.get(
        f"{crm_sandbox}/services/data/v59.0/limits",
        headers={"Authorization": "Bearer 00Dnope!nope"},
        timeout=10,
    )

    for response in (no_token, bad_token):
        assert response.status_code == 401
        assert response.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    assert sandbox_stats(crm_sandbox)["api_calls"] == 0


def test_given_short_session_ttl_when_idle_longer_then_session_expires():
    with SandboxServer(SandboxConfig(session_ttl=0.5, soap_login=True)) as server:
        sf = login(server.url)
        token = sf.session_id
        sf.query("SELECT Id FROM Account")
        time.sleep(0.8)

        response = requests.get(
            f"{server.url}/services/data/v59.0/limits",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )

    assert response.status_code == 401


def test_given_oauth_password_grant_when_logging_in_then_queries_work(crm_sandbox):
    sf = Salesforce(
        username=USERNAME,
        password=PASSWORD + TOKEN,
        consumer_key="billing-sync",
        consumer_secret="sandbox-secret",
        session=make_session(crm_sandbox),
        version="59.0",
    )

    # The token answer names the org's My Domain instance; the session rewrites it.
    assert sf.sf_instance == "sandbox.my.salesforce.com"
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] > 0


def test_given_oauth_client_credentials_grant_when_logging_in_then_queries_work(crm_sandbox):
    sf = Salesforce(
        consumer_key="billing-sync",
        consumer_secret="sandbox-secret",
        domain="sandbox",
        session=make_session(crm_sandbox),
        version="59.0",
    )

    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 25


@pytest.mark.parametrize(
    ("form", "error"),
    [
        (
            {
                "grant_type": "password",
                "client_id": "billing-sync",
                "client_secret": "sandbox-secret",
                "username": USERNAME,
                "password": "bad",
            },
            "invalid_grant",
        ),
        (
            {
                "grant_type": "client_credentials",
                "client_id": "billing-sync",
                "client_secret": "wrong",
            },
            "invalid_client",
        ),
        (
            {
                "grant_type": "client_credentials",
                "client_id": "someone-else",
                "client_secret": "sandbox-secret",
            },
            "invalid_client_id",
        ),
        ({"grant_type": "authorization_code"}, "unsupported_grant_type"),
    ],
)
def test_given_bad_oauth_request_when_requesting_token_then_400_with_oauth_error(
    crm_sandbox, form, error
):
    response = requests.post(f"{crm_sandbox}/services/oauth2/token", data=form, timeout=10)

    assert response.status_code == 400
    assert response.json()["error"] == error


def test_given_bad_client_secret_when_simple_salesforce_oauth_then_authentication_failed(
    crm_sandbox,
):
    with pytest.raises(SalesforceAuthenticationFailed) as failure:
        Salesforce(
            consumer_key="billing-sync",
            consumer_secret="nope",
            domain="sandbox",
            session=make_session(crm_sandbox),
            version="59.0",
        )

    assert failure.value.code == "invalid_client"
