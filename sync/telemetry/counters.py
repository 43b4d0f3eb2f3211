"""Counters a process produces, tallied in memory until they are flushed to the database.

Only the standard library here: the CRM transport and the portal middleware record into
:data:`BUFFER` on every request, so recording must be cheap (a lock and a dict update)
and must never fail or block on I/O. :mod:`sync.service.flush` moves the tallies to
the ``metric_counters`` table.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

CRM_CALLS = "billing_sync_crm_api_calls_total"
CRM_ERRORS = "billing_sync_crm_errors_total"
CRM_LOGINS = "billing_sync_crm_logins_total"
PORTAL_REQUESTS = "billing_sync_portal_requests_total"
PORTAL_DURATION = "billing_sync_portal_request_duration_seconds"
PORTAL_DENIED = "billing_sync_portal_denied_total"
PASSES = "billing_sync_pass_total"
PASS_DURATION = "billing_sync_pass_duration_seconds"  # noqa: S105 - a metric name
LAST_SUCCESS = "billing_sync_mapping_last_success_timestamp_seconds"

PORTAL_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
PASS_BUCKETS: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
PUSH_BUCKETS: tuple[float, ...] = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)

DENIAL_REASONS: tuple[str, ...] = ("not_admin", "unauthenticated", "not_found")

Key = tuple[str, str]
"""(series name, canonical label string) of one stored series."""


def label_string(labels: Mapping[str, str]) -> str:
    """Labels in one canonical form: ``k=v`` pairs sorted by key, joined by newlines.

    Newlines cannot occur in the label values billing-sync records (endpoints, codes,
    route templates, mapping names), and a canonical form makes the row key unique.
    """
    return "\n".join(f"{k}={labels[k]}" for k in sorted(labels))


def parse_label_string(text: str) -> dict[str, str]:
    """The inverse of :func:`label_string`."""
    if not text:
        return {}
    return dict(part.split("=", 1) for part in text.split("\n"))


def format_le(bound: float) -> str:
    """A bucket bound as Prometheus writes it (``0.5``, ``1.0``, ``+Inf``)."""
    return "+Inf" if bound == float("inf") else repr(float(bound))


def histogram_deltas(
    name: str, labels: Mapping[str, str], value: float, buckets: Iterable[float]
) -> dict[Key, float]:
    """The increments one observation makes: cumulative buckets, ``_sum`` and ``_count``."""
    deltas: dict[Key, float] = {}
    for bound in (*buckets, float("inf")):
        if value <= bound:
            key = (f"{name}_bucket", label_string({**labels, "le": format_le(bound)}))
            deltas[key] = 1.0
    deltas[(f"{name}_sum", label_string(labels))] = float(value)
    deltas[(f"{name}_count", label_string(labels))] = 1.0
    return deltas


@dataclass
class Drained:
    """What a buffer held: increments to add, and maxima (timestamps) to raise."""

    adds: dict[Key, float]
    maxima: dict[Key, float]

    def __bool__(self) -> bool:
        return bool(self.adds or self.maxima)


class CounterBuffer:
    """Thread-safe tallies of one process, waiting to be flushed."""

    def __init__(self) -> None:
        # Held by a flush from draining until its transaction ends, and by a reader
        # adding the pending tallies to what the database holds: a reader never sees a
        # tally in neither place (a counter must never go down) nor in both.
        self.flush_lock = threading.Lock()
        self._lock = threading.Lock()
        self._adds: dict[Key, float] = {}
        self._maxima: dict[Key, float] = {}
        self._usage: tuple[int, int] | None = None

    def inc(self, name: str, labels: Mapping[str, str], amount: float = 1.0) -> None:
        """Add ``amount`` to the counter ``name{labels}``."""
        key = (name, label_string(labels))
        with self._lock:
            self._adds[key] = self._adds.get(key, 0.0) + amount

    def observe(
        self, name: str, labels: Mapping[str, str], value: float, buckets: Iterable[float]
    ) -> None:
        """Record one observation of the histogram ``name{labels}``."""
        deltas = histogram_deltas(name, labels, value, buckets)
        with self._lock:
            for key, amount in deltas.items():
                self._adds[key] = self._adds.get(key, 0.0) + amount

    def raise_to(self, name: str, labels: Mapping[str, str], value: float) -> None:
        """Keep the largest value seen for ``name{labels}`` (a timestamp gauge)."""
        key = (name, label_string(labels))
        with self._lock:
            self._maxima[key] = max(self._maxima.get(key, value), value)

    def note_api_usage(self, used: int, limit: int) -> None:
        """Remember the org's usage from the latest ``Sforce-Limit-Info`` header."""
        with self._lock:
            self._usage = (used, limit)

    def pending(self) -> bool:
        """True when something waits to be flushed."""
        with self._lock:
            return bool(self._adds or self._maxima or self._usage)

    def peek(self) -> tuple[Drained, tuple[int, int] | None]:
        """Copies of what waits to be flushed (the buffer keeps it)."""
        with self._lock:
            return Drained(dict(self._adds), dict(self._maxima)), self._usage

    def drain(self) -> Drained:
        """Take everything recorded so far (the buffer is empty afterwards)."""
        with self._lock:
            drained = Drained(self._adds, self._maxima)
            self._adds, self._maxima = {}, {}
        return drained

    def take_usage(self) -> tuple[int, int] | None:
        """The org usage noted since the last call, if any."""
        with self._lock:
            usage, self._usage = self._usage, None
        return usage

    def restore(self, drained: Drained) -> None:
        """Put back what a failed flush could not write, so nothing is lost."""
        with self._lock:
            for key, amount in drained.adds.items():
                self._adds[key] = self._adds.get(key, 0.0) + amount
            for key, value in drained.maxima.items():
                self._maxima[key] = max(self._maxima.get(key, value), value)


BUFFER = CounterBuffer()
"""The process's buffer: every recorder writes here, the flusher empties it."""
