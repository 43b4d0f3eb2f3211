"""How every CRM failure is sorted, once, as data, and the exceptions that carry it.

Each failed response (or transport failure) maps to an :class:`ErrorResolution` through
:data:`ERROR_RULES`, the one table of this decision; :mod:`sync.crm.retry` acts on the
resolution and nothing else. The first matching rule wins, so narrow rules (an error
code, a message) come before broad ones (a status range).

Every exception derives from :class:`CrmError` and carries ``status``, ``error_code``,
``message`` and ``fields`` as the CRM sent them, plus the endpoint that failed. None of
them ever holds a password, security token or session id.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests

from sync.settings import SettingsError


class ErrorResolution(enum.StrEnum):
    """What the client does about a failure."""

    RETRY = "retry"
    """Transient: send the same request again after a capped, random backoff."""
    REFRESH_SESSION = "refresh_session"
    """The session expired: log in again, then send the request again."""
    RATE_LIMITED = "rate_limited"
    """The org's API allowance is spent: stop now; the caller reschedules."""
    FAIL = "fail"
    """The request itself is wrong (or the record is): retrying cannot help."""


@dataclass(frozen=True)
class ErrorRule:
    """One row of the classification table.

    A rule matches when every criterion it sets matches: ``statuses`` (inclusive range of
    HTTP status codes; ``None`` matches any status and per-record errors, which have
    none), ``error_code`` (exact), ``message_contains`` (case-insensitive substring).

    ``ambiguous`` marks failures after which a write may or may not have been applied
    (the request reached the server, the answer was lost): non-idempotent requests are
    not resent after those, whatever the resolution.
    """

    resolution: ErrorResolution
    reason: str
    statuses: tuple[int, int] | None = None
    error_code: str | None = None
    message_contains: str | None = None
    ambiguous: bool = False

    def matches(self, status: int | None, error_code: str | None, message: str) -> bool:
        """True when this rule applies to the given failure."""
        if self.statuses is not None and (
            status is None or not self.statuses[0] <= status <= self.statuses[1]
        ):
            return False
        if self.error_code is not None and self.error_code != error_code:
            return False
        return self.message_contains is None or self.message_contains in message.lower()


_R = ErrorResolution

ERROR_RULES: tuple[ErrorRule, ...] = (
    # Record lock contention. Salesforce answers 400 (or reports it per record inside
    # /composite and sObject Collections answers), but the transaction was rolled back
    # and the same request usually succeeds a moment later.
    ErrorRule(
        _R.RETRY,
        "record locked by another transaction; rolled back, transient",
        error_code="UNABLE_TO_LOCK_ROW",
    ),
    ErrorRule(
        _R.REFRESH_SESSION,
        "session expired, timed out or was revoked",
        statuses=(401, 401),
        error_code="INVALID_SESSION_ID",
    ),
    # The same error code is used for the concurrent long-running request limit, which
    # clears within seconds, unlike the rolling 24-hour allowance below.
    ErrorRule(
        _R.RETRY,
        "too many concurrent long-running requests; clears within seconds",
        statuses=(403, 403),
        error_code="REQUEST_LIMIT_EXCEEDED",
        message_contains="concurrent",
    ),
    # The org's rolling 24-hour API allowance. Every retry would be refused and would
    # still count, so stop the pass at once and let the scheduler try again later.
    ErrorRule(
        _R.RATE_LIMITED,
        "the org's API request allowance is spent",
        statuses=(403, 403),
        error_code="REQUEST_LIMIT_EXCEEDED",
    ),
    ErrorRule(
        _R.RETRY,
        "server unavailable (maintenance, overload); nothing was applied",
        error_code="SERVER_UNAVAILABLE",
    ),
    # A 400 although nothing is wrong with the query: the server gave up on a slow one
    # (busy org, cold caches). A read, so resending is harmless; the cap bounds it.
    ErrorRule(
        _R.RETRY,
        "query timed out on the server; a read, safe to resend",
        error_code="QUERY_TIMEOUT",
    ),
    # The query cursor behind a nextRecordsUrl expired (15 minutes idle) or was evicted:
    # resending that page cannot succeed; the caller must run the query again.
    ErrorRule(
        _R.FAIL,
        "query cursor expired; run the query again",
        error_code="INVALID_QUERY_LOCATOR",
    ),
    ErrorRule(
        _R.RETRY,
        "service unavailable; the request was not processed",
        statuses=(503, 503),
    ),
    # A gateway or proxy in front of the org timed out or throttled; Salesforce itself
    # reports its limits as 403 REQUEST_LIMIT_EXCEEDED, never 429.
    ErrorRule(_R.RETRY, "request timeout at a gateway", statuses=(408, 408), ambiguous=True),
    ErrorRule(_R.RETRY, "throttled by a gateway", statuses=(429, 429)),
    ErrorRule(
        _R.RETRY,
        "server error; the request may have been applied",
        statuses=(500, 599),
        ambiguous=True,
    ),
    # Bulk API 2.0 refuses at job creation what it cannot run (aggregates, OFFSET,
    # compound fields, an object it does not serve, the daily job allowance spent):
    # the query itself is fine for REST, so the caller falls back to it for that pass.
    ErrorRule(
        _R.FAIL,
        "Bulk API refused the query job; read through REST instead",
        statuses=(400, 499),
        error_code="API_ERROR",
    ),
    ErrorRule(
        _R.FAIL,
        "the object is not served by the Bulk API; read through REST instead",
        statuses=(400, 499),
        error_code="INVALIDENTITY",
    ),
    ErrorRule(_R.FAIL, "the request or the record is invalid", statuses=(400, 499)),
)

_DEFAULT_RULE = ErrorRule(_R.FAIL, "unexpected status")


def resolve(status: int | None, error_code: str | None = None, message: str = "") -> ErrorRule:
    """The first rule of :data:`ERROR_RULES` matching this failure.

    Args:
        status: the HTTP status, or ``None`` for a per-record error inside a 2xx answer.
        error_code: Salesforce's ``errorCode`` (``statusCode`` in per-record errors).
        message: the error message (some rules look at it).

    Returns:
        The matching rule; unmatched failures resolve to FAIL.
    """
    lowered = message.lower()
    for rule in ERROR_RULES:
        if rule.matches(status, error_code, lowered):
            return rule
    return _DEFAULT_RULE


class CrmConfigurationError(SettingsError):
    """The CRM connection is not configured; the message names the missing variables."""


class CrmError(Exception):
    """A CRM request failed.

    Attributes:
        status: HTTP status, or ``None`` when no answer arrived.
        error_code: Salesforce ``errorCode`` (``None`` when the CRM sent none).
        message: the CRM's message, or a description of what went wrong.
        fields: the fields the CRM named as the cause.
        method: HTTP method of the failed request.
        endpoint: path of the failed request (no host, no secrets).
        resolution: what the retry policy does about it.
        ambiguous: a write may have been applied although the call failed.
    """

    default_resolution = ErrorResolution.FAIL

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        fields: Sequence[str] = (),
        method: str = "",
        endpoint: str = "",
        resolution: ErrorResolution | None = None,
        ambiguous: bool = False,
    ) -> None:
        self.message = message
        self.status = status
        self.error_code = error_code
        self.fields = list(fields)
        self.method = method
        self.endpoint = endpoint
        self.resolution = resolution or self.default_resolution
        self.ambiguous = ambiguous
        super().__init__(self._text())

    def _text(self) -> str:
        where = f"{self.method} {self.endpoint}: " if self.endpoint else ""
        what = []
        if self.status is not None:
            what.append(f"HTTP {self.status}")
        if self.error_code:
            what.append(self.error_code)
        head = " ".join(what)
        text = f"{where}{head}: {self.message}" if head else f"{where}{self.message}"
        if self.fields:
            text += f" (fields: {', '.join(self.fields)})"
        return text

    @property
    def retryable(self) -> bool:
        """True when sending the same request again may succeed."""
        return self.resolution in (ErrorResolution.RETRY, ErrorResolution.REFRESH_SESSION)


class TransientCrmError(CrmError):
    """5xx, timeout, connection reset, UNABLE_TO_LOCK_ROW: retried, then raised."""

    default_resolution = ErrorResolution.RETRY


class SessionExpiredError(CrmError):
    """401 INVALID_SESSION_ID even right after logging in again."""

    default_resolution = ErrorResolution.REFRESH_SESSION


class RequestLimitExceededError(CrmError):
    """403 REQUEST_LIMIT_EXCEEDED: the org's API allowance is spent; never retried."""

    default_resolution = ErrorResolution.RATE_LIMITED


class CrmRequestError(CrmError):
    """A 4xx the CRM will answer the same way every time (bad query, field, value)."""


class ConflictError(CrmRequestError):
    """412: the record changed in the CRM after the ``If-Unmodified-Since`` time."""


class MalformedResponseError(CrmError):
    """The answer is not the JSON expected: HTML, truncated, empty or the wrong shape.

    A 2xx with such a body is retried (a truncated body is transient; a consistently
    wrong one fails once the retry policy's cap is reached); a 4xx with such a body
    (a proxy's error page) fails at once.
    """


class LoginError(CrmError):
    """Logging in was refused (bad credentials, locked user, login rate). Never retried."""


@dataclass(frozen=True)
class RecordError:
    """One error of one record in a collection or composite answer."""

    status_code: str
    message: str
    fields: tuple[str, ...] = ()

    @property
    def resolution(self) -> ErrorResolution:
        """The table's verdict for this error code (no HTTP status applies)."""
        return resolve(None, self.status_code, self.message).resolution

    @property
    def transient(self) -> bool:
        """True for errors such as UNABLE_TO_LOCK_ROW that a later attempt may clear."""
        return self.resolution is ErrorResolution.RETRY

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> RecordError:
        """Build from ``{"statusCode"|"errorCode", "message", "fields"}``."""
        code = item.get("statusCode") or item.get("errorCode") or "UNKNOWN_ERROR"
        fields = item.get("fields") or ()
        return cls(
            status_code=str(code),
            message=str(item.get("message") or ""),
            fields=tuple(str(f) for f in fields) if isinstance(fields, list) else (),
        )


_WHITESPACE = re.compile(r"\s+")


def snippet(body: bytes | str, limit: int = 160) -> str:
    """A short, single-line excerpt of a response body for an error message."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = _WHITESPACE.sub(" ", text).strip()
    if not text:
        return "<empty>"
    return repr(text if len(text) <= limit else text[:limit] + "...")


def redact(text: str, secrets: Sequence[str | None]) -> str:
    """``text`` with every non-empty secret (and their concatenations) replaced by ``***``.

    Longer secrets are replaced first, so a password followed by its security token (the
    SOAP login's form) disappears as a whole.
    """
    values = [s for s in secrets if s]
    values += [a + b for a in values for b in values if a is not b]
    for value in sorted(set(values), key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def _error_items(body: Any) -> list[Mapping[str, Any]]:
    """The error objects of an error answer, whatever of the CRM's shapes it has."""
    if isinstance(body, Mapping):
        if "error" in body and "errorCode" not in body:
            # OAuth endpoints answer {"error": ..., "error_description": ...}.
            return [{"errorCode": body.get("error"), "message": body.get("error_description")}]
        return [body]
    if isinstance(body, list):
        return [item for item in body if isinstance(item, Mapping)]
    return []


def error_from_answer(
    status: int,
    body: Any,
    *,
    raw: bytes | str = b"",
    parsed: bool = True,
    method: str = "",
    endpoint: str = "",
) -> CrmError:
    """The exception for a failed answer (top level or a /composite subresponse).

    Args:
        status: HTTP status (300 or more).
        body: the decoded JSON body (ignored when ``parsed`` is False).
        raw: the raw body, quoted in the message when it is not the JSON expected.
        parsed: False when the body could not be decoded as JSON.
        method: HTTP method, for the message.
        endpoint: request path, for the message.
    """
    items = _error_items(body) if parsed else []
    first = items[0] if items else {}
    code = first.get("errorCode") or first.get("statusCode")
    error_code = str(code) if code else None
    if items:
        message = "; ".join(str(i.get("message") or "") for i in items if i.get("message"))
        message = message or "no message"
    elif parsed:
        message = f"unexpected error body {snippet(raw)}"
    else:
        message = f"body is not JSON: {snippet(raw)}"
    raw_fields = first.get("fields")
    fields = [str(f) for f in raw_fields] if isinstance(raw_fields, list) else []
    rule = resolve(status, error_code, message)
    kwargs: dict[str, Any] = {
        "status": status,
        "error_code": error_code,
        "fields": fields,
        "method": method,
        "endpoint": endpoint,
        "resolution": rule.resolution,
        "ambiguous": rule.ambiguous,
    }
    if rule.resolution is ErrorResolution.RATE_LIMITED:
        return RequestLimitExceededError(message, **kwargs)
    if rule.resolution is ErrorResolution.REFRESH_SESSION:
        return SessionExpiredError(message, **kwargs)
    if rule.resolution is ErrorResolution.RETRY:
        return TransientCrmError(message, **kwargs)
    if status == 412:
        return ConflictError(message or "record changed since the given time", **kwargs)
    if not parsed:
        # A 4xx that is not the CRM's JSON: a proxy's or load balancer's error page.
        return MalformedResponseError(message, **kwargs)
    return CrmRequestError(message, **kwargs)


def _caused_by(exc: BaseException, names: tuple[str, ...]) -> bool:
    """True when an exception named in ``names`` is anywhere in ``exc``'s causes.

    requests wraps urllib3's errors as arguments (ConnectionError(MaxRetryError(...,
    reason=NewConnectionError))), so arguments and ``reason`` are followed as well as
    ``__cause__`` and ``__context__``.
    """
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if type(current).__name__ in names:
            return True
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked.extend(getattr(current, "args", ()))
        pending.extend(e for e in linked if isinstance(e, BaseException))
    return False


_NOT_CONNECTED = ("NewConnectionError", "ConnectionRefusedError", "NameResolutionError")


def error_from_transport(exc: Exception, *, method: str = "", endpoint: str = "") -> CrmError:
    """The exception for a request that got no (complete) answer.

    Timeouts, refused and reset connections and truncated bodies are transient. A
    failure before the connection was made (refused, DNS, connect timeout) left the CRM
    untouched; after it, a write may have been applied (``ambiguous``).
    """
    kwargs: dict[str, Any] = {"method": method, "endpoint": endpoint}
    detail = type(exc).__name__
    if isinstance(exc, requests.ConnectTimeout):
        return TransientCrmError(f"connect timeout ({detail})", **kwargs)
    if isinstance(exc, requests.ReadTimeout):
        return TransientCrmError(f"read timeout ({detail})", ambiguous=True, **kwargs)
    if isinstance(exc, requests.ConnectionError):
        if _caused_by(exc, _NOT_CONNECTED):
            return TransientCrmError(f"cannot connect ({detail})", **kwargs)
        return TransientCrmError(f"connection lost ({detail})", ambiguous=True, **kwargs)
    if isinstance(
        exc, requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError
    ):
        return TransientCrmError(f"truncated answer ({detail})", ambiguous=True, **kwargs)
    return CrmError(f"request failed ({detail}: {exc})", **kwargs)
