"""The shapes of the CRM's answers: typed results, and the checks that raise on garbage.

The shape functions take decoded JSON and return the typed value, or raise
:class:`WrongShape` naming what is wrong; the client turns that into a
:class:`~sync.crm.errors.MalformedResponseError` naming the endpoint.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from sync.crm.errors import CrmError, ErrorResolution, RecordError, error_from_answer
from sync.crm.soql import identifier

MAX_COMPOSITE_SUBREQUESTS = 25
MAX_COMPOSITE_QUERIES = 5
MAX_COLLECTION_RECORDS = 200
MIN_BATCH_SIZE = 200
MAX_BATCH_SIZE = 2000

_QUERY_PATH = re.compile(r"^/services/data/v[0-9.]+/(query|queryAll)(/|\?|$)")


@dataclass
class QueryPage:
    """One page of a query answer.

    Attributes:
        records: the records as sent, ``attributes`` included.
        total_size: rows the whole query matches (or the count of ``SELECT COUNT()``).
        done: True on the last page.
        next_records_url: path of the next page while not done.
    """

    records: list[dict[str, Any]]
    total_size: int
    done: bool
    next_records_url: str | None


@dataclass(frozen=True)
class RecordResult:
    """The outcome for one record of a collection call, in request order.

    Attributes:
        id: the record's Id (None when it failed before getting one).
        success: True when the record was written.
        errors: why it failed; a transient error (UNABLE_TO_LOCK_ROW) that outlasted the
            retry policy appears here too.
        created: for upserts, True when the record was created (None otherwise).
    """

    id: str | None
    success: bool
    errors: tuple[RecordError, ...] = ()
    created: bool | None = None

    @property
    def transient(self) -> bool:
        """True when the record failed only with errors a later attempt may clear."""
        return not self.success and bool(self.errors) and all(e.transient for e in self.errors)

    @property
    def error_text(self) -> str:
        """The errors as one line, for logs and record-error rows."""
        return "; ".join(
            f"{e.status_code}: {e.message}" + (f" ({', '.join(e.fields)})" if e.fields else "")
            for e in self.errors
        )


class WrongShape(Exception):
    """A 2xx answer decoded as JSON but not in the shape the endpoint promises."""


def json_object(data: Any) -> dict[str, Any]:
    """``data`` when it is a JSON object (describe, limits, a record)."""
    if not isinstance(data, dict):
        raise WrongShape(f"expected a JSON object, got {type(data).__name__}")
    return data


def query_page(data: Any) -> QueryPage:
    """A :class:`QueryPage` of a query/queryAll answer (``nextRecordsUrl`` a query path)."""
    if not isinstance(data, dict):
        raise WrongShape(f"expected a query result object, got {type(data).__name__}")
    records = data.get("records")
    total = data.get("totalSize")
    done = data.get("done")
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise WrongShape("'records' is missing or not a list of objects")
    if not isinstance(total, int) or isinstance(total, bool):
        raise WrongShape("'totalSize' is missing or not an integer")
    if not isinstance(done, bool):
        raise WrongShape("'done' is missing or not a boolean")
    next_url = data.get("nextRecordsUrl")
    if done:
        next_url = None
    elif not isinstance(next_url, str) or not _QUERY_PATH.match(next_url):
        raise WrongShape(f"not done but 'nextRecordsUrl' is {next_url!r}")
    return QueryPage(records=records, total_size=total, done=done, next_records_url=next_url)


def composite_items(data: Any, expected: int) -> list[dict[str, Any]]:
    """The ``compositeResponse`` list of a /composite answer, one item per subrequest."""
    items = data.get("compositeResponse") if isinstance(data, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise WrongShape("'compositeResponse' is missing or not a list of objects")
    if len(items) != expected:
        raise WrongShape(f"{len(items)} subresponses for {expected} subrequests")
    for item in items:
        if not isinstance(item.get("httpStatusCode"), int):
            raise WrongShape("a subresponse has no 'httpStatusCode'")
    return items


def record_results(data: Any, expected: int) -> list[RecordResult]:
    """The per-record results of an sObject Collections answer, one per record sent."""
    if not isinstance(data, list) or not all(isinstance(i, dict) for i in data):
        raise WrongShape("expected a list of per-record results")
    if len(data) != expected:
        raise WrongShape(f"{len(data)} results for {expected} records")
    results = []
    for item in data:
        success = item.get("success")
        if not isinstance(success, bool):
            raise WrongShape("a per-record result has no boolean 'success'")
        errors = item.get("errors") or []
        if not isinstance(errors, list):
            raise WrongShape("'errors' of a per-record result is not a list")
        record_id = item.get("id")
        created = item.get("created")
        results.append(
            RecordResult(
                id=record_id if isinstance(record_id, str) else None,
                success=success,
                errors=tuple(RecordError.from_json(e) for e in errors if isinstance(e, dict)),
                created=created if isinstance(created, bool) else None,
            )
        )
    return results


def typed_records(sobject: str, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Copies of ``records`` with the ``attributes.type`` sObject Collections require."""
    kind = {"type": identifier(sobject)}
    return [
        {"attributes": kind, **{k: v for k, v in r.items() if k != "attributes"}} for r in records
    ]


def check_composite(subrequests: Sequence[Mapping[str, Any]]) -> None:
    """Refuse what the CRM would refuse with a 400 (and charge an API call for).

    Raises:
        ValueError: no subrequests, more than 25, more than 5 queries (query, queryAll
            or a next page), a subrequest without method/url/referenceId, a url outside
            ``/services/data/``, or a duplicate referenceId.
    """
    if not subrequests:
        raise ValueError("a composite request needs at least one subrequest")
    if len(subrequests) > MAX_COMPOSITE_SUBREQUESTS:
        raise ValueError(
            f"a composite request takes at most {MAX_COMPOSITE_SUBREQUESTS} subrequests, "
            f"got {len(subrequests)}"
        )
    queries = 0
    references: set[str] = set()
    for sub in subrequests:
        method, url, ref = sub.get("method"), sub.get("url"), sub.get("referenceId")
        if not isinstance(method, str) or not isinstance(url, str) or not isinstance(ref, str):
            raise ValueError(f"a subrequest needs method, url and referenceId: {dict(sub)!r}")
        if not url.startswith("/services/data/"):
            raise ValueError(f"subrequest url must start with /services/data/: {url!r}")
        if ref in references:
            raise ValueError(f"duplicate referenceId {ref!r}")
        references.add(ref)
        if method.upper() == "GET" and _QUERY_PATH.match(url):
            queries += 1
    if queries > MAX_COMPOSITE_QUERIES:
        raise ValueError(
            f"a composite request takes at most {MAX_COMPOSITE_QUERIES} queries, got {queries}"
        )


def subresponse_transient(item: Mapping[str, Any]) -> bool:
    """True when a /composite subresponse failed with an error a retry may clear."""
    error = subresponse_error(item)
    return error is not None and error.resolution is ErrorResolution.RETRY


def subresponse_error(
    item: Mapping[str, Any], *, method: str = "", endpoint: str = ""
) -> CrmError | None:
    """The exception a failed /composite subresponse stands for, or None if it succeeded.

    Sorted by the same table as top-level answers: e.g. 400 UNABLE_TO_LOCK_ROW gives a
    retryable :class:`TransientCrmError`, 400 INVALID_FIELD a :class:`CrmRequestError`.
    """
    status = item.get("httpStatusCode")
    if not isinstance(status, int) or status < 300:
        return None
    body = item.get("body")
    return error_from_answer(
        status,
        body,
        raw=orjson.dumps(body),
        method=method,
        endpoint=endpoint or str(item.get("referenceId") or ""),
    )
