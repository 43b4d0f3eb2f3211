"""The sandbox logs clients in as a 2027 org does, through simple-salesforce's own code paths.

JWT bearer (the assertion checked against the registered certificate), client credentials
on the My Domain host only, the refresh-token grant, the password flow blocked, SOAP
login gone in v65.0+ and off before, retired API versions answering 410.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from pathlib import Path

import jwt
import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed

from sync.commands.keys import generate_key_pair
from sync.crm.session import make_session
from tests.support.sandbox import (
    MY_DOMAIN,
    jwt_keys,
    simple_salesforce,
    simple_salesforce_cc,
)

USERNAME = "admin@sandbox.local"
SECRET = "sandbox-secret"
SOAP_LOGIN = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/">'
    '<env:Body><n1:login xmlns:n1="urn:partner.soap.sforce.com">'
    "<n1:username>admin@sandbox.local</n1:username>"
    "<n1:password>sandboxsandbox-token</n1:password>"
    "</n1:login></env:Body></env:Envelope>"
)


def policy(url: str, **settings: object) -> None:
    requests.post(f"{url}/_sandbox/auth", json=settings, timeout=10).raise_for_status()


def token(url: str, host: str, form: dict[str, str]) -> requests.Response:
    """POST ``form`` to the token endpoint of ``host`` (rewritten to the sandbox)."""
    return make_session(url).post(f"https://{host}/services/oauth2/token", data=form)


def assertion(
    *,
    key_file: Path | None = None,
    iss: str = "billing-sync",
    sub: str = USERNAME,
    aud: str = "https://login.salesforce.com",
    exp: float | None = None,
) -> str:
    key = (key_file or jwt_keys().key_file).read_text()
    claims = {"iss": iss, "sub": sub, "aud": aud, "exp": int(exp or time.time() + 120)}
    return jwt.encode(claims, key, algorithm="RS256")


def jwt_grant(url: str, signed: str) -> requests.Response:
    form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": signed}
    return token(url, "login.salesforce.com", form)


def test_given_registered_certificate_when_simple_salesforce_jwt_login_then_queries_work(
    crm_sandbox,
):
    sf = simple_salesforce(crm_sandbox)

    assert sf.sf_instance == MY_DOMAIN
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 25


def test_given_jwt_grant_when_answered_then_fields_and_signature_are_salesforce_s(crm_sandbox):
    response = jwt_grant(crm_sandbox, assertion())
    body = response.json()

    assert response.status_code == 200
    assert body["token_type"] == "Bearer"
    assert body["instance_url"] == f"https://{MY_DOMAIN}"
    assert "refresh_token" not in body
    expected = base64.b64encode(
        hmac.new(
            SECRET.encode(), (body["id"] + body["issued_at"]).encode(), hashlib.sha256
        ).digest()
    ).decode()
    assert body["signature"] == expected
    identity = make_session(crm_sandbox).get(
        body["id"], headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert identity.status_code == 200
    assert identity.json()["username"] == USERNAME
    assert identity.json()["organization_id"].startswith("00D")


def test_given_no_token_when_reading_identity_then_refused(crm_sandbox):
    body = jwt_grant(crm_sandbox, assertion()).json()

    answer = make_session(crm_sandbox).get(body["id"])

    assert answer.status_code == 403


@pytest.mark.parametrize(
    ("make", "setting", "error", "description"),
    [
        (
            lambda: assertion(aud="https://test.salesforce.com"),
            {},
            "invalid_grant",
            "audience is invalid",
        ),
        (
            lambda: assertion(exp=time.time() - 5),
            {},
            "invalid_grant",
            "expired access/refresh token",
        ),
        (lambda: assertion(exp=time.time() + 600), {}, "invalid_grant", "invalid assertion"),
        (
            lambda: assertion(iss="someone-else"),
            {},
            "invalid_client_id",
            "client identifier invalid",
        ),
        (
            lambda: assertion(sub="nobody@example.com"),
            {},
            "invalid_grant",
            "user hasn't approved this consumer",
        ),
        (lambda: assertion(), {"user_active": False}, "invalid_grant", "user is locked"),
        (
            lambda: assertion(),
            {"approval": "self_authorize"},
            "invalid_grant",
            "user hasn't approved this consumer",
        ),
        (
            lambda: assertion(),
            {"approval": "not_admin_approved"},
            "invalid_app_access",
            "user is not admin approved to access this app",
        ),
        (lambda: "not.a.jwt", {}, "invalid_grant", "invalid assertion"),
    ],
    ids=[
        "audience",
        "expired",
        "too-far-ahead",
        "unknown-app",
        "unknown-user",
        "locked",
        "not-approved",
        "not-admin-approved",
        "garbage",
    ],
)
def test_given_bad_assertion_or_org_policy_when_jwt_grant_then_documented_error(
    crm_sandbox, make, setting, error, description
):
    if setting:
        policy(crm_sandbox, **setting)

    response = jwt_grant(crm_sandbox, make())

    assert response.status_code == 400
    assert response.json() == {"error": error, "error_description": description}


def test_given_key_not_matching_certificate_when_jwt_grant_then_invalid_assertion(
    crm_sandbox, tmp_path
):
    other = generate_key_pair(tmp_path)

    response = jwt_grant(crm_sandbox, assertion(key_file=other.key_file))

    assert response.json() == {"error": "invalid_grant", "error_description": "invalid assertion"}


def test_given_my_domain_when_simple_salesforce_client_credentials_then_queries_work(
    crm_sandbox,
):
    sf = simple_salesforce_cc(crm_sandbox)

    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 25


@pytest.mark.parametrize("host", ["login.salesforce.com", "test.salesforce.com"])
def test_given_login_host_when_client_credentials_then_not_supported_on_this_domain(
    crm_sandbox, host
):
    form = {
        "grant_type": "client_credentials",
        "client_id": "billing-sync",
        "client_secret": SECRET,
    }

    response = token(crm_sandbox, host, form)

    assert response.status_code == 400
    assert response.json()["error_description"] == "request not supported on this domain"


def test_given_no_run_as_user_when_client_credentials_then_documented_error(crm_sandbox):
    policy(crm_sandbox, run_as_user=False)
    form = {
        "grant_type": "client_credentials",
        "client_id": "billing-sync",
        "client_secret": SECRET,
    }

    response = token(crm_sandbox, MY_DOMAIN, form)

    assert response.json()["error_description"] == "no client credentials user enabled"


def test_given_new_org_when_password_grant_then_blocked_until_allowed(crm_sandbox):
    with pytest.raises(SalesforceAuthenticationFailed) as blocked:
        Salesforce(
            username=USERNAME,
            password="sandboxsandbox-token",
            consumer_key="billing-sync",
            consumer_secret=SECRET,
            session=make_session(crm_sandbox),
            version="59.0",
        )
    policy(crm_sandbox, allow_password_flow=True)
    allowed = Salesforce(
        username=USERNAME,
        password="sandboxsandbox-token",
        consumer_key="billing-sync",
        consumer_secret=SECRET,
        session=make_session(crm_sandbox),
        version="59.0",
    )

    assert blocked.value.code == "invalid_grant"
    assert allowed.query("SELECT COUNT() FROM Account")["totalSize"] == 25


def test_given_refresh_token_from_web_server_flow_when_refreshing_then_new_access_token(
    crm_sandbox,
):
    issued = requests.post(f"{crm_sandbox}/_sandbox/refresh-token", timeout=10).json()
    form = {
        "grant_type": "refresh_token",
        "client_id": "billing-sync",
        "client_secret": SECRET,
        "refresh_token": issued["refresh_token"],
    }

    good = token(crm_sandbox, "login.salesforce.com", form)
    bad = token(crm_sandbox, "login.salesforce.com", {**form, "refresh_token": "5Aep-unknown"})

    assert good.status_code == 200
    assert {"access_token", "instance_url", "id", "issued_at", "signature"} <= set(good.json())
    assert bad.json() == {
        "error": "invalid_grant",
        "error_description": "expired access/refresh token",
    }


@pytest.mark.parametrize("version", ["65.0", "68.0"])
def test_given_v65_or_later_when_soap_login_then_invalid_operation(crm_sandbox, version):
    policy(crm_sandbox, soap_login=True)

    answer = requests.post(
        f"{crm_sandbox}/services/Soap/u/{version}",
        data=SOAP_LOGIN,
        headers={"Content-Type": "text/xml", "SOAPAction": "login"},
        timeout=10,
    )

    assert answer.status_code == 500
    assert "<sf:exceptionCode>INVALID_OPERATION</sf:exceptionCode>" in answer.text
    assert f"not available in the API version specified ({version})" in answer.text


def test_given_new_org_when_soap_login_before_v65_then_disabled(crm_sandbox):
    with pytest.raises(SalesforceAuthenticationFailed) as failure:
        Salesforce(
            username=USERNAME,
            password="sandbox",
            security_token="sandbox-token",
            session=make_session(crm_sandbox),
            version="59.0",
        )

    assert failure.value.code == "INVALID_OPERATION"
    assert "disabled by default in this org" in str(failure.value)


def test_given_retired_version_when_calling_rest_then_410_and_versions_listed(sf, crm_sandbox):
    gone = requests.get(
        f"{crm_sandbox}/services/data/v30.0/limits",
        headers={"Authorization": f"Bearer {sf.session_id}"},
        timeout=10,
    )
    listing = requests.get(f"{crm_sandbox}/services/data/", timeout=10).json()

    assert gone.status_code == 410
    versions = [v["version"] for v in listing]
    assert versions[0] == "31.0"
    assert versions[-1] == "68.0"
