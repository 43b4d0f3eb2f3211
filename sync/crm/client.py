"""The CRM client: the one door through which billing-sync talks to Salesforce.

:class:`CrmClient` holds the typed API (queries, /composite, describe, records, sObject
Collections) on top of :class:`~sync.crm.transport.CrmTransport`, which logs in, sends,
sorts failures, retries and meters.

Records are returned as the CRM sends them, ``attributes`` included (it names the object
type and record URL, which costs nothing to keep and helps in error reports).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
import redis
import requests

from sync.crm.answers import (
    MAX_BATCH_SIZE,
    MAX_COLLECTION_RECORDS,
    MAX_COMPOSITE_QUERIES,
    MAX_COMPOSITE_SUBREQUESTS,
    MIN_BATCH_SIZE,
    QueryPage,
    RecordResult,
    json_object,
    query_page,
    record_results,
    subresponse_error,
    typed_records,
)
from sync.crm.auth import (
    SANDBOX_PASSWORD,
    SANDBOX_SECURITY_TOKEN,
    SANDBOX_USERNAME,
    ClientCredentialsLogin,
    Credentials,
    JwtLogin,
    LoginMethod,
    password_flow_warning,
    read_private_key,
)
from sync.crm.composite import CompositeApi
from sync.crm.errors import CrmConfigurationError, MalformedResponseError, snippet
from sync.crm.graph import unmodified_since
from sync.crm.retry import RetryPolicy
from sync.crm.session import make_session
from sync.crm.soql import identifier
from sync.crm.tokens import RedisTokens, TokenStore
from sync.crm.transport import PartialFailure
from sync.crm.usage import ApiUsage
from sync.settings import Settings

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
    "unmodified_since",
]

logger = logging.getLogger("sync.crm")

_LOGIN_HOSTS = ("login.salesforce.com", "test.salesforce.com")
_NO_LOGIN = (
    "no CRM login configured. For the JWT bearer flow set SALESFORCE_CONSUMER_KEY, "
    "SALESFORCE_USERNAME, SALESFORCE_PRIVATE_KEY_FILE and SALESFORCE_MY_DOMAIN; for client "
    "credentials SALESFORCE_CONSUMER_KEY, SALESFORCE_CONSUMER_SECRET and SALESFORCE_MY_DOMAIN "
    "(plus SALESFORCE_INSTANCE_URL for a sandbox or proxy), or use `billing-sync demo`, "
    "which runs the embedded sandbox"
)

_RECORD_ID = re.compile(r"^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$")


def _check_id(record_id: str) -> str:
    if not isinstance(record_id, str) or not _RECORD_ID.match(record_id):
        raise ValueError(f"not a Salesforce record Id: {record_id!r}")
    return record_id


def login_from_settings(settings: Settings) -> LoginMethod:
    """The login the ``SALESFORCE_*`` variables describe (see :attr:`Settings.auth_flow`).

    Raises:
        CrmConfigurationError: a variable the flow needs is missing or unusable; the
            message names it.
    """
    flow = settings.auth_flow
    if flow == "jwt":
        _require(
            "the JWT bearer flow",
            ("SALESFORCE_CONSUMER_KEY", settings.salesforce_consumer_key),
            ("SALESFORCE_USERNAME", settings.salesforce_username),
            ("SALESFORCE_PRIVATE_KEY_FILE", settings.salesforce_private_key_file),
        )
        assert settings.salesforce_consumer_key and settings.salesforce_username
        assert settings.salesforce_private_key_file
        domain = settings.salesforce_domain or "login"
        if domain not in ("login", "test"):
            raise CrmConfigurationError(
                f"SALESFORCE_DOMAIN={domain} must be login (production) or test (a sandbox "
                "org): it is the JWT audience; the My Domain host goes in SALESFORCE_MY_DOMAIN"
            )
        return JwtLogin(
            consumer_key=settings.salesforce_consumer_key,
            username=settings.salesforce_username,
            private_key=read_private_key(settings.salesforce_private_key_file),
            key_file=settings.salesforce_private_key_file,
            domain=domain,
            token_host=settings.salesforce_my_domain or f"{domain}.salesforce.com",
        )
    if flow == "client_credentials":
        _require(
            "the client-credentials flow",
            ("SALESFORCE_CONSUMER_KEY", settings.salesforce_consumer_key),
            ("SALESFORCE_CONSUMER_SECRET", settings.salesforce_consumer_secret),
            ("SALESFORCE_MY_DOMAIN", settings.salesforce_my_domain),
        )
        assert settings.salesforce_consumer_key and settings.salesforce_consumer_secret
        assert settings.salesforce_my_domain
        if settings.salesforce_my_domain in _LOGIN_HOSTS:
            raise CrmConfigurationError(
                f"SALESFORCE_MY_DOMAIN={settings.salesforce_my_domain}: Salesforce refuses the "
                "client-credentials flow on login and test hosts; use the org's My Domain "
                "host (e.g. acme.my.salesforce.com)"
            )
        return ClientCredentialsLogin(
            settings.salesforce_consumer_key,
            settings.salesforce_consumer_secret,
            settings.salesforce_my_domain,
        )
    missing = [
        name
        for name, value in (
            ("SALESFORCE_USERNAME", settings.salesforce_username),
            ("SALESFORCE_PASSWORD", settings.salesforce_password),
        )
        if not value
    ]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise CrmConfigurationError(
            f"{_NO_LOGIN}: for the legacy password flow {' and '.join(missing)} {verb} not set"
            if flow is None
            else f"the password flow needs {' and '.join(missing)}, which {verb} not set"
        )
    assert settings.salesforce_username and settings.salesforce_password
    logger.warning(password_flow_warning())
    return Credentials(
        username=settings.salesforce_username,
        password=settings.salesforce_password,
        security_token=settings.salesforce_security_token or "",
        domain=settings.salesforce_domain,
        consumer_key=settings.salesforce_consumer_key,
        consumer_secret=settings.salesforce_consumer_secret,
    )


def _require(flow: str, *pairs: tuple[str, str | None]) -> None:
    missing = [name for name, value in pairs if not value]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise CrmConfigurationError(f"{flow} needs {' and '.join(missing)}, which {verb} not set")


class CrmClient(CompositeApi):
    """Typed, retried, metered access to one Salesforce org's REST API.

    See :class:`~sync.crm.transport.CrmTransport` for construction, login, metering
    (:attr:`api_calls`, :attr:`api_usage`) and thread safety.
    """

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
            sandbox_url: base URL of a running sandbox; its default login (its published
                app, client credentials on its My Domain host) is used.
            retry: the retry policy (default: :class:`RetryPolicy`'s defaults).

        Raises:
            CrmConfigurationError: no sandbox_url and the login variables are incomplete;
                the message names the missing variables.
        """
        if sandbox_url is not None:
            credentials: LoginMethod = ClientCredentialsLogin.sandbox()
            instance_url: str | None = sandbox_url.rstrip("/")
        else:
            credentials = login_from_settings(settings)
            instance_url = settings.salesforce_instance_url
        tokens: TokenStore | None = None
        if settings.broker_url:
            # One token for every process of the deployment (see sync.crm.tokens).
            tokens = RedisTokens(
                redis.Redis.from_url(settings.broker_url),
                settings.redis_prefix,
                f"{instance_url or ''}|{credentials.cache_key()}",
                lock_ttl=settings.lock_ttl,
            )
        client = cls(
            credentials,
            session=session if session is not None else make_session(instance_url),
            api_version=settings.salesforce_api_version,
            retry=retry,
            tokens=tokens,
        )
        client._own_session = session is None
        return client

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
        headers = None if if_unmodified_since is None else unmodified_since(if_unmodified_since)
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
            retry = [i for i in sent if (r := outcome[i]) is not None and r.transient]
            if retry:
                pending[:] = sent if all_or_none else retry
                raise PartialFailure(
                    f"{len(retry)} record(s) failed transiently",
                    None,
                    method=method,
                    endpoint=path,
                )
            return [r for r in outcome if r is not None]

        try:
            return self.retry.retrying(idempotent=idempotent)(attempt)
        except PartialFailure:
            return [r for r in outcome if r is not None]

    # ------------------------------------------------------------ the org itself

    def versions(self) -> list[str]:
        """``GET /services/data/``: the API versions the org offers, oldest first."""
        answer = self._request("GET", "/services/data/", metered=False)
        offered = [str(v["version"]) for v in answer if isinstance(v, dict) and "version" in v]
        if not isinstance(answer, list) or not offered:
            raise MalformedResponseError(
                "the version list is not a JSON list of versions",
                method="GET",
                endpoint="/services/data/",
            )
        return sorted(offered, key=float)

    def check_api_version(self) -> str | None:
        """Stop when the org does not offer the configured version; note a newer one.

        Returns:
            The newest version the org offers when it is newer than the configured one
            (logged once per client), else None.

        Raises:
            CrmConfigurationError: the org does not offer ``api_version``; the message
                lists the versions it does offer.
        """
        offered = self.versions()
        if self.api_version not in offered:
            shown = ", ".join(offered[-8:])
            raise CrmConfigurationError(
                f"SALESFORCE_API_VERSION={self.api_version} is not offered by this org; it "
                f"offers {offered[0]} to {offered[-1]} (the newest: {shown}). Set "
                f"SALESFORCE_API_VERSION to one of them, e.g. {offered[-1]}"
            )
        newest = offered[-1]
        if float(newest) > float(self.api_version):
            if not self._newer_noted:
                self._newer_noted = True
                logger.info(
                    "the org offers API version %s, newer than SALESFORCE_API_VERSION=%s",
                    newest,
                    self.api_version,
                )
            return newest
        return None

    def identity(self) -> dict[str, Any]:
        """The identity URL of the token answer: who is logged in, in which org.

        Raises:
            CrmConfigurationError: the login gave no identity URL (SOAP login).
        """
        auth = self._current_auth()
        if not auth.identity_url.startswith("https://"):
            raise CrmConfigurationError("the login answer named no identity URL")
        return self._request("GET", auth.identity_url, shape=json_object, metered=False)
