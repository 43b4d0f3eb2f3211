"""The CRM client: the one door through which billing-sync talks to Salesforce.

simple-salesforce does the login (SOAP ``login()`` with username, password and security
token, over our session, so :func:`~sync.crm.session.make_session`'s URL rewriting
applies to it too) and owns the URL conventions (instance host, ``/services/data/vXX.X``)
and the ``Sforce-Limit-Info`` parsing. Data requests are sent by :meth:`CrmClient._send`
over the same session with the session id as bearer token, rather than through
simple-salesforce's ``_call_salesforce``, because that method decides on its own what a
failure means: it logs in again up to four times recursively on any 401, assumes every
401 body is a JSON list, reads the usage header only from successful answers and turns
everything else into exceptions that no longer say whether a retry is safe. Here every
answer is sorted by the one table in :mod:`sync.crm.errors` and retried by the one
policy in :mod:`sync.crm.retry`.

Records are returned as the CRM sends them, ``attributes`` included (it names the object
type and record URL, which costs nothing to keep and helps in error reports).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime as http_date
from typing import Any
from urllib.parse import quote

import orjson
import requests

from sync.crm.answers import (
    MAX_BATCH_SIZE,
    MAX_COLLECTION_RECORDS,
    MAX_COMPOSITE_QUERIES,
    MAX_COMPOSITE_SUBREQUESTS,
    MIN_BATCH_SIZE,
    QueryPage,
    RecordResult,
    WrongShape,
    check_composite,
    composite_items,
    json_object,
    query_page,
    record_results,
    subresponse_error,
    subresponse_transient,
    typed_records,
)
from sync.crm.auth import (
    SANDBOX_PASSWORD,
    SANDBOX_SECURITY_TOKEN,
    SANDBOX_USERNAME,
    Authentication,
    Credentials,
    login,
)
from sync.crm.errors import (
    CrmConfigurationError,
    CrmError,
    ErrorResolution,
    MalformedResponseError,
    TransientCrmError,
    error_from_answer,
    error_from_transport,
    snippet,
)
from sync.crm.retry import RetryPolicy
from sync.crm.session import make_session
from sync.crm.soql import identifier
from sync.crm.usage import LIMIT_INFO_HEADER, ApiUsage, parse_limit_info
from sync.settings import DEFAULT_API_VERSION, Settings

__all__ = [
    "MAX_COLLECTION_RECORDS",
    "MAX_COMPOSITE_QUERIES",
    "MAX_COMPOSITE_SUBREQUESTS",
    "SANDBOX_PASSWORD",
    "SANDBOX_SECURITY_TOKEN",
    "SANDBOX_USERNAME",
    "ApiUsage",
    "Credentials",
    "CrmClient",
    "QueryPage",
    "RecordResult",
    "subresponse_error",
]

logger = logging.getLogger("sync.crm")

_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"})
_RECORD_ID = re.compile(r"^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$")


class _Unfinished(TransientCrmError):
    """Some parts of a batched answer failed transiently; carries the answer so far."""

    def __init__(self, message: str, result: Any, *, method: str, endpoint: str) -> None:
        super().__init__(message, method=method, endpoint=endpoint)
        self.result = result


def _check_id(record_id: str) -> str:
    if not isinstance(record_id, str) or not _RECORD_ID.match(record_id):
        raise ValueError(f"not a Salesforce record Id: {record_id!r}")
    return record_id


class CrmClient:
    """Typed, retried, metered access to one Salesforce org's REST API.

    Logging in happens on the first request (or :meth:`login`). The client is safe to
    share between threads: counters and the session are guarded, and a session that
    expires is renewed once however many threads noticed.

    Attributes:
        credentials: the login.
        session: the HTTP session every request (login included) goes through.
        api_version: REST API version, e.g. ``"59.0"``.
        retry: the retry policy.
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        session: requests.Session | None = None,
        api_version: str = DEFAULT_API_VERSION,
        retry: RetryPolicy | None = None,
        timeout: float | tuple[float, float] | None = None,
    ) -> None:
        """Create a client; no request is sent yet.

        Args:
            credentials: the login.
            session: the HTTP session (default: :func:`make_session` without rewriting).
            api_version: REST API version without the ``v``.
            retry: the retry policy (default: :class:`RetryPolicy`'s defaults).
            timeout: per-request (connect, read) timeout; None keeps the session's.
        """
        if api_version.startswith("v"):
            raise ValueError(f"api_version must not start with 'v': {api_version!r}")
        self.credentials = credentials
        self._own_session = session is None
        self.session = session if session is not None else make_session()
        self.api_version = api_version
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self._auth: Authentication | None = None
        self._login_lock = threading.Lock()
        self._counter_lock = threading.Lock()
        self._api_calls = 0
        self._logins = 0
        self._api_usage: ApiUsage | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        session: requests.Session | None = None,
        sandbox_url: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> CrmClient:
        """The client configured by ``settings`` (or the embedded sandbox at ``sandbox_url``).

        Args:
            settings: the process settings (``SALESFORCE_*`` variables).
            session: an HTTP session to use as is (tests); default: :func:`make_session`
                rewriting to ``sandbox_url`` or ``settings.salesforce_instance_url``.
            sandbox_url: base URL of a running sandbox; its default login is used.
            retry: the retry policy (default: :class:`RetryPolicy`'s defaults).

        Raises:
            CrmConfigurationError: no sandbox_url and the login variables are incomplete;
                the message names the missing variables.
        """
        if sandbox_url is not None:
            credentials = Credentials.sandbox()
            instance_url: str | None = sandbox_url.rstrip("/")
        else:
            missing = [
                name
                for name, value in (
                    ("SALESFORCE_USERNAME", settings.salesforce_username),
                    ("SALESFORCE_PASSWORD", settings.salesforce_password),
                )
                if not value
            ]
            if missing:
                raise CrmConfigurationError(
                    f"no CRM login configured: {' and '.join(missing)} "
                    f"{'is' if len(missing) == 1 else 'are'} not set. Set SALESFORCE_USERNAME, "
                    "SALESFORCE_PASSWORD and SALESFORCE_SECURITY_TOKEN (plus "
                    "SALESFORCE_INSTANCE_URL for a sandbox or proxy), or use "
                    "`billing-sync demo`, which runs the embedded sandbox"
                )
            assert settings.salesforce_username and settings.salesforce_password
            credentials = Credentials(
                username=settings.salesforce_username,
                password=settings.salesforce_password,
                security_token=settings.salesforce_security_token or "",
                domain=settings.salesforce_domain,
            )
            instance_url = settings.salesforce_instance_url
        client = cls(
            credentials,
            session=session if session is not None else make_session(instance_url),
            api_version=settings.salesforce_api_version,
            retry=retry,
        )
        client._own_session = session is None
        return client

    def __repr__(self) -> str:
        return f"CrmClient(username={self.credentials.username!r}, version={self.api_version!r})"

    def close(self) -> None:
        """Close the HTTP session if this client created it."""
        if self._own_session:
            self.session.close()

    def __enter__(self) -> CrmClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- metering

    @property
    def api_calls(self) -> int:
        """Data API requests this client sent that got an answer (failed ones included).

        A /composite call counts once, as the org counts it; logins are not counted.
        """
        return self._api_calls

    @property
    def api_usage(self) -> ApiUsage | None:
        """The org's usage from the last ``Sforce-Limit-Info`` header seen, if any."""
        return self._api_usage

    @property
    def logins(self) -> int:
        """Successful logins so far (the first one and each renewal)."""
        return self._logins

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
        auth = login(self.credentials, self.session, self.api_version)
        with self._counter_lock:
            self._logins += 1
        return auth

    def _current_auth(self) -> Authentication:
        with self._login_lock:
            if self._auth is None:
                self._auth = self._login_once()
            return self._auth

    def _renew(self, stale: Authentication | None) -> Authentication:
        """Log in again unless another thread already replaced ``stale``."""
        with self._login_lock:
            if self._auth is None or self._auth is stale or stale is None:
                self._auth = self._login_once()
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
            data = orjson.dumps(body)
            request_headers["Content-Type"] = "application/json"
        if headers:
            request_headers.update(headers)
        started = time.monotonic()
        try:
            response = self.session.request(
                method,
                f"https://{auth.instance}{path}",
                params=params,
                data=data,
                headers=request_headers,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            logger.debug("%s %s failed: %s", method, path, type(exc).__name__)
            raise error_from_transport(exc, method=method, endpoint=path) from exc
        usage = parse_limit_info(response.headers.get(LIMIT_INFO_HEADER))
        with self._counter_lock:
            self._api_calls += 1
            if usage is not None:
                self._api_usage = usage
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
    ) -> Any:
        """One attempt: send (logging in again once on an expired session), sort, decode."""
        auth = self._current_auth()
        response = self._send(auth, method, path, params=params, body=body, headers=headers)
        if response.status_code == 401:
            error = self._error(response, method, path)
            if error.resolution is ErrorResolution.REFRESH_SESSION:
                logger.info("CRM session expired; logging in again")
                auth = self._renew(auth)
                response = self._send(auth, method, path, params=params, body=body, headers=headers)
        if response.status_code >= 300:
            raise self._error(response, method, path)
        return self._decode(response, method, path, expect_body=expect_body, shape=shape)

    @staticmethod
    def _error(response: requests.Response, method: str, path: str) -> CrmError:
        content = response.content
        try:
            body, parsed = orjson.loads(content), True
        except orjson.JSONDecodeError:
            body, parsed = None, False
        return error_from_answer(
            response.status_code, body, raw=content, parsed=parsed, method=method, endpoint=path
        )

    @staticmethod
    def _decode(
        response: requests.Response,
        method: str,
        path: str,
        *,
        expect_body: bool,
        shape: Callable[[Any], Any] | None,
    ) -> Any:
        content = response.content
        if not content.strip():
            if not expect_body:
                return None
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
    ) -> Any:
        """Send one request under the retry policy and return its decoded answer.

        Raises:
            CrmError: the subclass chosen by the classification table, once retrying
                has given up or was not allowed.
        """
        if idempotent is None:
            idempotent = method in _IDEMPOTENT_METHODS
        return self.retry.retrying(idempotent=idempotent)(
            self._attempt,
            method,
            path,
            params=params,
            body=body,
            headers=headers,
            expect_body=expect_body,
            shape=shape,
        )

    # ---------------------------------------------------------------- queries

    def query_pages(
        self, soql: str, *, include_deleted: bool = False, batch_size: int = MAX_BATCH_SIZE
    ) -> Iterator[QueryPage]:
        """The pages of a query's answer, fetched one at a time as they are consumed.

        Args:
            soql: the query (build it with :mod:`sync.crm.soql`).
            include_deleted: use ``queryAll`` (deleted and archived rows, IsDeleted true).
            batch_size: records per page, 200 to 2000 (``Sforce-Query-Options``; the CRM
                may return fewer).

        Each page request is retried on its own, so a transient failure in the middle
        of paging repeats that page only (query locators stay valid for 15 minutes).

        Raises:
            ValueError: batch_size out of range.
            CrmError: see :meth:`_request`.
        """
        if not MIN_BATCH_SIZE <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(
                f"batch_size must be {MIN_BATCH_SIZE}..{MAX_BATCH_SIZE}, got {batch_size}"
            )
        headers = {"Sforce-Query-Options": f"batchSize={batch_size}"}
        path = self.data_url("queryAll/" if include_deleted else "query/")
        page: QueryPage = self._request(
            "GET", path, params={"q": soql}, headers=headers, shape=query_page
        )
        yield page
        while not page.done:
            assert page.next_records_url is not None
            page = self._request("GET", page.next_records_url, headers=headers, shape=query_page)
            yield page

    def query_all(self, soql: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Every record of a query, all pages (for small answers only)."""
        return [
            record
            for page in self.query_pages(soql, include_deleted=include_deleted)
            for record in page.records
        ]

    def query_count(self, soql: str, *, include_deleted: bool = False) -> int:
        """The ``totalSize`` of a query, e.g. ``SELECT COUNT() FROM Account``."""
        path = self.data_url("queryAll/" if include_deleted else "query/")
        page: QueryPage = self._request("GET", path, params={"q": soql}, shape=query_page)
        return page.total_size

    # -------------------------------------------------------------- composite

    def composite(
        self, subrequests: Sequence[Mapping[str, Any]], *, all_or_none: bool = False
    ) -> list[dict[str, Any]]:
        """Run up to 25 subrequests (at most 5 of them queries) as one API call.

        Args:
            subrequests: ``{"method", "url", "referenceId", "body"?}`` each; ``url`` as
                :meth:`data_url` builds it.
            all_or_none: roll every subrequest back when one fails.

        Returns:
            The ``compositeResponse`` items in request order (``body``,
            ``httpHeaders``, ``httpStatusCode``, ``referenceId``); failed subrequests
            are returned, not raised (see :func:`subresponse_error`).

        The whole call is sent again when a subrequest failed transiently
        (UNABLE_TO_LOCK_ROW, 503) and that is safe: every subrequest is idempotent, or
        all_or_none rolled everything back.

        Raises:
            ValueError: more than 25 subrequests, more than 5 queries, or a malformed one.
            CrmError: the call as a whole failed.
        """
        check_composite(subrequests)
        idempotent = all(str(s["method"]).upper() in _IDEMPOTENT_METHODS for s in subrequests)
        path = self.data_url("composite")
        body = {"allOrNone": all_or_none, "compositeRequest": list(subrequests)}
        resend_safe = idempotent or all_or_none

        def shape(data: Any) -> list[dict[str, Any]]:
            items = composite_items(data, len(subrequests))
            if resend_safe and any(subresponse_transient(i) for i in items):
                raise _Unfinished(
                    "a subrequest failed transiently", items, method="POST", endpoint=path
                )
            return items

        try:
            result: list[dict[str, Any]] = self._request(
                "POST", path, body=body, shape=shape, idempotent=idempotent
            )
        except _Unfinished as exc:
            result = exc.result
        return result

    # ---------------------------------------------------------- single records

    def describe_global(self) -> dict[str, Any]:
        """``GET /sobjects``: every object of the org."""
        return self._request("GET", self.data_url("sobjects"), shape=json_object)

    def describe(self, sobject: str) -> dict[str, Any]:
        """``GET /sobjects/{sobject}/describe``: the object's fields and their types."""
        path = self.sobject_url(sobject, "describe")
        return self._request("GET", path, shape=json_object)

    def limits(self) -> dict[str, Any]:
        """``GET /limits``: the org's limits, ``DailyApiRequests`` among them."""
        return self._request("GET", self.data_url("limits"), shape=json_object)

    def get(self, sobject: str, record_id: str, *, fields: Sequence[str] = ()) -> dict[str, Any]:
        """One record by Id (all fields, or only ``fields``).

        Raises:
            CrmRequestError: 404 NOT_FOUND when there is no such (live) record.
        """
        params = {"fields": ",".join(identifier(f) for f in fields)} if fields else None
        path = self.sobject_url(sobject, _check_id(record_id))
        return self._request("GET", path, params=params, shape=json_object)

    def create(self, sobject: str, fields: Mapping[str, Any]) -> str:
        """Create one record and return its Id.

        A create is not sent again after an ambiguous failure (read timeout, 500): it
        might have been applied. Writes that must survive such failures use
        :meth:`upsert` with an external id.
        """
        data = self._request(
            "POST", self.sobject_url(sobject), body=dict(fields), shape=json_object
        )
        record_id = data.get("id")
        if not isinstance(record_id, str):
            raise MalformedResponseError(
                f"create answer has no id: {snippet(orjson.dumps(data))}",
                method="POST",
                endpoint=self.sobject_url(sobject),
            )
        return record_id

    def update(
        self,
        sobject: str,
        record_id: str,
        fields: Mapping[str, Any],
        *,
        if_unmodified_since: datetime | None = None,
    ) -> None:
        """Update fields of one record.

        Args:
            sobject: object API name.
            record_id: the record's Id.
            fields: field name -> new value.
            if_unmodified_since: only if the record has not changed since then (sent
                as the ``If-Unmodified-Since`` HTTP date, second precision).

        Raises:
            ConflictError: 412, the record changed after ``if_unmodified_since``.
            ValueError: ``if_unmodified_since`` is naive.
        """
        headers = None
        if if_unmodified_since is not None:
            if if_unmodified_since.tzinfo is None:
                raise ValueError("if_unmodified_since must be timezone-aware")
            # HTTP dates have whole seconds; truncating can only report a conflict for a
            # change in the same second, never miss one.
            when = if_unmodified_since.astimezone(UTC)
            headers = {"If-Unmodified-Since": http_date(when, usegmt=True)}
        path = self.sobject_url(sobject, _check_id(record_id))
        self._request("PATCH", path, body=dict(fields), headers=headers, expect_body=False)

    def delete(self, sobject: str, record_id: str) -> None:
        """Delete one record (to the recycle bin).

        Raises:
            CrmRequestError: 404 ENTITY_IS_DELETED / NOT_FOUND.
        """
        path = self.sobject_url(sobject, _check_id(record_id))
        self._request("DELETE", path, expect_body=False)

    def upsert(
        self, sobject: str, ext_field: str, value: str, fields: Mapping[str, Any]
    ) -> tuple[str, bool]:
        """Create or update the record whose external id ``ext_field`` is ``value``.

        Returns:
            (Id, created): created is True for 201 Created, False for 200 updated.

        Raises:
            CrmRequestError: 300 when several records share the value, or a bad field.
        """
        path = self.sobject_url(sobject, identifier(ext_field), value)
        data = self._request("PATCH", path, body=dict(fields), shape=json_object)
        record_id, created = data.get("id"), data.get("created")
        if not isinstance(record_id, str) or not isinstance(created, bool):
            raise MalformedResponseError(
                f"upsert answer lacks id/created: {snippet(orjson.dumps(data))}",
                method="PATCH",
                endpoint=path,
            )
        return record_id, created

    # ------------------------------------------------------------- collections

    def collection_create(
        self,
        sobject: str,
        records: Sequence[Mapping[str, Any]],
        *,
        all_or_none: bool = False,
    ) -> list[RecordResult]:
        """Create records, 200 per call; results in request order (see :meth:`_collection`)."""
        typed = typed_records(sobject, records)
        return self._collection(
            "POST",
            self.data_url("composite/sobjects"),
            typed,
            all_or_none=all_or_none,
            idempotent=False,
        )

    def collection_update(
        self,
        sobject: str,
        records: Sequence[Mapping[str, Any]],
        *,
        all_or_none: bool = False,
    ) -> list[RecordResult]:
        """Update records (each with its ``Id``), 200 per call; results in request order."""
        for record in records:
            _check_id(record.get("Id", ""))
        typed = typed_records(sobject, records)
        return self._collection(
            "PATCH", self.data_url("composite/sobjects"), typed, all_or_none=all_or_none
        )

    def collection_upsert(
        self,
        sobject: str,
        ext_field: str,
        records: Sequence[Mapping[str, Any]],
        *,
        all_or_none: bool = False,
    ) -> list[RecordResult]:
        """Upsert records by the external id field ``ext_field``, 200 per call.

        Each record must carry ``ext_field``. Results are in request order, with
        ``created`` set.
        """
        for record in records:
            if record.get(ext_field) in (None, ""):
                raise ValueError(f"every record needs a value for {ext_field}")
        path = self.data_url(f"composite/sobjects/{identifier(sobject)}/{identifier(ext_field)}")
        typed = typed_records(sobject, records)
        return self._collection("PATCH", path, typed, all_or_none=all_or_none)

    def collection_delete(
        self, ids: Sequence[str], *, all_or_none: bool = False
    ) -> list[RecordResult]:
        """Delete records by Id, 200 per call; results in request order."""
        for record_id in ids:
            _check_id(record_id)
        return self._collection(
            "DELETE", self.data_url("composite/sobjects"), list(ids), all_or_none=all_or_none
        )

    def _collection(
        self,
        method: str,
        path: str,
        items: Sequence[Any],
        *,
        all_or_none: bool,
        idempotent: bool = True,
    ) -> list[RecordResult]:
        """Send ``items`` in chunks of 200 and merge the per-record results in order.

        Records that fail with a transient error (UNABLE_TO_LOCK_ROW) are sent again,
        alone, under the retry policy; with all_or_none the whole chunk is sent again
        (the CRM rolled it back). Records still failing when the policy gives up are
        returned with their errors. all_or_none spans one call, so it is refused for
        more than 200 records rather than silently weakened.

        Raises:
            ValueError: all_or_none with more than 200 records.
            CrmError: a call as a whole failed.
        """
        if all_or_none and len(items) > MAX_COLLECTION_RECORDS:
            raise ValueError(
                f"all_or_none covers one call of at most {MAX_COLLECTION_RECORDS} records, "
                f"got {len(items)}"
            )
        results: list[RecordResult] = []
        for start in range(0, len(items), MAX_COLLECTION_RECORDS):
            chunk = items[start : start + MAX_COLLECTION_RECORDS]
            results.extend(
                self._collection_chunk(
                    method, path, chunk, all_or_none=all_or_none, idempotent=idempotent
                )
            )
        return results

    def _collection_chunk(
        self,
        method: str,
        path: str,
        chunk: Sequence[Any],
        *,
        all_or_none: bool,
        idempotent: bool,
    ) -> list[RecordResult]:
        outcome: list[RecordResult | None] = [None] * len(chunk)
        pending = list(range(len(chunk)))

        def attempt() -> list[RecordResult]:
            sent = list(pending)
            params = None
            body = None
            if method == "DELETE":
                params = {
                    "ids": ",".join(chunk[i] for i in sent),
                    "allOrNone": "true" if all_or_none else "false",
                }
            else:
                body = {"allOrNone": all_or_none, "records": [chunk[i] for i in sent]}
            answer: list[RecordResult] = self._attempt(
                method,
                path,
                params=params,
                body=body,
                shape=lambda data: record_results(data, len(sent)),
            )
            for index, result in zip(sent, answer, strict=True):
                outcome[index] = result
            retry = [i for i in sent if outcome[i] is not None and outcome[i].transient]  # type: ignore[union-attr]
            if retry:
                pending[:] = sent if all_or_none else retry
                raise _Unfinished(
                    f"{len(retry)} record(s) failed transiently",
                    None,
                    method=method,
                    endpoint=path,
                )
            return [r for r in outcome if r is not None]

        try:
            return self.retry.retrying(idempotent=idempotent)(attempt)
        except _Unfinished:
            return [r for r in outcome if r is not None]
