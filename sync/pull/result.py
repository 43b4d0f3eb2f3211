"""What a pull pass reports."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sync.bulk.choice import LoadReport


class Outcome(StrEnum):
    """How a pass of one mapping ended."""

    OK = "ok"
    """The window was read and stored."""
    UNCHANGED = "unchanged"
    """The idle check found nothing new; no records were read."""
    LIMIT_EXCEEDED = "limit_exceeded"
    """The org's API allowance is spent (REQUEST_LIMIT_EXCEEDED); retry later."""
    FAILED = "failed"
    """An error stopped the pass; what was committed before it stays."""
    PAUSED = "paused"
    """The mapping is paused (``billing-sync resume NAME``)."""


@dataclass(frozen=True)
class PassResult:
    """The outcome of one pass of one mapping.

    Attributes:
        mapping: the mapping's name.
        outcome: how it ended.
        records: CRM records read (the lookback's re-reads included).
        api_calls: CRM API calls the pass made.
        error: what went wrong, for FAILED and LIMIT_EXCEEDED.
        watermark: the mapping's watermark after the pass.
        started_at: when the pass started.
        finished_at: when it ended.
        record_errors: records that failed to convert in this pass.
        full: True for a full read.
        reconciled: the reconcile that followed, when one was asked for.
        load: how the window was read (REST or a Bulk job), for passes that ran.
    """

    mapping: str
    outcome: Outcome
    records: int
    api_calls: int
    error: str | None
    watermark: dt.datetime | None
    started_at: dt.datetime
    finished_at: dt.datetime
    record_errors: int = 0
    full: bool = False
    reconciled: ReconcileResult | None = None
    load: LoadReport | None = None

    @property
    def seconds(self) -> float:
        """Duration of the pass."""
        return (self.finished_at - self.started_at).total_seconds()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "mapping": self.mapping,
            "outcome": self.outcome.value,
            "records": self.records,
            "api_calls": self.api_calls,
            "record_errors": self.record_errors,
            "full": self.full,
            "error": self.error,
            "watermark": self.watermark.isoformat() if self.watermark else None,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "seconds": round(self.seconds, 3),
            "reconcile": self.reconciled.to_json() if self.reconciled else None,
            "load": self.load.to_json() if self.load else None,
        }


@dataclass(frozen=True)
class ReconcileResult:
    """The outcome of comparing one mapping's Ids with the CRM's.

    Attributes:
        mapping: the mapping's name.
        outcome: OK, FAILED or LIMIT_EXCEEDED.
        crm_records: live CRM Ids compared (the walk stops after the last local row).
        tombstoned: local rows flagged deleted because the CRM no longer has them.
        api_calls: CRM API calls made.
        error: what went wrong, if anything.
    """

    mapping: str
    outcome: Outcome
    crm_records: int
    tombstoned: int
    api_calls: int
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "mapping": self.mapping,
            "outcome": self.outcome.value,
            "crm_records": self.crm_records,
            "tombstoned": self.tombstoned,
            "api_calls": self.api_calls,
            "error": self.error,
        }


@dataclass(frozen=True)
class Progress:
    """Where a running pass stands, reported after each stored page.

    Attributes:
        mapping: the mapping's name.
        records: records stored so far.
        total: records the window holds (the CRM's totalSize), when known.
        elapsed: seconds since the pass started.
    """

    mapping: str
    records: int
    total: int | None
    elapsed: float
