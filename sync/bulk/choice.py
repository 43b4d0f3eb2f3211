"""When a load goes through Bulk API 2.0, and the report of how a pass read its window.

Pure: the pass hands in its mapping, settings and counts; the report is kept in the
mapping's state row by :func:`sync.db.repo.close_mapping_pass`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sync.crm.soql import and_, select
from sync.mapping.spec import Mapping
from sync.settings import Settings


class LoadMethod(StrEnum):
    """How a pass read its window."""

    REST = "rest"
    BULK = "bulk"


def threshold(mapping: Mapping, settings: Settings) -> int:
    """The mapping's bulk threshold (its YAML's ``bulk_threshold``, else the setting).

    0 means never.
    """
    return mapping.bulk_threshold if mapping.bulk_threshold is not None else settings.bulk_threshold


def use_bulk(records: int | None, limit: int) -> bool:
    """True when a window of ``records`` records (None: unknown) goes through Bulk."""
    return limit > 0 and records is not None and records >= limit


def count_soql(mapping: Mapping) -> str:
    """``SELECT COUNT()`` over everything a full window of ``mapping`` reads."""
    query = select(mapping.crm_object, ["Id"], where=and_(mapping.filter))
    return "SELECT COUNT()" + query[len("SELECT Id") :]


@dataclass(frozen=True)
class LoadReport:
    """How the last pass of a mapping read its window.

    Attributes:
        method: REST or Bulk.
        counted: the window's records as counted before choosing (None: not counted).
        job_id: the Bulk job (None for REST).
        api_calls: the pass's API calls.
        fallback: why a Bulk load was given up for REST, if it was.
    """

    method: LoadMethod
    counted: int | None = None
    job_id: str | None = None
    api_calls: int = 0
    fallback: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "method": self.method.value,
            "counted": self.counted,
            "job_id": self.job_id,
            "api_calls": self.api_calls,
            "fallback": self.fallback,
        }
