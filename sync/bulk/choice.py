"""When a load goes through Bulk API 2.0, and what the last load of each mapping used."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine

from sync.crm.soql import and_, select
from sync.db import service_state
from sync.mapping.spec import Mapping
from sync.settings import Settings

LOAD_PREFIX = "last-load:"


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


def save_report(engine: Engine, mapping: str, report: LoadReport, now: dt.datetime) -> None:
    """Remember how ``mapping``'s last pass read its window (for ``status``)."""
    document = {**report.to_json(), "at": now.isoformat()}
    service_state.write(engine, LOAD_PREFIX + mapping, document, now)


def saved_reports(engine: Engine) -> dict[str, dict[str, Any]]:
    """Mapping -> its last pass's load report, as saved."""
    return {
        key[len(LOAD_PREFIX) :]: doc
        for key, (doc, _) in service_state.read_prefix(engine, LOAD_PREFIX).items()
    }
