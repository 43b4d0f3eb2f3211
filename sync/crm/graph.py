"""Atomic writes through ``/composite/graph``: the builder, its limits and typed results.

:class:`AtomicWrite` collects the nodes of ONE graph (the CRM applies all of them or
none); :meth:`~sync.crm.composite.CompositeApi.write_atomic` sends it. The graph limits
(500 nodes, 15 distinct method x object x version node kinds, reference depth 15) are
checked before anything is sent: a write that does not fit is refused, never split.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime as http_date
from enum import StrEnum
from typing import Any

import orjson

from sync.crm.answers import WrongShape, json_object
from sync.crm.errors import CrmError, error_from_answer

#: Composite Graph limits (Salesforce REST API, "Composite Graph Limits").
MAX_GRAPH_NODES = 500
MAX_GRAPH_KINDS = 15
MAX_GRAPH_DEPTH = 15

_REFERENCE = re.compile(r"@\{([A-Za-z0-9_]+)[.\[]")
_REFERENCE_ID = re.compile(r"^[A-Za-z0-9_]{1,80}$")


def unmodified_since(when: datetime) -> dict[str, str]:
    """The ``If-Unmodified-Since`` header of a conditional update (an HTTP date).

    Raises:
        ValueError: ``when`` is naive.
    """
    if when.tzinfo is None:
        raise ValueError("if_unmodified_since must be timezone-aware")
    # HTTP dates have whole seconds; truncating can only report a conflict for a change
    # in the same second, never miss one.
    return {"If-Unmodified-Since": http_date(when.astimezone(UTC), usegmt=True)}


_header = unmodified_since  # AtomicWrite.update's argument shadows the name


class WriteOutcome(StrEnum):
    """What became of one node of an atomic write."""

    #: written (the graph committed)
    DONE = "done"
    #: the conditional update found the record modified since the time given (412)
    STALE = "stale"
    #: the CRM refused this node (validation rule, bad field, ...); nothing was applied
    REJECTED = "rejected"
    #: not applied because another node failed: rolled back or never run
    HALTED = "halted"


class GraphLimitError(ValueError):
    """An atomic write exceeds a Composite Graph limit; the message names the limit."""


@dataclass(frozen=True)
class GraphShape:
    """The size of an atomic write, as the Composite Graph limits count it.

    Attributes:
        nodes: nodes in the graph (one per record written).
        kinds: distinct method x object x version combinations.
        depth: the longest chain of references (a node naming no other has depth 1).
    """

    nodes: int
    kinds: int
    depth: int

    def problem(self) -> str | None:
        """Why the CRM would refuse this graph, or None when it fits."""
        if self.nodes > MAX_GRAPH_NODES:
            return (
                f"it needs {self.nodes} CRM writes and one all-or-nothing CRM request "
                f"takes at most {MAX_GRAPH_NODES}"
            )
        if self.kinds > MAX_GRAPH_KINDS:
            return (
                f"it writes {self.kinds} kinds of CRM record and one all-or-nothing CRM "
                f"request takes at most {MAX_GRAPH_KINDS}"
            )
        if self.depth > MAX_GRAPH_DEPTH:
            return (
                f"its writes depend on each other {self.depth} levels deep and one "
                f"all-or-nothing CRM request takes at most {MAX_GRAPH_DEPTH}"
            )
        return None


@dataclass(frozen=True)
class Node:
    """One node of a graph: a write of one record (``tail`` follows ``/sobjects/{T}/``)."""

    reference: str
    label: str
    method: str
    sobject: str
    tail: tuple[str, ...]
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    record_id: str | None = None


class AtomicWrite:
    """The writes of one all-or-nothing request, node by node, in the order they run.

    Build it, then send it with :meth:`CompositeApi.write_atomic`. A node's body may name
    an earlier node's result as ``@{reference.id}`` (:meth:`ref`), e.g. an order line
    naming the order created before it.
    """

    def __init__(self) -> None:
        self._nodes: list[Node] = []

    def __len__(self) -> int:
        return len(self._nodes)

    @staticmethod
    def ref(reference: str, path: str = "id") -> str:
        """The placeholder that stands for ``path`` of node ``reference``'s answer."""
        return f"@{{{reference}.{path}}}"

    def upsert(
        self,
        sobject: str,
        ext_field: str,
        value: str,
        fields: Mapping[str, Any],
        *,
        label: str,
        reference: str | None = None,
    ) -> str:
        """Create or update the record whose ``ext_field`` is ``value``; returns its reference.

        Upserting by an external id makes the node idempotent: sent twice, it writes one
        record. ``fields`` must not hold ``ext_field`` itself (the URL names it).
        """
        body = {k: v for k, v in fields.items() if k.lower() != ext_field.lower()}
        return self._add("PATCH", sobject, (ext_field, value), body, label, reference, {})

    def update(
        self,
        sobject: str,
        record_id: str,
        fields: Mapping[str, Any],
        *,
        label: str,
        unmodified_since: datetime | None = None,
        reference: str | None = None,
    ) -> str:
        """Update one record by Id; with ``unmodified_since`` only if it is unchanged since.

        A record modified after ``unmodified_since`` fails the node with 412
        (:attr:`WriteOutcome.STALE`) and so the whole write.
        """
        headers = {} if unmodified_since is None else _header(unmodified_since)
        return self._add("PATCH", sobject, (record_id,), dict(fields), label, reference, headers)

    def _add(
        self,
        method: str,
        sobject: str,
        tail: tuple[str, ...],
        body: dict[str, Any],
        label: str,
        reference: str | None,
        headers: dict[str, str],
    ) -> str:
        ref = reference or f"n{len(self._nodes)}"
        if not _REFERENCE_ID.match(ref):
            raise ValueError(f"not a valid reference: {ref!r}")
        if any(n.reference == ref for n in self._nodes):
            raise ValueError(f"duplicate reference {ref!r}")
        self._nodes.append(Node(ref, label, method, sobject, tail, body, headers))
        return ref

    @property
    def shape(self) -> GraphShape:
        """Nodes, node kinds and reference depth, as the graph limits count them."""
        depth: dict[str, int] = {}
        for node in self._nodes:
            named = _REFERENCE.findall(orjson.dumps(node.body, default=str).decode())
            depth[node.reference] = 1 + max((depth.get(r, 0) for r in named), default=0)
        kinds = {(n.method, n.sobject.lower()) for n in self._nodes}
        return GraphShape(len(self._nodes), len(kinds), max(depth.values(), default=0))

    def check(self) -> None:
        """Refuse what the CRM would refuse (and charge an API call for).

        Raises:
            GraphLimitError: no node, or over a graph limit; the message says which.
        """
        if not self._nodes:
            raise GraphLimitError("an atomic write needs at least one node")
        problem = self.shape.problem()
        if problem is not None:
            raise GraphLimitError(problem)

    def nodes(self) -> list[Node]:
        """The nodes in order (read-only use)."""
        return list(self._nodes)


@dataclass(frozen=True)
class WriteResult:
    """The answer for one node of an atomic write.

    Attributes:
        reference: the node's reference.
        label: the node's label, as given when it was added (names the record for people).
        outcome: what became of it.
        record_id: the Id written (DONE only).
        created: for upserts, True when the record was created.
        error: the CRM's error for this node (STALE, REJECTED; None otherwise).
    """

    reference: str
    label: str
    outcome: WriteOutcome
    record_id: str | None = None
    created: bool | None = None
    error: CrmError | None = None


@dataclass(frozen=True)
class AtomicResult:
    """What the CRM did with an atomic write: all of it (``committed``) or none."""

    committed: bool
    results: tuple[WriteResult, ...]

    def get(self, reference: str) -> WriteResult:
        """The result of node ``reference``.

        Raises:
            KeyError: no such node.
        """
        for result in self.results:
            if result.reference == reference:
                return result
        raise KeyError(reference)

    @property
    def stale(self) -> bool:
        """True when a conditional update found its record modified meanwhile."""
        return any(r.outcome is WriteOutcome.STALE for r in self.results)

    @property
    def rejected(self) -> list[WriteResult]:
        """The nodes the CRM refused (each names the record and the CRM's words)."""
        return [r for r in self.results if r.outcome is WriteOutcome.REJECTED]


_HALTED_CODES = frozenset({"PROCESSING_HALTED", "ALL_OR_NONE_OPERATION_ROLLED_BACK"})


def graph_result(data: Any, nodes: Sequence[Node], path: str) -> AtomicResult:
    """The typed answer of a one-graph ``/composite/graph`` request.

    Raises:
        WrongShape: the answer is not the one graph sent, or contradicts itself.
    """
    graphs = json_object(data).get("graphs")
    if not isinstance(graphs, list) or len(graphs) != 1 or not isinstance(graphs[0], dict):
        raise WrongShape("'graphs' is missing or does not hold the one graph sent")
    graph = graphs[0]
    committed = graph.get("isSuccessful")
    if not isinstance(committed, bool):
        raise WrongShape("the graph has no boolean 'isSuccessful'")
    response = graph.get("graphResponse")
    items = response.get("compositeResponse") if isinstance(response, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise WrongShape("'graphResponse.compositeResponse' is missing or not a list")
    by_ref = {str(i.get("referenceId")): i for i in items}
    results = []
    for node in nodes:
        item = by_ref.get(node.reference)
        if item is None:
            # a failed graph may answer only the nodes it reached
            if committed:
                raise WrongShape(f"no answer for node {node.reference}")
            results.append(WriteResult(node.reference, node.label, WriteOutcome.HALTED))
            continue
        status = item.get("httpStatusCode")
        if not isinstance(status, int):
            raise WrongShape(f"node {node.reference} has no 'httpStatusCode'")
        body = item.get("body")
        if status < 300:
            record_id = body.get("id") if isinstance(body, dict) else None
            created = body.get("created") if isinstance(body, dict) else None
            results.append(
                WriteResult(
                    node.reference,
                    node.label,
                    WriteOutcome.DONE if committed else WriteOutcome.HALTED,
                    record_id if isinstance(record_id, str) else None,
                    created if isinstance(created, bool) else status == 201,
                )
            )
            continue
        error = error_from_answer(
            status, body, raw=orjson.dumps(body), method=node.method, endpoint=node.label
        )
        if status == 412:
            results.append(WriteResult(node.reference, node.label, WriteOutcome.STALE, error=error))
        elif error.error_code in _HALTED_CODES:
            results.append(WriteResult(node.reference, node.label, WriteOutcome.HALTED))
        else:
            results.append(
                WriteResult(node.reference, node.label, WriteOutcome.REJECTED, error=error)
            )
    if committed and any(r.outcome is not WriteOutcome.DONE for r in results):
        raise WrongShape(f"{path}: a committed graph answered a failed node")
    return AtomicResult(committed, tuple(results))
