"""The REST resources under ``/services/data/vXX.X/``, independent of the web framework.

:class:`RestApi` turns one :class:`ApiRequest` into one :class:`ApiResponse`; the web app
calls it for each HTTP request (after authentication, the daily limit and injected
faults), and ``/composite`` calls it again for each subrequest, which is why those count
as one API call.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from sync.sandbox import describe
from sync.sandbox.clock import format_ms, parse_datetime, parse_http_date, to_ms
from sync.sandbox.errors import ApiError, json_parser_error, method_not_allowed, not_found
from sync.sandbox.limits import ApiUsage
from sync.sandbox.queries import QueryService, batch_size_from_header
from sync.sandbox.schema import FieldDef, ObjectDef, Schema
from sync.sandbox.store import CHANGE_ORIGIN, MultipleMatches, Store
from sync.sandbox.values import FieldValueError, row_converter, sqlite_value_from_json

_VERSION = re.compile(r"^v(\d{2,3}\.\d)$")
_USER_PERMISSIONS = re.compile(
    r"^\s*SELECT\s+([\w\s,]+?)\s+FROM\s+UserPermissionAccess\s*$", re.IGNORECASE
)
_VERSION_ANY = re.compile(r"^v(\d{1,3}\.\d)$")
MIN_VERSION = 31.0
"""Versions 30.0 and older were retired in Summer '25: they answer 410 GONE."""
LATEST_VERSION = "68.0"
"""Winter '27."""


def parse_version(segment: str) -> str | None:
    """``"59.0"`` for the path segment ``"v59.0"`` when the API has that version."""
    match = _VERSION.match(segment)
    if not match or float(match.group(1)) < MIN_VERSION:
        return None
    if float(match.group(1)) > float(LATEST_VERSION):
        return None
    return match.group(1)


def retired_version(segment: str) -> bool:
    """True for ``v30.0`` and older: versions Salesforce has retired."""
    match = _VERSION_ANY.match(segment)
    return match is not None and float(match.group(1)) < MIN_VERSION


def retired(segment: str) -> ApiError:
    """The 410 GONE of a retired API version."""
    return ApiError(
        410,
        "UNSUPPORTED_API_VERSION",
        f"API version {segment.lstrip('v')} has been retired; use version "
        f"{int(MIN_VERSION)}.0 or later",
    )


def versions() -> list[dict[str, str]]:
    """``GET /services/data/``: the API versions the sandbox answers."""
    latest = int(float(LATEST_VERSION))
    return [
        {"label": f"v{v}.0", "url": f"/services/data/v{v}.0", "version": f"{v}.0"}
        for v in range(int(MIN_VERSION), latest + 1)
    ]


@dataclass
class ApiRequest:
    """One REST request, relative to ``/services/data/v{version}/``."""

    method: str
    path: str
    version: str
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""
    parsed: Any = None  # a JSON body already decoded (composite subrequests)

    def json(self) -> Any:
        """The decoded body.

        Raises:
            ApiError: 400 JSON_PARSER_ERROR.
        """
        if self.parsed is not None:
            return self.parsed
        if not self.body.strip():
            raise json_parser_error("No content to map due to end-of-input")
        try:
            self.parsed = orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise json_parser_error(f"Unexpected character in request body: {exc}") from None
        return self.parsed

    def json_object(self) -> dict[str, Any]:
        """The decoded body, which must be a JSON object.

        Raises:
            ApiError: 400 JSON_PARSER_ERROR.
        """
        body = self.json()
        if not isinstance(body, dict):
            raise json_parser_error("Cannot deserialize instance of object from a non-object")
        return body


@dataclass
class ApiResponse:
    """Status, JSON body (None for 204) and extra headers; ``raw`` for a non-JSON body."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    media_type: str = ""


def error_response(exc: ApiError) -> ApiResponse:
    """The Salesforce-shaped answer to ``exc``."""
    return ApiResponse(exc.status, exc.body())


def endpoint_of(path: str) -> str:
    """The statistics bucket of a relative REST path."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return "resources"
    head = parts[0]
    if head == "jobs":
        return "bulk2"
    if head in ("query", "queryAll", "limits", "composite"):
        if head == "composite" and len(parts) > 1 and parts[1] == "sobjects":
            return "collections"
        return head
    if head == "sobjects":
        if len(parts) <= 1 or (len(parts) == 3 and parts[2] == "describe"):
            return "describe"
        if len(parts) == 2:
            return "sobject"
        if parts[2] in ("deleted", "updated"):
            return parts[2]
        return "sobject"
    return "other"


def change_origin(api: str, version: str, headers: Mapping[str, str]) -> str:
    """``changeOrigin`` of a change event: the API and the caller's ``client=`` option."""
    origin = f"com/salesforce/api/{api}/{version}"
    options = headers.get("sforce-call-options", "")
    for part in options.split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "client" and value.strip():
            return f"{origin};client={value.strip()}"
    return origin


def record_json(obj: ObjectDef, values: dict[str, Any], version: str) -> dict[str, Any]:
    """A stored record as the REST API shows it (``attributes`` first)."""
    fields = [obj.fields[name.lower()] for name in values]
    out: dict[str, Any] = {
        "attributes": {
            "type": obj.name,
            "url": f"/services/data/v{version}/sobjects/{obj.name}/{values.get('Id', '')}",
        }
    }
    out.update(row_converter(fields)(list(values.values())))
    return out


def _window_bound(req: ApiRequest, name: str) -> datetime:
    """The ``start`` or ``end`` datetime of a deleted/updated window request.

    Raises:
        ApiError: 400 INVALID_REPLICATION_DATE naming the parameter and its value.
    """
    raw = req.params.get(name, "")
    moment = parse_datetime(raw)
    if moment is None:
        raise ApiError(
            400,
            "INVALID_REPLICATION_DATE",
            f"{name} must be an ISO 8601 datetime with a time zone, not {raw!r}",
        )
    return moment


class RestApi:
    """Routes relative REST paths to the store, queries and describe."""

    def __init__(
        self, store: Store, schema: Schema, queries: QueryService, usage: ApiUsage
    ) -> None:
        self.store = store
        self.schema = schema
        self.queries = queries
        self.usage = usage
        # set by the composite module (it needs this object to run subrequests)
        self.composite: Callable[[ApiRequest], ApiResponse] | None = None
        self.collections: Callable[[ApiRequest, list[str]], ApiResponse] | None = None
        # set by the graph module
        self.graph: Callable[[ApiRequest], ApiResponse] | None = None
        # set by the Bulk API 2.0 module
        self.bulk: Callable[[ApiRequest, list[str]], ApiResponse] | None = None
        self.bulk_jobs_remaining: Callable[[], int] | None = None
        # more /limits entries (the streaming endpoint's event delivery allocation)
        self.extra_limits: Callable[[], dict[str, Any]] | None = None
        # the logged-in user's permissions (UserPermissionAccess), set by the sandbox
        self.permissions: Callable[[], dict[str, bool]] | None = None

    def handle(self, req: ApiRequest) -> ApiResponse:
        """Answer ``req``; every failure becomes a Salesforce-shaped error response."""
        CHANGE_ORIGIN.set(change_origin("rest", req.version, req.headers))
        try:
            return self._route(req)
        except ApiError as exc:
            return error_response(exc)
        except MultipleMatches as exc:
            return ApiResponse(
                300,
                [
                    f"/services/data/v{req.version}/sobjects/{exc.object_name}/{rid}"
                    for rid in exc.record_ids
                ],
            )

    def _route(self, req: ApiRequest) -> ApiResponse:
        parts = [p for p in req.path.split("/") if p]
        method = req.method.upper()
        if not parts:
            return self._only(method, ["GET"], lambda: ApiResponse(200, self._resources(req)))
        head, rest = parts[0], parts[1:]
        if head in ("query", "queryAll"):
            return self._only(method, ["GET"], lambda: self._query(req, head, rest))
        if head == "limits" and not rest:
            return self._only(method, ["GET"], lambda: ApiResponse(200, self._limits()))
        if head == "composite":
            if not rest:
                handler = self.composite
                if handler is None:
                    raise not_found()
                return self._only(method, ["POST"], lambda: handler(req))
            graph = self.graph
            if rest == ["graph"] and graph is not None:
                return self._only(method, ["POST"], lambda: graph(req))
            if rest[0] == "sobjects" and len(rest) <= 3 and self.collections is not None:
                return self.collections(req, rest[1:])
            raise not_found()
        if head == "sobjects":
            return self._sobjects(req, method, rest)
        if head == "jobs" and self.bulk is not None:
            return self.bulk(req, rest)
        raise not_found()

    @staticmethod
    def _only(method: str, allowed: list[str], run: Callable[[], ApiResponse]) -> ApiResponse:
        if method not in allowed:
            raise method_not_allowed(method, allowed)
        return run()

    def _resources(self, req: ApiRequest) -> dict[str, str]:
        base = f"/services/data/v{req.version}"
        return {
            name: f"{base}/{name}"
            for name in ("sobjects", "query", "queryAll", "composite", "limits")
        }

    def _limits(self) -> dict[str, Any]:
        used = self.usage.used
        limit = self.usage.daily_limit
        return {
            "DailyApiRequests": {"Max": limit, "Remaining": max(0, limit - used)},
            "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
            "DailyBulkV2QueryJobs": {
                "Max": 10000,
                "Remaining": self.bulk_jobs_remaining() if self.bulk_jobs_remaining else 10000,
            },
            "DataStorageMB": {"Max": 1024, "Remaining": 1024},
            "ConcurrentPerOrgLongTxn": {"Max": 10, "Remaining": 10},
            **(self.extra_limits() if self.extra_limits is not None else {}),
        }

    # -- query ---------------------------------------------------------------------

    def _query(self, req: ApiRequest, head: str, rest: list[str]) -> ApiResponse:
        if rest:
            if len(rest) != 1:
                raise not_found()
            return ApiResponse(200, self.queries.more(rest[0], req.version))
        text = req.params.get("q")
        if not text:
            raise ApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
        permissions = _USER_PERMISSIONS.match(text)
        if permissions is not None and self.permissions is not None:
            return ApiResponse(200, self._user_permissions(permissions.group(1)))
        batch = batch_size_from_header(req.headers.get("sforce-query-options"))
        page = self.queries.query(
            text, include_deleted=head == "queryAll", batch=batch, version=req.version
        )
        return ApiResponse(200, page)

    def _user_permissions(self, selected: str) -> dict[str, Any]:
        # UserPermissionAccess is computed, as in Salesforce: one row, the current
        # user's effective permissions, whatever profile or permission set grants them.
        assert self.permissions is not None
        granted = {k.lower(): (k, v) for k, v in self.permissions().items()}
        record: dict[str, Any] = {"attributes": {"type": "UserPermissionAccess"}}
        for name in (n.strip() for n in selected.split(",")):
            known = granted.get(name.lower())
            if known is None:
                raise ApiError(
                    400,
                    "INVALID_FIELD",
                    f"No such column '{name}' on entity 'UserPermissionAccess'",
                )
            record[known[0]] = known[1]
        return {"totalSize": 1, "done": True, "records": [record]}

    # -- sobjects ------------------------------------------------------------------

    def _sobjects(self, req: ApiRequest, method: str, rest: list[str]) -> ApiResponse:
        if not rest:
            return self._only(
                method,
                ["GET"],
                lambda: ApiResponse(200, describe.describe_global(self.schema, req.version)),
            )
        obj = self.store.object(rest[0])
        if len(rest) == 1:
            if method == "GET":
                return ApiResponse(200, describe.object_info(obj, req.version))
            if method == "POST":
                record_id = self.store.create(obj, req.json_object())
                return ApiResponse(201, {"id": record_id, "success": True, "errors": []})
            raise method_not_allowed(method, ["GET", "POST"])
        second = rest[1]
        if len(rest) == 2 and second == "describe":
            return self._only(
                method,
                ["GET"],
                lambda: ApiResponse(200, describe.describe_object(obj, req.version)),
            )
        if len(rest) == 2 and second in ("deleted", "updated"):
            return self._only(method, ["GET"], lambda: self._window(req, obj, second))
        if len(rest) == 2:
            return self._record(req, method, obj, second)
        if len(rest) == 3:
            return self._external(req, method, obj, second, rest[2])
        raise not_found()

    def _fields_param(self, obj: ObjectDef, req: ApiRequest) -> list[FieldDef] | None:
        raw = req.params.get("fields")
        if not raw:
            return None
        chosen = []
        for name in (n.strip() for n in raw.split(",")):
            if not name:
                continue
            f = obj.field(name)
            if f is None:
                raise ApiError(
                    400, "INVALID_FIELD", f"No such column '{name}' on entity '{obj.name}'"
                )
            chosen.append(f)
        if not any(f.name == "Id" for f in chosen):
            chosen.insert(0, obj.fields["id"])
        return chosen

    def _record(self, req: ApiRequest, method: str, obj: ObjectDef, raw_id: str) -> ApiResponse:
        if method == "GET":
            values = self.store.get(obj, raw_id, self._fields_param(obj, req))
            return ApiResponse(200, record_json(obj, values, req.version))
        if method == "PATCH":
            since_ms = None
            header = req.headers.get("if-unmodified-since")
            if header:
                since = parse_http_date(header)
                if since is None:
                    raise ApiError(
                        400, "INVALID_HEADER_VALUE", f"Invalid If-Unmodified-Since: {header}"
                    )
                since_ms = to_ms(since)
            self.store.update(obj, raw_id, req.json_object(), if_unmodified_since_ms=since_ms)
            return ApiResponse(204)
        if method == "DELETE":
            self.store.delete(obj, raw_id)
            return ApiResponse(204)
        raise method_not_allowed(method, ["GET", "PATCH", "DELETE"])

    def _external(
        self, req: ApiRequest, method: str, obj: ObjectDef, field_name: str, value: str
    ) -> ApiResponse:
        if method == "PATCH":
            result = self.store.upsert(obj, field_name, value, req.json_object())
            return ApiResponse(
                201 if result.created else 200,
                {"id": result.id, "success": True, "errors": [], "created": result.created},
            )
        if method not in ("GET", "DELETE"):
            raise method_not_allowed(method, ["GET", "PATCH", "DELETE"])
        f = obj.field(field_name)
        if f is None or not f.external_id:
            raise ApiError(
                404,
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {field_name}",
            )
        try:
            matches = self.store.find_by_external_id(obj, f, sqlite_value_from_json(f, value))
        except FieldValueError:
            matches = []
        if not matches:
            raise not_found()
        if len(matches) > 1:
            raise MultipleMatches(obj.name, matches)
        return self._record(req, method, obj, matches[0])

    def _window(self, req: ApiRequest, obj: ObjectDef, kind: str) -> ApiResponse:
        start, end = _window_bound(req, "start"), _window_bound(req, "end")
        if end <= start:
            raise ApiError(
                400,
                "INVALID_REPLICATION_DATE",
                "startDate must chronologically precede endDate",
            )
        # stamps may run ahead of the wall clock under bursts of writes (see the clock);
        # nothing written later can get a stamp at or before the latest one handed out
        clock = self.store.clock
        covered_ms = min(to_ms(end), max(clock.wall_ms(), clock.last_ms + 1))
        start_text, covered = format_ms(to_ms(start)), format_ms(covered_ms)
        if kind == "deleted":
            rows = self.store.deleted_between(obj, start_text, covered)
            return ApiResponse(
                200,
                {
                    "deletedRecords": [{"id": rid, "deletedDate": when} for rid, when in rows],
                    "earliestDateAvailable": format_ms(self.store.earliest_available_ms()),
                    "latestDateCovered": covered,
                },
            )
        ids = self.store.updated_between(obj, start_text, covered)
        return ApiResponse(200, {"ids": ids, "latestDateCovered": covered})
