"""Logging in to the CRM, with simple-salesforce's SOAP login, and sorting its failures.

simple-salesforce posts the SOAP ``login()`` envelope to
``https://{domain}.salesforce.com/services/Soap/u/{version}`` through the session it is
given (so the instance-URL rewriting applies), reads the unprefixed ``sessionId`` and
``serverUrl`` of the answer, and raises ``SalesforceAuthenticationFailed(code, message)``
otherwise: ``code`` is the SOAP fault's ``exceptionCode`` (``INVALID_LOGIN``, ...) or,
when the answer was not XML, the HTTP status.

Secrets: the password and security token go into the request body only. Failure
messages are built from the CRM's answer, redacted of both, and the library's exception
is not chained (its ``content`` is the raw answer).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any
from xml.parsers.expat import ExpatError

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed

from sync.crm.errors import (
    CrmError,
    ErrorResolution,
    LoginError,
    MalformedResponseError,
    TransientCrmError,
    error_from_transport,
    redact,
    resolve,
    snippet,
)

logger = logging.getLogger("sync.crm")

# The embedded sandbox's login (the defaults of `billing-sync sandbox`); public by design.
SANDBOX_USERNAME = "admin@sandbox.local"
SANDBOX_PASSWORD = "sandbox"  # noqa: S105
SANDBOX_SECURITY_TOKEN = "sandbox-token"  # noqa: S105


@dataclass(frozen=True)
class Credentials:
    """A username-password login (``security_token`` empty when the org trusts our IP)."""

    username: str
    password: str = field(repr=False)
    security_token: str = field(default="", repr=False)
    domain: str | None = None

    @classmethod
    def sandbox(cls) -> Credentials:
        """The embedded sandbox's default login."""
        return cls(SANDBOX_USERNAME, SANDBOX_PASSWORD, SANDBOX_SECURITY_TOKEN)


@dataclass(frozen=True)
class Authentication:
    """A logged-in session: the bearer token and the instance host to send requests to."""

    session_id: str = field(repr=False)
    instance: str


def login(credentials: Credentials, session: requests.Session, api_version: str) -> Authentication:
    """Log in once (no retry here: the caller's policy decides).

    Raises:
        LoginError: the CRM refused the login (bad credentials, locked user, login rate
            exceeded); retrying cannot help.
        TransientCrmError: the login endpoint failed transiently (5xx, timeout, reset).
        MalformedResponseError: the answer was not the SOAP envelope expected.
    """
    endpoint = f"/services/Soap/u/{api_version}"
    try:
        sf = Salesforce(
            username=credentials.username,
            password=credentials.password,
            security_token=credentials.security_token,
            domain=credentials.domain,
            version=api_version,
            session=session,
        )
    except SalesforceAuthenticationFailed as exc:
        raise _login_failure(exc, credentials, endpoint) from None
    except ExpatError:
        # A 200 that is not XML (a proxy's page): simple-salesforce's parser gives up.
        raise MalformedResponseError(
            "login answer is not XML",
            resolution=ErrorResolution.RETRY,
            method="POST",
            endpoint=endpoint,
        ) from None
    except requests.RequestException as exc:
        raise error_from_transport(exc, method="POST", endpoint=endpoint) from None
    logger.info("logged in to the CRM as %s (instance %s)", credentials.username, sf.sf_instance)
    return Authentication(session_id=sf.session_id, instance=sf.sf_instance)


def _login_failure(
    exc: SalesforceAuthenticationFailed, credentials: Credentials, endpoint: str
) -> CrmError:
    message = redact(
        str(exc.auth_message or "no message"), (credentials.password, credentials.security_token)
    )
    where: dict[str, Any] = {"method": "POST", "endpoint": endpoint}
    code = exc.code
    if isinstance(code, int) or (isinstance(code, str) and code.isdigit()):
        # The answer was not a SOAP fault; sort it by its HTTP status.
        status = int(code)
        if resolve(status).resolution is ErrorResolution.RETRY:
            return TransientCrmError(f"login failed: {snippet(message)}", status=status, **where)
        return LoginError(
            f"login as {credentials.username} refused: {snippet(message)}", status=status, **where
        )
    if code == "UNKNOWN_EXCEPTION_CODE":
        # simple-salesforce's label for a 200 whose XML has neither sessionId nor fault.
        return MalformedResponseError(
            "login answer has neither sessionId nor fault",
            resolution=ErrorResolution.RETRY,
            **where,
        )
    error_code = str(code) if code else None
    rule = resolve(None, error_code, message)
    if rule.resolution is ErrorResolution.RETRY:
        return TransientCrmError(f"login failed: {message}", error_code=error_code, **where)
    return LoginError(
        f"login as {credentials.username} refused: {message}", error_code=error_code, **where
    )
