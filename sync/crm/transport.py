"""How CRM requests are sent: login, one attempt, sorting, metering, the retry loop.

:mod:`sync.crm.auth` logs in by the configured flow (JWT bearer, client credentials, or
the legacy password flow), over our session, so :func:`~sync.crm.session.make_session`'s
URL rewriting applies to it too; the token is kept in a
:class:`~sync.crm.tokens.TokenStore` shared by every process of the deployment, and
requests go to the host of the token answer's ``instance_url``. Data requests are sent
by :meth:`CrmTransport._send`
over the same session with the session id as bearer token, rather than through
simple-salesforce's ``_call_salesforce``, because that method decides on its own what a
failure means: it logs in again up to four times, recursively, on a 401
INVALID_SESSION_ID, indexes every 401 body as a JSON list (a proxy's 401 page raises a
decoding error), reads the usage header only from successful answers, and turns every
other failure into exceptions that no longer say whether a retry is safe. Here every
answer is sorted by the one table in :mod:`sync.crm.errors` and retried by the one
policy in :mod:`sync.crm.retry`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Self
from urllib.parse import quote

import orjson
import requests

from sync.crm.answers import WrongShape
from sync.crm.auth import Authentication, LoginMethod, login
from sync.crm.errors import (
    CrmError,
    ErrorResolution,
    MalformedResponseError,
    TransientCrmError,
    error_from_answer,
    error_from_transport,
    snippet,
)
from sync.crm.retry import RetryPolicy
from sync.crm.session import DEFAULT_TIMEOUT, CrmSession, make_session
from sync.crm.soql import identifier
from sync.crm.tokens import LocalTokens, TokenStore
from sync.crm.usage import LIMIT_INFO_HEADER, ApiUsage, endpoint_name, parse_limit_info
from sync.settings import DEFAULT_API_VERSION
from sync.telemetry import counters

logger = logging.getLogger("sync.crm")

_CODE_CHARS = re.compile(r"[^A-Za-z0-9_]")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"})
"""Methods whose request may be sent twice with the effect of once."""


class PartialFailure(TransientCrmError):
    """Some parts of a batched answer failed transiently; carries the answer so far."""

    def __init__(self, message: str, result: Any, *, method: str, endpoint: str) -> None:
        super().__init__(message, method=method, endpoint=endpoint)
        self.result = result


def _json_default(value: Any) -> Any:
    """JSON for what orjson does not encode itself (datetimes and dates it does)."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise TypeError(f"{value} cannot be sent to the CRM")
        # Exact digits: currency amounts must not pass through binary floating point.
        return orjson.Fragment(format(value, "f"))
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _transport_code(exc: requests.RequestException) -> str:
    """The ``code`` label of a request that got no answer."""
    if isinstance(exc, requests.Timeout):
        return "TIMEOUT"
    if isinstance(exc, requests.ConnectionError):
        return "CONNECTION_ERROR"
    return "TRANSPORT_ERROR"


class CrmTransport:
    """Sends requests to one org: logs in, retries, sorts failures, meters usage.

    Logging in happens on the first request (or :meth:`login`). Safe to share between
    threads: counters and the session are guarded, and a session that expires is
    renewed once however many threads (and, with a shared token store, processes)
    noticed.

    Attributes:
        credentials: the login (one of :data:`~sync.crm.auth.LoginMethod`).
        tokens: where the access token is kept.
        session: the HTTP session every request (login included) goes through.
        api_version: REST API version, e.g. ``"59.0"``.
        retry: the retry policy.
    """

    def __init__(
        self,
        credentials: LoginMethod,
        *,
        session: requests.Session | None = None,
        api_version: str = DEFAULT_API_VERSION,
        retry: RetryPolicy | None = None,
        timeout: float | tuple[float, float] | None = None,
        tokens: TokenStore | None = None,
    ) -> None:
        """Create a client; no request is sent yet.

        Args:
            credentials: the login.
            session: the HTTP session (default: :func:`make_session` without rewriting).
            api_version: REST API version without the ``v``.
            retry: the retry policy (default: :class:`RetryPolicy`'s defaults).
            timeout: per-request (connect, read) timeout; None keeps the session's.
            tokens: the token store (default: this client's own, in memory).
        """
        if api_version.startswith("v"):
            raise ValueError(f"api_version must not start with 'v': {api_version!r}")
        self.credentials = credentials
        self._own_session = session is None
        self.session = session if session is not None else make_session()
        self.api_version = api_version
        self.retry = retry or RetryPolicy()
        # A plain requests.Session has no default timeout; never send without one.
        if timeout is None and not isinstance(self.session, CrmSession):
            timeout = DEFAULT_TIMEOUT
        self.timeout = timeout
        self.tokens: TokenStore = tokens if tokens is not None else LocalTokens()
        self._auth: Authentication | None = None
        self._newer_noted = False
        self._counter_lock = threading.Lock()
        self._api_calls = 0
        self._logins = 0
        self._api_usage: ApiUsage | None = None

    def __repr__(self) -> str:
        name = type(self).__name__
        who = self.credentials.who
        return f"{name}(flow={self.credentials.flow!r}, who={who!r}, version={self.api_version!r})"

    def close(self) -> None:
        """Close the HTTP session if this client created it."""
        if self._own_session:
            self.session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- metering

    @property
    def api_calls(self) -> int:
        """Data API requests this client sent that the org counts against its allowance.

        Every answered request counts, failed ones included, except those refused for an
        expired session (401) or a spent allowance (403 REQUEST_LIMIT_EXCEEDED). A
        /composite call counts once, as the org counts it; logins are not counted, nor
        requests that got no answer (refused connection, timeout).
        """
        return self._api_calls

    @property
    def api_usage(self) -> ApiUsage | None:
        """The org's usage from the last ``Sforce-Limit-Info`` header seen, if any."""
        return self._api_usage

    @property
    def logins(self) -> int:
        """Successful logins this client made (the first one and each renewal)."""
        return self._logins

    @property
    def authentication(self) -> Authentication | None:
        """The token in use, once logged in."""
        return self._auth

    # ------------------------------------------------------------------- paths

    def data_url(self, path: str) -> str:
        """``/services/data/vXX.X/`` + ``path``: the form /composite subrequests take."""
        return f"/services/data/v{self.api_version}/{path.lstrip('/')}"

    def sobject_url(self, sobject: str, *parts: str) -> str:
        """The path of an sObject resource, e.g. ``sobject_url("Account", id)``."""
        tail = "/".join(quote(p, safe="") for p in parts)
        return self.data_url(f"sobjects/{identifier(sobject)}" + (f"/{tail}" if tail else ""))

    # ------------------------------------------------------------------- login

    def login(self) -> None:
        """Log in now (otherwise the first request does), with the retry policy.

        Raises:
            LoginError: the CRM refused the credentials (never retried).
            CrmError: the login endpoint stayed unreachable or unreadable.
        """
        self.retry.retrying()(self._renew, None)

    def _login_once(self) -> Authentication:
        flow = self.credentials.flow
        try:
            auth = login(self.credentials, self.session, self.api_version)
        except CrmError as exc:
            outcome = "failed" if exc.retryable else "refused"
            counters.BUFFER.inc(counters.CRM_LOGINS, {"flow": flow, "outcome": outcome})
            raise
        counters.BUFFER.inc(counters.CRM_LOGINS, {"flow": flow, "outcome": "success"})
        with self._counter_lock:
            self._logins += 1
        return auth

    def _current_auth(self) -> Authentication:
        auth = self._auth
        if auth is None:
            auth = self._auth = self.tokens.renew(None, self._login_once)
        return auth

    def _renew(self, stale: Authentication | None) -> Authentication:
        """A token other than ``stale``: another process's renewal, or a new login."""
        self._auth = self.tokens.renew(stale, self._login_once)
        return self._auth

    # ---------------------------------------------------------------- sending

    def _send(
        self,
        auth: Authentication,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None,
        body: Any,
        headers: Mapping[str, str] | None,
    ) -> requests.Response:
        request_headers = {
            "Authorization": f"Bearer {auth.session_id}",
            "Accept": "application/json",
        }
        data = None
        if body is not None:
            data = orjson.dumps(body, default=_json_default)
            request_headers["Content-Type"] = "application/json"
        if headers:
            request_headers.update(headers)
        started = time.monotonic()
        try:
            response = self.session.request(
                method,
                path if path.startswith("https://") else f"https://{auth.instance}{path}",
                params=params,
                data=data,
                headers=request_headers,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            logger.debug("%s %s failed: %s", method, path, type(exc).__name__)
            error = error_from_transport(exc, method=method, endpoint=path)
            counters.BUFFER.inc(counters.CRM_ERRORS, {"code": _transport_code(exc)})
            raise error from exc
        usage = parse_limit_info(response.headers.get(LIMIT_INFO_HEADER))
        if usage is not None:
            with self._counter_lock:
                self._api_usage = usage
            counters.BUFFER.note_api_usage(usage.used, usage.max)
        logger.debug(
            "%s %s -> %s in %.3fs", method, path, response.status_code, time.monotonic() - started
        )
        return response

    def _attempt(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        expect_body: bool = True,
        shape: Callable[[Any], Any] | None = None,
        raw: bool = False,
        metered: bool = True,
    ) -> Any:
        """One attempt: send (logging in again once on an expired session), sort, decode.

        With ``raw``, a successful answer is returned as the response itself (a body
        that is not JSON, such as Bulk API CSV results); failures are sorted as always.
        Without ``metered`` the call is not counted (the version list and the identity
        URL are no API calls for the org).
        """
        auth = self._current_auth()
        response = self._send(auth, method, path, params=params, body=body, headers=headers)
        error = self._error(response, method, path) if response.status_code >= 300 else None
        if error is not None and error.resolution is ErrorResolution.REFRESH_SESSION:
            logger.info("CRM session expired; logging in again")
            auth = self._renew(auth)
            response = self._send(auth, method, path, params=params, body=body, headers=headers)
            error = self._error(response, method, path) if response.status_code >= 300 else None
        if metered:
            self._count(error, path)
        if error is not None:
            raise error
        if raw:
            return response
        try:
            return self._decode(response, method, path, expect_body=expect_body, shape=shape)
        except MalformedResponseError:
            counters.BUFFER.inc(counters.CRM_ERRORS, {"code": "MALFORMED_RESPONSE"})
            raise

    def _count(self, error: CrmError | None, path: str) -> None:
        # The org does not count requests refused for an invalid session or an exhausted
        # allowance: they never reached the API.
        if error is not None and error.resolution in (
            ErrorResolution.REFRESH_SESSION,
            ErrorResolution.RATE_LIMITED,
        ):
            return
        with self._counter_lock:
            self._api_calls += 1
        counters.BUFFER.inc(counters.CRM_CALLS, {"endpoint": endpoint_name(path)})

    @staticmethod
    def _error(response: requests.Response, method: str, path: str) -> CrmError:
        content = response.content
        try:
            body, parsed = orjson.loads(content), True
        except orjson.JSONDecodeError:
            body, parsed = None, False
        error = error_from_answer(
            response.status_code, body, raw=content, parsed=parsed, method=method, endpoint=path
        )
        # Salesforce's codes are a fixed vocabulary; whatever a proxy sends is trimmed so
        # that it cannot grow the label set without bound.
        code = _CODE_CHARS.sub("_", error.error_code or f"HTTP_{response.status_code}")[:60]
        counters.BUFFER.inc(counters.CRM_ERRORS, {"code": code})
        return error

    @staticmethod
    def _decode(
        response: requests.Response,
        method: str,
        path: str,
        *,
        expect_body: bool,
        shape: Callable[[Any], Any] | None,
    ) -> Any:
        if not expect_body:
            return None  # 204 No Content, or a body nobody asked for
        content = response.content
        if not content.strip():
            problem = "empty body"
        else:
            try:
                data = orjson.loads(content)
            except orjson.JSONDecodeError:
                content_type = response.headers.get("Content-Type", "no content type")
                problem = f"body is not JSON ({content_type}): {snippet(content)}"
            else:
                if shape is None:
                    return data
                try:
                    return shape(data)
                except WrongShape as exc:
                    problem = f"unexpected answer: {exc}"
        # A garbage 2xx is usually a truncated or proxied answer: retried, and after the
        # cap raised. It is ambiguous: the CRM may have applied a write.
        raise MalformedResponseError(
            problem,
            status=response.status_code,
            method=method,
            endpoint=path,
            resolution=ErrorResolution.RETRY,
            ambiguous=True,
        )

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        expect_body: bool = True,
        shape: Callable[[Any], Any] | None = None,
        idempotent: bool | None = None,
        raw: bool = False,
        metered: bool = True,
    ) -> Any:
        """Send one request under the retry policy and return its decoded answer.

        Raises:
            CrmError: the subclass chosen by the classification table, once retrying
                has given up or was not allowed.
        """
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        return self.retry.retrying(idempotent=idempotent)(
            self._attempt,
            method,
            path,
            params=params,
            body=body,
            headers=headers,
            expect_body=expect_body,
            shape=shape,
            raw=raw,
            metered=metered,
        )
