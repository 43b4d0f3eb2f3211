"""The org's API allowance, as the CRM reports it on every response."""

from __future__ import annotations

import re
from dataclasses import dataclass

from simple_salesforce import Salesforce

LIMIT_INFO_HEADER = "Sforce-Limit-Info"


@dataclass(frozen=True)
class ApiUsage:
    """API requests used in the org's rolling 24 hours, out of ``max``."""

    used: int
    max: int

    @property
    def remaining(self) -> int:
        """Requests left before REQUEST_LIMIT_EXCEEDED."""
        return max(self.max - self.used, 0)

    @property
    def fraction(self) -> float:
        """Share of the allowance used, 0.0 to 1.0 (1.0 when the maximum is 0)."""
        return min(self.used / self.max, 1.0) if self.max > 0 else 1.0

    def __str__(self) -> str:
        return f"{self.used}/{self.max}"


def parse_limit_info(header: str | None) -> ApiUsage | None:
    """The ``api-usage=USED/MAX`` part of a ``Sforce-Limit-Info`` header, if present.

    The header may also carry ``per-app-api-usage=...``; only the org-wide figure counts
    toward REQUEST_LIMIT_EXCEEDED. Parsing is simple-salesforce's, so both agree.
    """
    if not header:
        return None
    usage = Salesforce.parse_api_usage(header).get("api-usage")
    if usage is None:
        return None
    return ApiUsage(used=usage.used, max=usage.total)


_VERSIONED = re.compile(r"^/services/data/v\d+\.\d+/?")
_FIRST_PARTS = {
    "query": "query",
    "queryAll": "queryAll",
    "limits": "limits",
    "search": "search",
    "parameterizedSearch": "search",
    "tooling": "tooling",
    "jobs": "jobs",
}


def endpoint_name(path: str) -> str:
    """A request path reduced to the API area it calls, for per-endpoint call counts.

    Ids, object names and query strings are left out, so the set of names stays small
    whatever the traffic: ``query`` (next pages too), ``queryAll``, ``composite``,
    ``composite/sobjects``, ``sobjects`` (record CRUD and upserts),
    ``sobjects/describe``, ``sobjects/deleted``, ``sobjects/updated``, ``limits``,
    ``jobs`` (Bulk API 2.0), ``versions`` and ``other``.
    """
    path = path.split("?", 1)[0]
    rest = _VERSIONED.sub("", path)
    if rest == path:
        return "versions" if path.rstrip("/") in ("/services/data", "") else "other"
    parts = [p for p in rest.split("/") if p]
    if not parts:
        return "versions"
    head = parts[0]
    if head == "composite":
        if len(parts) > 1 and parts[1] in ("sobjects", "batch", "tree", "graph"):
            return f"composite/{parts[1]}"
        return "composite"
    if head == "sobjects":
        if len(parts) == 1:
            return "sobjects/describe"
        if parts[-1] == "describe":
            return "sobjects/describe"
        if len(parts) > 2 and parts[2] in ("deleted", "updated"):
            return f"sobjects/{parts[2]}"
        return "sobjects"
    return _FIRST_PARTS.get(head, "other")
