"""The OAuth 2.0 token endpoint: the JWT bearer, client-credentials and password grants.

Every grant is one form POST to ``https://{host}/services/oauth2/token`` through the
session it is given (so the instance-URL rewriting applies). A success is the JSON
``{"access_token", "instance_url", "id", "token_type", "issued_at", "signature"}``; a
failure is ``{"error", "error_description"}`` with HTTP 400, which :func:`refusal` turns
into a sentence an operator can act on (the table :data:`REFUSALS`).

The JWT assertion is signed here with PyJWT (the library simple-salesforce uses): RS256,
``iss`` the consumer key, ``sub`` the username, ``aud`` ``https://{login|test}.salesforce.com``
and ``exp`` at most three minutes ahead, as Salesforce requires. It is written here rather
than through ``simple_salesforce.SalesforceLogin`` because that returns only the token and
host, and the identity URL of the answer names the org and user that ``connect check``
reports.

Secrets: the private key, the consumer secret and the password go into the request body
only; messages are built from the CRM's ``error`` and ``error_description`` and redacted
of them.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import jwt
import orjson
import requests

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

TOKEN_PATH = "/services/oauth2/token"  # noqa: S105 - a URL path
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME = 170.0
"""Seconds until the assertion's ``exp``: Salesforce takes at most three minutes."""
CLOCK_SKEW_TOLERANCE = 60.0
"""Seconds our clock may differ from the org's before a refusal is blamed on it."""


@dataclass(frozen=True)
class TokenAnswer:
    """What a successful token request returned."""

    access_token: str
    instance_url: str
    identity_url: str
    issued_at: str


@dataclass(frozen=True)
class Refusal:
    """One documented refusal: how to recognise it and what the operator should do.

    Attributes:
        error: the OAuth ``error`` code it matches.
        description: a lower-case fragment of ``error_description`` it matches ("" any).
        advice: the sentence for the operator; ``{user}``, ``{key}``, ``{host}``,
            ``{audience}`` and ``{key_file}`` are filled in.
    """

    error: str
    description: str
    advice: str


REFUSALS: tuple[Refusal, ...] = (
    Refusal(
        "invalid_grant",
        "user hasn't approved this consumer",
        "the org has not approved {user} for the app {key}: in the External Client App's "
        "policies choose 'Admin approved users are pre-authorized' and add the integration "
        "user's profile or permission set (a JWT audience that does not match the org, "
        "SALESFORCE_DOMAIN={audience}, is refused with the same words)",
    ),
    Refusal(
        "invalid_grant",
        "audience",
        "the JWT audience {audience} is not this org's: set SALESFORCE_DOMAIN=login for a "
        "production org or test for a sandbox org (the token still goes to "
        "SALESFORCE_MY_DOMAIN={host})",
    ),
    Refusal(
        "invalid_grant",
        "request not supported on this domain",
        "the client-credentials flow works only on the org's My Domain host, not on {host}: "
        "set SALESFORCE_MY_DOMAIN to it (e.g. acme.my.salesforce.com)",
    ),
    Refusal(
        "invalid_grant",
        "no client credentials user enabled",
        "the External Client App has no run-as user for the client-credentials flow: set "
        "one under its OAuth policies (the API-only integration user)",
    ),
    Refusal(
        "invalid_grant",
        "expired",
        "the org found the assertion expired: this machine's clock is probably off (the "
        "assertion is valid for three minutes from now); synchronise it with NTP",
    ),
    Refusal(
        "invalid_grant",
        "user is locked",
        "{user} is locked out or inactive in the org: unlock or activate the user",
    ),
    Refusal(
        "invalid_grant",
        "inactive",
        "{user} is locked out or inactive in the org: unlock or activate the user",
    ),
    Refusal(
        "invalid_grant",
        "invalid assertion",
        "the org could not verify the assertion: SALESFORCE_PRIVATE_KEY_FILE={key_file} is "
        "not the key of the certificate uploaded to the External Client App (upload the "
        "certificate `billing-sync keys generate` wrote beside this key), or the clock of "
        "this machine is off",
    ),
    Refusal(
        "invalid_grant",
        "authentication failure",
        "the org refused the username-password login: new orgs block that flow, External "
        "Client Apps never support it, and it ends for Connected Apps on 2027-02-20; move "
        "to the JWT bearer flow (SALESFORCE_AUTH=jwt)",
    ),
    Refusal(
        "invalid_client_id",
        "",
        "SALESFORCE_CONSUMER_KEY is not the consumer key of an app installed in this org: "
        "copy it from the External Client App's OAuth settings, and check the app is "
        "installed and its JWT bearer (or client credentials) flow enabled",
    ),
    Refusal(
        "invalid_client",
        "",
        "the org refused the consumer key and secret: check SALESFORCE_CONSUMER_SECRET "
        "against the External Client App's OAuth settings",
    ),
    Refusal(
        "invalid_app_access",
        "",
        "{user} is not admin approved to use the app {key}: add the integration user's "
        "profile or permission set to the External Client App's policies",
    ),
    Refusal(
        "unsupported_grant_type",
        "",
        "the org does not offer this login flow on {host}: check SALESFORCE_AUTH and that "
        "the flow is enabled on the External Client App",
    ),
)


def find_refusal(error: str, description: str) -> Refusal | None:
    """The first entry of :data:`REFUSALS` matching an OAuth error answer."""
    text = description.lower()
    for entry in REFUSALS:
        if entry.error == error and entry.description in text:
            return entry
    return None


def jwt_assertion(
    consumer_key: str, username: str, audience: str, private_key: str, *, now: float
) -> str:
    """The signed RS256 assertion of the JWT bearer flow.

    Raises:
        ValueError: ``private_key`` is not a PEM RSA private key (the message never
            holds the key).
    """
    claims = {
        "iss": consumer_key,
        "sub": username,
        "aud": audience,
        "exp": int(now + ASSERTION_LIFETIME),
    }
    try:
        return jwt.encode(claims, private_key, algorithm="RS256")
    except (ValueError, TypeError, jwt.exceptions.PyJWTError) as exc:
        raise ValueError(f"not a PEM RSA private key ({type(exc).__name__})") from None


def request_token(
    session: requests.Session,
    host: str,
    form: Mapping[str, str],
    *,
    who: Mapping[str, str],
    secrets: Sequence[str | None],
    now: Callable[[], float] = time.time,
) -> TokenAnswer:
    """POST ``form`` to the token endpoint of ``host`` and read the answer.

    Args:
        session: the HTTP session.
        host: ``acme.my.salesforce.com`` or ``login.salesforce.com``.
        form: the grant's form fields.
        who: ``user``, ``key``, ``audience``, ``key_file`` for the operator's sentence.
        secrets: values to redact from any message.
        now: the clock (to tell a refusal caused by clock skew).

    Raises:
        LoginError: the org refused; the message says what to change.
        TransientCrmError: 5xx, timeout, reset.
        MalformedResponseError: the answer is not the token JSON.
    """
    where: dict[str, Any] = {"method": "POST", "endpoint": TOKEN_PATH}
    try:
        response = session.post(
            f"https://{host}{TOKEN_PATH}",
            data=dict(form),
            headers={"Accept": "application/json"},
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise error_from_transport(exc, **where) from None
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    status = response.status_code
    if status >= 300:
        if not isinstance(body, dict) or "error" not in body:
            text = redact(snippet(response.content), secrets)
            if resolve(status).resolution is ErrorResolution.RETRY:
                raise TransientCrmError(f"token request failed: {text}", status=status, **where)
            raise LoginError(f"token request refused: {text}", status=status, **where)
        raise _refused(body, status, host, who, secrets, _skew(response, now()), where)
    if not isinstance(body, dict) or not all(
        isinstance(body.get(k), str) for k in ("access_token", "instance_url")
    ):
        raise MalformedResponseError(
            "token answer lacks access_token or instance_url", status=status, **where
        )
    return TokenAnswer(
        access_token=body["access_token"],
        instance_url=body["instance_url"],
        identity_url=str(body.get("id") or ""),
        issued_at=str(body.get("issued_at") or ""),
    )


def _skew(response: requests.Response, now: float) -> float | None:
    """Seconds our clock is ahead of the org's (its ``Date`` header), if it sent one."""
    header = response.headers.get("Date")
    if not header:
        return None
    try:
        theirs = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if theirs.tzinfo is None:
        theirs = theirs.replace(tzinfo=UTC)
    return now - theirs.timestamp()


def _refused(
    body: dict[str, object],
    status: int,
    host: str,
    who: Mapping[str, str],
    secrets: Sequence[str | None],
    skew: float | None,
    where: dict[str, Any],
) -> CrmError:
    error = str(body.get("error") or "")
    description = str(body.get("error_description") or "")
    said = redact(f"{error}: {description}", secrets)
    entry = find_refusal(error, description)
    fill = {"user": "", "key": "", "audience": "", "key_file": "", **who, "host": host}
    if skew is not None and abs(skew) > CLOCK_SKEW_TOLERANCE and error == "invalid_grant":
        advice = (
            f"this machine's clock is {abs(skew):.0f} s "
            f"{'ahead of' if skew > 0 else 'behind'} the org's, and the assertion is valid "
            "for three minutes only: synchronise the clock with NTP"
        )
    elif entry is not None:
        advice = entry.advice.format(**fill)
    else:
        advice = "the org refused the login"
    return LoginError(
        f"{redact(advice, secrets)} (the org said: {snippet(said)})",
        status=status,
        error_code=error or None,
        **where,
    )


def audience_of(domain: str | None) -> str:
    """The JWT ``aud`` for ``SALESFORCE_DOMAIN`` (``login`` when unset)."""
    return f"https://{domain or 'login'}.salesforce.com"
