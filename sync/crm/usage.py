"""The org's API allowance, as the CRM reports it on every response."""

from __future__ import annotations

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
