"""``POST /composite/graph``: independent graphs of sObject nodes, each all or nothing.

One payload holds up to 75 graphs and counts as ONE API call. Each graph runs in its own
transaction: its nodes run in order (``@{referenceId.path}`` replaced by an earlier
node's answer), and the first failing node rolls the whole graph back; the others then
answer PROCESSING_HALTED and ``isSuccessful`` is false. Change events are written inside
that transaction, so only graphs that committed emit any. After 14 graphs failed, the
remaining ones are not run.

Limits (refused with 400 before anything runs): 500 nodes per graph and 500 per payload,
15 distinct method x object x version node kinds per payload, references 15 levels deep.
Nodes address sObject records only (``/sobjects/{T}``, ``/sobjects/{T}/{id}``,
``/sobjects/{T}/{extIdField}/{value}``); queries and collections are not graph nodes.
"""

from __future__ import annotations

import re
from typing import Any

from sync.sandbox.composite import Composite, halted_answer, parse_subrequest, split_url, substitute
from sync.sandbox.errors import ApiError
from sync.sandbox.rest import ApiRequest, ApiResponse, RestApi
from sync.sandbox.store import Store

MAX_GRAPHS = 75
MAX_NODES = 500
MAX_KINDS = 15
MAX_DEPTH = 15
#: after this many failed graphs the payload's remaining graphs are not run
MAX_FAILED_GRAPHS = 14
_NAMED = re.compile(r"@\{([A-Za-z0-9_]+)[.\[]")
_GRAPH_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_METHODS = {"GET", "POST", "PATCH", "DELETE"}


class _Rollback(Exception):
    """Unwinds a failed graph's transaction."""


def _node_kind(method: str, url: str) -> tuple[str, str, str]:
    """(method, object, version) of a node; refuses what is not an sObject resource."""
    split = split_url(url)
    parts = [p for p in split.path.split("/") if p] if split else []
    if len(parts) < 5 or parts[:2] != ["services", "data"] or parts[3] != "sobjects":
        raise ApiError(
            400,
            "INVALID_INPUT",
            f"A graph node must address an sObject resource (/sobjects/...): {url}",
        )
    if method not in _METHODS or len(parts) > 7:
        raise ApiError(400, "INVALID_INPUT", f"{method} {url} is not allowed in a graph")
    return method, parts[4].lower(), parts[2]


def _depth(nodes: list[dict[str, Any]]) -> int:
    """The longest chain of references between a graph's nodes."""
    depth: dict[str, int] = {}
    for node in nodes:
        text = f"{node.get('url')} {node.get('body')!r}"
        named = [r for r in _NAMED.findall(text) if r in depth]
        depth[str(node.get("referenceId"))] = 1 + max((depth[r] for r in named), default=0)
    return max(depth.values(), default=0)


class CompositeGraph:
    """``POST /composite/graph``; registers itself on ``api``."""

    def __init__(self, api: RestApi, store: Store, composite: Composite) -> None:
        self.api = api
        self.store = store
        self.composite = composite
        api.graph = self.graph

    def graph(self, req: ApiRequest) -> ApiResponse:
        """Run the graphs of one request.

        Raises:
            ApiError: 400 for a malformed request or one over a graph limit.
        """
        body = req.json_object()
        graphs = body.get("graphs")
        if not isinstance(graphs, list) or not graphs:
            raise ApiError(400, "INVALID_INPUT", "graphs must be a non-empty array")
        if len(graphs) > MAX_GRAPHS:
            raise ApiError(
                400,
                "LIMIT_EXCEEDED",
                f"A request may contain at most {MAX_GRAPHS} graphs; this one has {len(graphs)}",
            )
        checked = [self._check_graph(g) for g in graphs]
        ids = [graph_id for graph_id, _ in checked]
        if len(set(ids)) != len(ids):
            raise ApiError(400, "INVALID_INPUT", "Duplicate graphId in graphs")
        total = sum(len(nodes) for _, nodes in checked)
        if total > MAX_NODES:
            raise ApiError(
                400,
                "LIMIT_EXCEEDED",
                f"A request may contain at most {MAX_NODES} nodes in all its graphs; "
                f"this one has {total}",
            )
        kinds = {
            _node_kind(str(n["method"]).upper(), str(n["url"])) for _, ns in checked for n in ns
        }
        if len(kinds) > MAX_KINDS:
            raise ApiError(
                400,
                "LIMIT_EXCEEDED",
                f"A request may contain at most {MAX_KINDS} different nodes (method, object "
                f"and API version); this one has {len(kinds)}",
            )
        out = []
        failures = 0
        for graph_id, nodes in checked:
            if failures >= MAX_FAILED_GRAPHS:
                answers = [halted_answer(str(n["referenceId"])) for n in nodes]
                out.append(_graph_answer(graph_id, answers, success=False))
                continue
            answers, success = self._run(req, nodes)
            failures += 0 if success else 1
            out.append(_graph_answer(graph_id, answers, success=success))
        return ApiResponse(200, {"graphs": out})

    @staticmethod
    def _check_graph(graph: Any) -> tuple[str, list[dict[str, Any]]]:
        if not isinstance(graph, dict):
            raise ApiError(400, "INVALID_INPUT", "Each graph must be an object")
        graph_id = graph.get("graphId")
        if not isinstance(graph_id, str) or not _GRAPH_ID.match(graph_id):
            raise ApiError(400, "INVALID_INPUT", f"Invalid graphId: {graph_id!r}")
        nodes = graph.get("compositeRequest")
        if not isinstance(nodes, list) or not nodes:
            raise ApiError(
                400,
                "INVALID_INPUT",
                f"compositeRequest of graph {graph_id} must be a non-empty array",
            )
        if len(nodes) > MAX_NODES:
            raise ApiError(
                400,
                "LIMIT_EXCEEDED",
                f"A graph may contain at most {MAX_NODES} nodes; graph {graph_id} has {len(nodes)}",
            )
        refs = [parse_subrequest(n)[2] for n in nodes]
        if len(set(refs)) != len(refs):
            raise ApiError(400, "INVALID_INPUT", f"Duplicate referenceId in graph {graph_id}")
        for node in nodes:
            _node_kind(str(node["method"]).upper(), str(node["url"]))
        depth = _depth(nodes)
        if depth > MAX_DEPTH:
            raise ApiError(
                400,
                "LIMIT_EXCEEDED",
                f"A graph may be at most {MAX_DEPTH} nodes deep; graph {graph_id} is {depth}",
            )
        return graph_id, nodes

    def _run(self, req: ApiRequest, nodes: list[dict[str, Any]]) -> tuple[list[Any], bool]:
        """Run one graph in its own transaction; (answers, committed)."""
        answers: list[dict[str, Any]] = []
        try:
            with self.store.transaction():
                results: dict[str, Any] = {}
                for node in nodes:
                    method, url, ref = parse_subrequest(node)
                    try:
                        url = str(substitute(url, results))
                        sub_body = substitute(node.get("body"), results)
                    except KeyError:
                        answers.append(
                            halted_answer(
                                ref, f"Invalid reference specified. No value found for {ref}."
                            )
                        )
                        raise _Rollback from None
                    headers = {
                        str(k).lower(): str(v) for k, v in (node.get("httpHeaders") or {}).items()
                    }
                    answer = self.composite.run_one(req, method, url, sub_body, headers)
                    answers.append(
                        {
                            "body": answer.body,
                            "httpHeaders": answer.headers,
                            "httpStatusCode": answer.status,
                            "referenceId": ref,
                        }
                    )
                    if answer.status >= 300:
                        raise _Rollback
                    results[ref] = answer.body
        except _Rollback:
            failed = answers[-1]
            halted = [halted_answer(str(n["referenceId"])) for n in nodes]
            return [
                failed if h["referenceId"] == failed["referenceId"] else h for h in halted
            ], False
        return answers, True


def _graph_answer(graph_id: str, answers: list[Any], *, success: bool) -> dict[str, Any]:
    return {
        "graphId": graph_id,
        "graphResponse": {"compositeResponse": answers},
        "isSuccessful": success,
    }
