"""Logging in to the CRM by the configured flow, and sorting its failures.

Three flows, chosen by ``SALESFORCE_AUTH``:

- :class:`JwtLogin`, the JWT bearer flow: an assertion signed with the private key whose
  certificate the External Client App holds, posted to the My Domain host
  (:mod:`sync.crm.oauth`). The production default.
- :class:`ClientCredentialsLogin`: consumer key and secret, on the My Domain host only
  (Salesforce refuses the flow on login.salesforce.com and test.salesforce.com).
- :class:`Credentials`, the legacy password flow: the OAuth password grant when a
  consumer key and secret are configured, else simple-salesforce's SOAP ``login()``.
  SOAP login exists only up to API v64.0, so it is sent at that version whatever the
  REST version is. Both are retired in 2027; :func:`password_flow_warning` says so.

simple-salesforce's SOAP login posts to ``https://{domain}.salesforce.com/services/Soap/u/
{version}`` through the session it is given, reads the unprefixed ``sessionId`` and
``serverUrl`` of the answer, and raises ``SalesforceAuthenticationFailed(code, message)``
otherwise: ``code`` is the SOAP fault's ``exceptionCode`` (``INVALID_LOGIN``, ...) or,
when the answer was not XML, the HTTP status.

Secrets: the private key, the consumer secret, the password and the security token go
into the request body only. Failure messages are built from the CRM's answer, redacted
of all of them, and the library's exception is not chained (its ``content`` is the raw
answer).
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.parsers.expat import ExpatError

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed

from sync.crm import oauth
from sync.crm.errors import (
    CrmConfigurationError,
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
SANDBOX_CONSUMER_KEY = "billing-sync"
SANDBOX_CONSUMER_SECRET = "sandbox-secret"  # noqa: S105
SANDBOX_MY_DOMAIN = "sandbox.my.salesforce.com"
LAST_SOAP_LOGIN_VERSION = "64.0"
"""SOAP ``login()`` is gone from API v65.0 on."""
LEGACY_FLOW_WARNING = (
    "SALESFORCE_AUTH=password: the OAuth username-password flow is blocked in orgs created "
    "since Summer '23, unsupported by External Client Apps and stops working for Connected "
    "Apps on 2027-02-20; SOAP login() is gone in API v65.0+ and retired for older versions "
    "with Summer '27. Move to the JWT bearer flow (SALESFORCE_AUTH=jwt, keys from "
    "`billing-sync keys generate`) or client credentials on the My Domain host"
)


@dataclass(frozen=True)
class Credentials:
    """A username-password login (``security_token`` empty when the org trusts our IP).

    With ``consumer_key`` and ``consumer_secret`` it is the OAuth password grant,
    otherwise SOAP ``login()``.
    """

    username: str
    password: str = field(repr=False)
    security_token: str = field(default="", repr=False)
    domain: str | None = None
    consumer_key: str | None = None
    consumer_secret: str | None = field(default=None, repr=False)

    flow = "password"

    @classmethod
    def sandbox(cls) -> Credentials:
        """The embedded sandbox's password login (for a sandbox that allows it)."""
        return cls(SANDBOX_USERNAME, SANDBOX_PASSWORD, SANDBOX_SECURITY_TOKEN)

    @property
    def who(self) -> str:
        """Whom the login is for, for messages."""
        return self.username

    def cache_key(self) -> str:
        """What tells this login's token from another deployment's (no secret in it)."""
        return f"password:{self.domain or 'login'}:{self.username}"


@dataclass(frozen=True)
class JwtLogin:
    """The JWT bearer flow: an External Client App's consumer key and its private key.

    Attributes:
        consumer_key: the app's consumer key (the assertion's ``iss``).
        username: the integration user (``sub``).
        private_key: PEM of the RSA private key (never shown).
        key_file: where the key was read from, for messages.
        domain: ``login`` or ``test``: the audience.
        token_host: where the token is requested (the My Domain host).
    """

    consumer_key: str
    username: str
    private_key: str = field(repr=False)
    key_file: str = ""
    domain: str = "login"
    token_host: str = "login.salesforce.com"  # noqa: S105 - a host name

    flow = "jwt"

    @property
    def who(self) -> str:
        """Whom the login is for, for messages."""
        return self.username

    def cache_key(self) -> str:
        """What tells this login's token from another deployment's (no secret in it)."""
        return f"jwt:{self.token_host}:{self.consumer_key}:{self.username}"


@dataclass(frozen=True)
class ClientCredentialsLogin:
    """The client-credentials flow: consumer key and secret, on the My Domain host."""

    consumer_key: str
    consumer_secret: str = field(repr=False)
    my_domain: str = SANDBOX_MY_DOMAIN

    flow = "client_credentials"

    @classmethod
    def sandbox(cls) -> ClientCredentialsLogin:
        """The embedded sandbox's default login (its published app, on its My Domain)."""
        return cls(SANDBOX_CONSUMER_KEY, SANDBOX_CONSUMER_SECRET, SANDBOX_MY_DOMAIN)

    @property
    def who(self) -> str:
        """Whom the login is for, for messages: the app (the org picks the run-as user)."""
        return f"the app {self.consumer_key}"

    def cache_key(self) -> str:
        """What tells this login's token from another deployment's (no secret in it)."""
        return f"client_credentials:{self.my_domain}:{self.consumer_key}"


LoginMethod = Credentials | JwtLogin | ClientCredentialsLogin


@dataclass(frozen=True)
class Authentication:
    """A logged-in session: the bearer token and the instance host to send requests to.

    Attributes:
        session_id: the access token.
        instance: host (and port) of the token answer's ``instance_url``.
        flow: ``jwt``, ``client_credentials`` or ``password``.
        identity_url: the answer's ``id`` (empty for SOAP login).
        issued_at: the answer's ``issued_at`` (epoch milliseconds as text).
    """

    session_id: str = field(repr=False)
    instance: str
    flow: str = "password"
    identity_url: str = ""
    issued_at: str = ""


def read_private_key(path: str) -> str:
    """The PEM text of ``SALESFORCE_PRIVATE_KEY_FILE``; warns when others may read it.

    Raises:
        CrmConfigurationError: the file is missing, unreadable or not a PEM private key.
    """
    try:
        mode = os.stat(path).st_mode
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CrmConfigurationError(
            f"SALESFORCE_PRIVATE_KEY_FILE={path} cannot be read: {type(exc).__name__}"
        ) from None
    if "PRIVATE KEY-----" not in text:
        raise CrmConfigurationError(
            f"SALESFORCE_PRIVATE_KEY_FILE={path} holds no PEM private key "
            "(make one with `billing-sync keys generate`)"
        )
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning(
            "SALESFORCE_PRIVATE_KEY_FILE=%s can be read by group or others (mode %o): chmod 600 it",
            path,
            stat.S_IMODE(mode),
        )
    return text


def password_flow_warning() -> str:
    """The start warning of the legacy password flow: the dates and the flow to move to."""
    return LEGACY_FLOW_WARNING


def login(
    method: LoginMethod,
    session: requests.Session,
    api_version: str,
    *,
    now: Callable[[], float] = time.time,
) -> Authentication:
    """Log in once by ``method``'s flow (no retry here: the caller's policy decides).

    Raises:
        LoginError: the CRM refused the login; the message says what to change.
        TransientCrmError: the login endpoint failed transiently (5xx, timeout, reset).
        MalformedResponseError: the answer was not what the flow expects.
    """
    if isinstance(method, JwtLogin):
        try:
            assertion = oauth.jwt_assertion(
                method.consumer_key,
                method.username,
                oauth.audience_of(method.domain),
                method.private_key,
                now=now(),
            )
        except ValueError as exc:
            raise CrmConfigurationError(
                f"SALESFORCE_PRIVATE_KEY_FILE={method.key_file}: {exc}"
            ) from None
        answer = oauth.request_token(
            session,
            method.token_host,
            {"grant_type": oauth.JWT_GRANT, "assertion": assertion},
            who={
                "user": method.username,
                "key": method.consumer_key,
                "audience": method.domain,
                "key_file": method.key_file,
            },
            secrets=(),
            now=now,
        )
        return _authenticated(answer, method)
    if isinstance(method, ClientCredentialsLogin):
        answer = oauth.request_token(
            session,
            method.my_domain,
            {
                "grant_type": "client_credentials",
                "client_id": method.consumer_key,
                "client_secret": method.consumer_secret,
            },
            who={"user": method.who, "key": method.consumer_key},
            secrets=(method.consumer_secret,),
            now=now,
        )
        return _authenticated(answer, method)
    if method.consumer_key and method.consumer_secret:
        answer = oauth.request_token(
            session,
            f"{method.domain or 'login'}.salesforce.com",
            {
                "grant_type": "password",
                "client_id": method.consumer_key,
                "client_secret": method.consumer_secret,
                "username": method.username,
                "password": method.password + method.security_token,
            },
            who={"user": method.username, "key": method.consumer_key},
            secrets=(method.consumer_secret, method.password, method.security_token),
            now=now,
        )
        return _authenticated(answer, method)
    return _soap_login(method, session, min(api_version, LAST_SOAP_LOGIN_VERSION, key=float))


def _authenticated(answer: oauth.TokenAnswer, method: LoginMethod) -> Authentication:
    instance = answer.instance_url.removeprefix("https://").removeprefix("http://").rstrip("/")
    logger.info("logged in to the CRM by %s as %s (instance %s)", method.flow, method.who, instance)
    return Authentication(
        session_id=answer.access_token,
        instance=instance,
        flow=method.flow,
        identity_url=answer.identity_url,
        issued_at=answer.issued_at,
    )


def _soap_login(
    credentials: Credentials, session: requests.Session, api_version: str
) -> Authentication:
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
    return Authentication(session_id=sf.session_id, instance=sf.sf_instance, flow="password")


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
    if error_code == "INVALID_OPERATION":
        # v65.0+ has no login(), and orgs created since Winter '26 have it off.
        return LoginError(
            "the org does not offer SOAP login() (gone in API v65.0+, off by default in "
            "orgs created since Winter '26, retired with Summer '27): move to the JWT bearer "
            f"flow, SALESFORCE_AUTH=jwt (the org said: {snippet(message)})",
            error_code=error_code,
            **where,
        )
    rule = resolve(None, error_code, message)
    if rule.resolution is ErrorResolution.RETRY:
        return TransientCrmError(f"login failed: {message}", error_code=error_code, **where)
    return LoginError(
        f"login as {credentials.username} refused: {message}", error_code=error_code, **where
    )
