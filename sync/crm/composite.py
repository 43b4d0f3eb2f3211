"""Typed calls over ``/composite`` and ``/composite/graph``: the only code that knows their wire.

Reads ride ``/composite`` (one API call for up to 25 subrequests, at most 5 of them
queries): :meth:`CompositeApi.query_many`, :meth:`CompositeApi.describe_many` and
:meth:`CompositeApi.get_many` chunk their input to those limits and answer one typed
result per input, in input order. A failed subrequest is a result (its ``error`` set),
sorted by the CRM error table (:mod:`sync.crm.errors`), never a raised exception: one
bad object must not hide the answers of the others.

Writes are built with :class:`~sync.crm.graph.AtomicWrite` and sent by
:meth:`CompositeApi.write_atomic` as ONE graph of ``/composite/graph``: the CRM applies
every node or none, and the whole request counts as one API call. The graph's limits
(500 nodes, 15 distinct method x object x version node kinds, reference depth 15) are
checked before anything is sent; a write that does not fit is refused, never split.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sync.crm.answers import (
    MAX_COMPOSITE_QUERIES,
    MAX_COMPOSITE_SUBREQUESTS,
    QueryPage,
    WrongShape,
    check_composite,
    composite_items,
    query_page,
    subresponse_error,
    subresponse_transient,
)
from sync.crm.errors import CrmError, ErrorResolution
from sync.crm.graph import AtomicResult, AtomicWrite, graph_result
from sync.crm.soql import identifier
from sync.crm.transport import IDEMPOTENT_METHODS, CrmTransport, PartialFailure

_REFERENCE = re.compile(r"@\{([A-Za-z0-9_]+)[.\[]")
_REFERENCE_ID = re.compile(r"^[A-Za-z0-9_]{1,80}$")


def error_text(error: CrmError | None, status: int) -> str:
    """A failed subrequest as one line: ``CODE: message`` (``HTTP n`` without an error)."""
    if error is None:
        return f"HTTP {status}"
    code = f"{error.error_code}: " if error.error_code else ""
    return f"{code}{error.message}"


# ------------------------------------------------------------------- read results


@dataclass(frozen=True)
class QueryAnswer:
    """The answer to one query of :meth:`CompositeApi.query_many`.

    Attributes:
        soql: the query as asked.
        page: its first page (None when it failed).
        error: why it failed (None on success).
        status: the subrequest's HTTP status.
    """

    soql: str
    page: QueryPage | None
    error: CrmError | None
    status: int

    @property
    def text(self) -> str:
        """The failure as one line (for logs and problems)."""
        return error_text(self.error, self.status)


@dataclass(frozen=True)
class DescribeAnswer:
    """The describe of one object: ``describe`` is None when the CRM does not know it."""

    sobject: str
    describe: dict[str, Any] | None
    error: CrmError | None
    status: int

    @property
    def text(self) -> str:
        """The failure as one line."""
        return error_text(self.error, self.status)


@dataclass(frozen=True)
class RecordRead:
    """One record to read by Id, with the fields wanted."""

    sobject: str
    record_id: str
    fields: tuple[str, ...]


@dataclass(frozen=True)
class ReadAnswer:
    """One record as read by :meth:`CompositeApi.get_many`.

    Attributes:
        request: what was asked.
        record: the record's fields (``attributes`` left out); None when not found or failed.
        found: False when the CRM answered 404 (deleted, or never there).
        error: why the read failed (None on success and on 404).
    """

    request: RecordRead
    record: dict[str, Any] | None
    found: bool
    error: CrmError | None


# ------------------------------------------------------------------- the calls


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class CompositeReads:
    """Typed reads over ``composite()``: mixed into the client, and into test doubles."""

    if TYPE_CHECKING:

        def composite(
            self, subrequests: Sequence[Mapping[str, Any]], *, all_or_none: bool = False
        ) -> list[dict[str, Any]]: ...

        def data_url(self, path: str) -> str: ...

        def sobject_url(self, sobject: str, *parts: str) -> str: ...

    # ------------------------------------------------------------------ reads

    def query_many(
        self, soqls: Sequence[str], *, include_deleted: bool = False
    ) -> list[QueryAnswer]:
        """The first page of each query, five queries per API call, in input order.

        Args:
            soqls: the queries (build them with :mod:`sync.crm.soql`).
            include_deleted: use ``queryAll`` (deleted rows too).

        Raises:
            CrmError: a /composite call failed as a whole (REQUEST_LIMIT_EXCEEDED included).
        """
        resource = "queryAll" if include_deleted else "query"
        out: list[QueryAnswer] = []
        for chunk in _chunks(soqls, MAX_COMPOSITE_QUERIES):
            subrequests = [
                {
                    "method": "GET",
                    "url": self.data_url(f"{resource}?q=" + quote(soql, safe="")),
                    "referenceId": f"q{i}",
                }
                for i, soql in enumerate(chunk)
            ]
            for soql, item in zip(chunk, self.composite(subrequests), strict=True):
                status = int(item["httpStatusCode"])
                error = subresponse_error(item, method="GET", endpoint=resource)
                page: QueryPage | None = None
                if error is None:
                    try:
                        page = query_page(item.get("body"))
                    except WrongShape as exc:
                        error = CrmError(f"{resource}: {exc}", status=status)
                out.append(QueryAnswer(soql, page, error, status))
        return out

    def describe_many(self, sobjects: Sequence[str]) -> list[DescribeAnswer]:
        """The describe of each object, 25 per API call, in input order.

        An object the CRM does not know answers ``describe=None`` and no error.

        Raises:
            CrmError: a /composite call failed as a whole.
        """
        out: list[DescribeAnswer] = []
        for chunk in _chunks(sobjects, MAX_COMPOSITE_SUBREQUESTS):
            subrequests = [
                {"method": "GET", "url": self.sobject_url(name, "describe"), "referenceId": f"d{i}"}
                for i, name in enumerate(chunk)
            ]
            for name, item in zip(chunk, self.composite(subrequests), strict=True):
                status = int(item["httpStatusCode"])
                if status == 404:
                    out.append(DescribeAnswer(name, None, None, status))
                    continue
                error = subresponse_error(item, method="GET", endpoint=f"{name}/describe")
                body = item.get("body")
                if error is None and not isinstance(body, dict):
                    error = CrmError(f"describe {name}: not a JSON object", status=status)
                found = body if error is None and isinstance(body, dict) else None
                out.append(DescribeAnswer(name, found, error, status))
        return out

    def get_many(self, reads: Sequence[RecordRead]) -> list[ReadAnswer]:
        """Each record with the fields asked, 25 per API call, in input order.

        Raises:
            CrmError: a /composite call failed as a whole.
        """
        out: list[ReadAnswer] = []
        for chunk in _chunks(reads, MAX_COMPOSITE_SUBREQUESTS):
            subrequests = []
            for i, read in enumerate(chunk):
                url = self.sobject_url(read.sobject, read.record_id)
                if read.fields:
                    url += "?fields=" + ",".join(identifier(f) for f in read.fields)
                subrequests.append({"method": "GET", "url": url, "referenceId": f"r{i}"})
            for read, item in zip(chunk, self.composite(subrequests), strict=True):
                status = int(item["httpStatusCode"])
                if status == 404:
                    out.append(ReadAnswer(read, None, False, None))
                    continue
                endpoint = f"{read.sobject}/{read.record_id}"
                error = subresponse_error(item, method="GET", endpoint=endpoint)
                body = item.get("body")
                record = (
                    {k: v for k, v in body.items() if k != "attributes"}
                    if error is None and isinstance(body, dict)
                    else None
                )
                if error is None and record is None:
                    error = CrmError(f"GET {endpoint}: not a JSON object", status=status)
                out.append(ReadAnswer(read, record, True, error))
        return out


class CompositeApi(CompositeReads, CrmTransport):
    """The composite calls of :class:`~sync.crm.client.CrmClient`: raw, typed reads, writes."""

    def composite(
        self, subrequests: Sequence[Mapping[str, Any]], *, all_or_none: bool = False
    ) -> list[dict[str, Any]]:
        """Run up to 25 subrequests (at most 5 of them queries) as one API call.

        The raw form under the typed calls below; code outside sync/crm/ uses those.

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
        idempotent = all(str(s["method"]).upper() in IDEMPOTENT_METHODS for s in subrequests)
        path = self.data_url("composite")
        body = {"allOrNone": all_or_none, "compositeRequest": list(subrequests)}
        resend_safe = idempotent or all_or_none

        def shape(data: Any) -> list[dict[str, Any]]:
            items = composite_items(data, len(subrequests))
            if resend_safe and any(subresponse_transient(i) for i in items):
                raise PartialFailure(
                    "a subrequest failed transiently", items, method="POST", endpoint=path
                )
            return items

        try:
            result: list[dict[str, Any]] = self._request(
                "POST", path, body=body, shape=shape, idempotent=idempotent
            )
        except PartialFailure as exc:
            result = exc.result
        return result

    # ----------------------------------------------------------------- writes

    def write_atomic(self, write: AtomicWrite) -> AtomicResult:
        """Send ``write`` as ONE graph of ``/composite/graph``: all nodes or none.

        A graph is one transaction in the CRM, so a graph that failed only transiently
        (UNABLE_TO_LOCK_ROW, 503) rolled back and is sent again under the retry policy.

        Returns:
            The per-node results in node order, and whether the graph committed.

        Raises:
            GraphLimitError: over a graph limit (nothing was sent).
            CrmError: the call as a whole failed.
        """
        write.check()
        nodes = write.nodes()
        path = self.data_url("composite/graph")
        requests = []
        for node in nodes:
            sub: dict[str, Any] = {
                "method": node.method,
                "url": self.sobject_url(node.sobject, *node.tail),
                "referenceId": node.reference,
                "body": node.body,
            }
            if node.headers:
                sub["httpHeaders"] = dict(node.headers)
            requests.append(sub)
        body = {"graphs": [{"graphId": "changes", "compositeRequest": requests}]}

        def shape(data: Any) -> AtomicResult:
            result = graph_result(data, nodes, path)
            failed = [r for r in result.results if r.error is not None]
            if (
                not result.committed
                and failed
                and all(r.error and r.error.resolution is ErrorResolution.RETRY for r in failed)
            ):
                raise PartialFailure(
                    "the graph failed transiently", result, method="POST", endpoint=path
                )
            return result

        try:
            # Resending is safe: a graph that failed rolled back as a whole.
            answer: AtomicResult = self._request(
                "POST", path, body=body, shape=shape, idempotent=True
            )
        except PartialFailure as exc:
            answer = exc.result
        return answer
