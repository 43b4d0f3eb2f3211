"""``/composite`` (subrequests with references) and sObject Collections.

``/composite`` runs up to 25 subrequests through the same :class:`RestApi` as direct
calls, as ONE API call; at most 5 of them may be queries or collections (Salesforce's
rule). ``@{referenceId.path}`` in a later subrequest's URL or body is replaced by a value
of an earlier answer. With ``allOrNone`` the first failing subrequest rolls back all
writes and the others answer PROCESSING_HALTED.

Collections write up to 200 records per request, each in its own savepoint; with
``allOrNone`` one failure rolls back the whole batch and the other records answer
ALL_OR_NONE_OPERATION_ROLLED_BACK.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlsplit

from sync.sandbox import ids
from sync.sandbox.errors import ApiError, json_parser_error, method_not_allowed, not_found
from sync.sandbox.rest import ApiRequest, ApiResponse, RestApi, parse_version, record_json
from sync.sandbox.store import MultipleMatches, Store

MAX_SUBREQUESTS = 25
MAX_QUERY_OR_COLLECTION = 5
MAX_RECORDS = 200
_REFERENCE = re.compile(r"@\{([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+|\[\d+\])*)\}")
_REFERENCE_ID = re.compile(r"^[A-Za-z0-9_]{1,80}$")
_ROLLED_BACK = {
    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "message": "Record rolled back because not all records were valid and the request was "
    "using AllOrNone header",
    "fields": [],
}
_HALTED = "The transaction was rolled back since another operation in the same transaction failed."


class _Rollback(Exception):
    """Unwinds the enclosing transaction."""


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


# -- /composite -----------------------------------------------------------------------


def _lookup(value: Any, path: str) -> Any:
    for step in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+)\]", path):
        key, index = step
        if key:
            if not isinstance(value, dict):
                raise KeyError(key)
            match = next((k for k in value if k.lower() == key.lower()), None)
            if match is None:
                raise KeyError(key)
            value = value[match]
        else:
            if not isinstance(value, list) or int(index) >= len(value):
                raise KeyError(index)
            value = value[int(index)]
    return value


def substitute(value: Any, results: dict[str, Any]) -> Any:
    """``value`` with every ``@{ref.path}`` replaced; raises KeyError when unresolved."""
    if isinstance(value, str):
        whole = _REFERENCE.fullmatch(value)
        if whole:
            return _lookup(results[whole.group(1)], whole.group(2))
        return _REFERENCE.sub(lambda m: str(_lookup(results[m.group(1)], m.group(2))), value)
    if isinstance(value, list):
        return [substitute(v, results) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, results) for k, v in value.items()}
    return value


def split_url(url: str) -> SplitResult | None:
    """``url``'s parts, or None when it is not a URL at all."""
    try:
        return urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 host: "http://[::1"
        return None


def _is_query_or_collection(url: str) -> bool:
    split = split_url(url)
    if split is None:
        return False
    parts = [p for p in split.path.split("/") if p]
    rest = parts[3:] if len(parts) >= 3 else []
    if not rest:
        return False
    return rest[0] in ("query", "queryAll") or rest[:2] == ["composite", "sobjects"]


def parse_subrequest(item: Any) -> tuple[str, str, str]:
    """(method, url, referenceId) of a subrequest; raises ApiError 400 when malformed."""
    if not isinstance(item, dict):
        raise json_parser_error("Each compositeRequest item must be an object")
    method, url, ref = item.get("method"), item.get("url"), item.get("referenceId")
    if not isinstance(method, str) or not isinstance(url, str) or not isinstance(ref, str):
        raise ApiError(
            400, "INVALID_INPUT", "Each subrequest needs a method, a url and a referenceId"
        )
    if not _REFERENCE_ID.match(ref):
        raise ApiError(400, "INVALID_INPUT", f"Invalid referenceId: {ref}")
    headers = item.get("httpHeaders")
    if headers is not None and not isinstance(headers, dict):
        raise ApiError(400, "INVALID_INPUT", f"httpHeaders of {ref} must be an object")
    return method.upper(), url, ref


def halted_answer(ref: str, message: str = _HALTED) -> dict[str, Any]:
    """The PROCESSING_HALTED answer of a subrequest that did not run or was rolled back."""
    return {
        "body": [{"errorCode": "PROCESSING_HALTED", "message": message}],
        "httpHeaders": {},
        "httpStatusCode": 400,
        "referenceId": ref,
    }


def _unresolved(ref: str) -> str:
    return f"Invalid reference specified. No value found for {ref}."


class Composite:
    """``POST /composite`` and ``/composite/sobjects``; registers itself on ``api``."""

    def __init__(self, api: RestApi, store: Store) -> None:
        self.api = api
        self.store = store
        api.composite = self.composite
        api.collections = self.collections

    def composite(self, req: ApiRequest) -> ApiResponse:
        """Run the subrequests of one ``/composite`` request.

        Raises:
            ApiError: 400 for a malformed request or one over the subrequest limits.
        """
        body = req.json_object()
        items = body.get("compositeRequest")
        if not isinstance(items, list) or not items:
            raise ApiError(400, "INVALID_INPUT", "compositeRequest must be a non-empty array")
        subs = [parse_subrequest(item) for item in items]
        if len(subs) > MAX_SUBREQUESTS:
            raise ApiError(
                400,
                "LIMIT_EXCEEDED",
                f"A composite request may contain at most {MAX_SUBREQUESTS} subrequests; "
                f"this one has {len(subs)}",
            )
        heavy = sum(1 for _, url, _ in subs if _is_query_or_collection(url))
        if heavy > MAX_QUERY_OR_COLLECTION:
            raise ApiError(
                400,
                "LIMIT_EXCEEDED",
                f"A composite request may contain at most {MAX_QUERY_OR_COLLECTION} query or "
                f"sObject Collections subrequests; this one has {heavy}",
            )
        refs = [ref for _, _, ref in subs]
        if len(set(refs)) != len(refs):
            raise ApiError(400, "INVALID_INPUT", "Duplicate referenceId in compositeRequest")
        all_or_none = _as_bool(body.get("allOrNone", False))
        out: list[dict[str, Any]] = []
        if not all_or_none:
            self._run(req, items, subs, out, stop_on_error=False)
            return ApiResponse(200, {"compositeResponse": out})
        try:
            with self.store.transaction():
                if not self._run(req, items, subs, out, stop_on_error=True):
                    raise _Rollback
        except _Rollback:
            failed = out[-1]
            out = [failed if item is failed else halted_answer(item["referenceId"]) for item in out]
            out.extend(halted_answer(ref) for ref in refs[len(out) :])
        return ApiResponse(200, {"compositeResponse": out})

    def _run(
        self,
        req: ApiRequest,
        items: list[Any],
        subs: list[tuple[str, str, str]],
        out: list[dict[str, Any]],
        *,
        stop_on_error: bool,
    ) -> bool:
        results: dict[str, Any] = {}
        for item, (method, url, ref) in zip(items, subs, strict=True):
            try:
                # a reference may stand for the whole URL; whatever it holds becomes text
                url = str(substitute(url, results))
                sub_body = substitute(item.get("body"), results)
            except KeyError:
                out.append(
                    halted_answer(ref, f"Invalid reference specified. No value found for {ref}.")
                )
                if stop_on_error:
                    return False
                continue
            headers = {str(k).lower(): str(v) for k, v in (item.get("httpHeaders") or {}).items()}
            answer = self.run_one(req, method, url, sub_body, headers)
            entry: dict[str, Any] = {
                "body": answer.body,
                "httpHeaders": answer.headers,
                "httpStatusCode": answer.status,
                "referenceId": ref,
            }
            out.append(entry)
            if answer.status < 300:
                results[ref] = answer.body
            elif stop_on_error:
                return False
        return True

    def run_one(
        self, req: ApiRequest, method: str, url: str, body: Any, headers: dict[str, str]
    ) -> ApiResponse:
        """One subrequest through the REST API, as /composite and /composite/graph run it."""
        parts = split_url(url)
        segments = [p for p in parts.path.split("/") if p] if parts else []
        if parts is None or segments[:2] != ["services", "data"] or len(segments) < 3:
            return ApiResponse(404, not_found().body())
        version = parse_version(segments[2])
        if version is None or version != req.version:
            return ApiResponse(
                400,
                [
                    {
                        "errorCode": "INVALID_INPUT",
                        "message": "Subrequests must use the API version of the composite request",
                    }
                ],
            )
        rel = "/".join(segments[3:])
        if rel == "composite":
            return ApiResponse(
                400, [{"errorCode": "INVALID_INPUT", "message": "Composite cannot be nested"}]
            )
        sub = ApiRequest(
            method=method,
            path=rel,
            version=version,
            params=dict(parse_qsl(parts.query)),
            headers=headers,
            parsed=body,
        )
        answer = self.api.handle(sub)
        if method == "POST" and answer.status == 201 and isinstance(answer.body, dict):
            answer.headers = {"Location": f"{parts.path.rstrip('/')}/{answer.body.get('id')}"}
        return answer

    # -- sObject Collections ------------------------------------------------------------

    def collections(self, req: ApiRequest, rest: list[str]) -> ApiResponse:
        """``/composite/sobjects[/{T}[/{ExtIdField}]]``."""
        method = req.method.upper()
        if not rest:
            if method == "POST":
                return self._write(req, "create")
            if method == "PATCH":
                return self._write(req, "update")
            if method == "DELETE":
                return self._delete(req)
            raise method_not_allowed(method, ["POST", "PATCH", "DELETE"])
        if len(rest) == 1:
            if method != "GET":
                raise method_not_allowed(method, ["GET"])
            return self._retrieve(req, rest[0])
        if method != "PATCH":
            raise method_not_allowed(method, ["PATCH"])
        return self._write(req, "upsert", rest[0], rest[1])

    @staticmethod
    def _check_size(count: int) -> None:
        if count > MAX_RECORDS:
            raise ApiError(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {MAX_RECORDS} records into "
                "this call",
            )

    def _write(
        self, req: ApiRequest, op: str, type_name: str = "", field_name: str = ""
    ) -> ApiResponse:
        body = req.json_object()
        records = body.get("records")
        if not isinstance(records, list):
            raise json_parser_error("records must be an array")
        self._check_size(len(records))
        all_or_none = _as_bool(body.get("allOrNone", False))
        upsert_obj = self.store.object(type_name) if op == "upsert" else None

        def one(record: Any) -> dict[str, Any]:
            record_id = None
            try:
                if not isinstance(record, dict):
                    raise json_parser_error("Each record must be an object")
                attributes = record.get("attributes") or {}
                record_type = attributes.get("type") if isinstance(attributes, dict) else None
                if not record_type:
                    raise ApiError(400, "INVALID_TYPE", "Must send a concrete entity type.")
                obj = self.store.object(str(record_type))
                values = {k: v for k, v in record.items() if k != "attributes"}
                if op == "create":
                    record_id = self.store.create(obj, values)
                    return {"id": record_id, "success": True, "errors": []}
                if op == "update":
                    key = next((k for k in values if k.lower() == "id"), None)
                    record_id = values.pop(key) if key else None
                    if not isinstance(record_id, str):
                        raise ApiError(
                            400, "MISSING_ARGUMENT", "Id not specified in an update call"
                        )
                    record_id = self.store.update(obj, record_id, values)
                    return {"id": record_id, "success": True, "errors": []}
                assert upsert_obj is not None
                if obj.name != upsert_obj.name:
                    raise ApiError(400, "INVALID_TYPE", f"Records must all be {upsert_obj.name}")
                key = next((k for k in values if k.lower() == field_name.lower()), None)
                value = values.get(key) if key else None
                if value is None:
                    raise ApiError(
                        400,
                        "MISSING_ARGUMENT",
                        f"{field_name} not specified",
                        [field_name],
                    )
                result = self.store.upsert(obj, field_name, str(value), values)
                return {"id": result.id, "success": True, "errors": [], "created": result.created}
            except ApiError as exc:
                return {"id": record_id, "success": False, "errors": [exc.record_error()]}
            except MultipleMatches as exc:
                return {
                    "id": None,
                    "success": False,
                    "errors": [
                        {
                            "statusCode": "DUPLICATE_EXTERNAL_ID",
                            "message": f"{field_name}: more than one record found for "
                            f"external id field: {exc.record_ids}",
                            "fields": [field_name],
                        }
                    ],
                }

        if op == "upsert":
            # checked before any record so that a bad field fails the whole request
            assert upsert_obj is not None
            f = upsert_obj.field(field_name)
            if f is None or not (f.external_id or f.name == "Id"):
                raise ApiError(
                    404,
                    "NOT_FOUND",
                    f"Provided external ID field does not exist or is not accessible: {field_name}",
                )
        return ApiResponse(200, self._batch(records, one, all_or_none, op))

    def _batch(
        self, items: list[Any], one: Any, all_or_none: bool, op: str
    ) -> list[dict[str, Any]]:
        if not all_or_none:
            return [one(item) for item in items]
        results: list[dict[str, Any]] = []
        try:
            with self.store.transaction():
                results = [one(item) for item in items]
                if not all(r["success"] for r in results):
                    raise _Rollback
        except _Rollback:
            rolled = []
            for r in results:
                if r["success"]:
                    keep_id = r["id"] if op in ("update", "delete") else None
                    rolled.append({"id": keep_id, "success": False, "errors": [_ROLLED_BACK]})
                else:
                    rolled.append(r)
            return rolled
        return results

    def _delete(self, req: ApiRequest) -> ApiResponse:
        raw = req.params.get("ids", "")
        record_ids = [i.strip() for i in raw.split(",") if i.strip()]
        if not record_ids:
            raise ApiError(400, "MISSING_ARGUMENT", "ids not specified")
        self._check_size(len(record_ids))
        all_or_none = _as_bool(req.params.get("allOrNone", "false"))

        def one(record_id: str) -> dict[str, Any]:
            try:
                obj = self.store.schema.by_prefix(record_id[:3])
                if obj is None or ids.normalize(record_id) is None:
                    raise ApiError(400, "MALFORMED_ID", f"malformed id {record_id}")
                return {"id": self.store.delete(obj, record_id), "success": True, "errors": []}
            except ApiError as exc:
                return {"id": record_id, "success": False, "errors": [exc.record_error()]}

        return ApiResponse(200, self._batch(record_ids, one, all_or_none, "delete"))

    def _retrieve(self, req: ApiRequest, type_name: str) -> ApiResponse:
        obj = self.store.object(type_name)
        record_ids = [i.strip() for i in req.params.get("ids", "").split(",") if i.strip()]
        names = [n.strip() for n in req.params.get("fields", "").split(",") if n.strip()]
        if not record_ids or not names:
            raise ApiError(400, "MISSING_ARGUMENT", "ids and fields must be specified")
        self._check_size(len(record_ids))
        malformed = [i for i in record_ids if ids.normalize(i) is None]
        if malformed:
            raise ApiError(400, "MALFORMED_ID", f"invalid ID: {', '.join(malformed[:10])}")
        fields = []
        for name in ["Id", *names]:
            f = obj.field(name)
            if f is None:
                raise ApiError(
                    400, "INVALID_FIELD", f"No such column '{name}' on entity '{obj.name}'"
                )
            if f not in fields:
                fields.append(f)
        out: list[dict[str, Any] | None] = []
        for record_id in record_ids:
            try:
                out.append(record_json(obj, self.store.get(obj, record_id, fields), req.version))
            except ApiError:
                out.append(None)
        return ApiResponse(200, out)
