"""API usage against the daily limit, per-endpoint statistics, and injected faults."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sync.sandbox.errors import ApiError, limit_exceeded

_WINDOW = 86400.0
_BUCKET = 60.0

FAULTS: dict[str, Callable[[], ApiError]] = {
    "SERVER_UNAVAILABLE": lambda: ApiError(
        503, "SERVER_UNAVAILABLE", "Server temporarily unavailable. Please try again later."
    ),
    "UNABLE_TO_LOCK_ROW": lambda: ApiError(
        400,
        "UNABLE_TO_LOCK_ROW",
        "unable to obtain exclusive access to this record or 1 records",
    ),
    "REQUEST_LIMIT_EXCEEDED": limit_exceeded,
}


class ApiUsage:
    """Calls counted against the org's limit over a rolling 24 hours (1-minute buckets)."""

    def __init__(self, daily_limit: int, clock: Callable[[], float] = time.time) -> None:
        self.daily_limit = daily_limit
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: deque[list[float]] = deque()  # [bucket start, calls]
        self._used = 0

    def _expire(self, now: float) -> None:
        while self._buckets and self._buckets[0][0] <= now - _WINDOW:
            self._used -= int(self._buckets.popleft()[1])

    @property
    def used(self) -> int:
        """Calls in the last 24 hours."""
        with self._lock:
            self._expire(self._clock())
            return self._used

    def try_count(self) -> bool:
        """Count one call; False (and nothing counted) when the limit is reached."""
        now = self._clock()
        with self._lock:
            self._expire(now)
            if self._used >= self.daily_limit:
                return False
            start = now - now % _BUCKET
            if self._buckets and self._buckets[-1][0] == start:
                self._buckets[-1][1] += 1
            else:
                self._buckets.append([start, 1])
            self._used += 1
            return True

    def header(self) -> str:
        """The ``Sforce-Limit-Info`` value."""
        return f"api-usage={self.used}/{self.daily_limit}"

    def reset(self) -> None:
        """Forget every counted call."""
        with self._lock:
            self._buckets.clear()
            self._used = 0


class Stats:
    """Requests per endpoint since start (or the last reset); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.api_calls = 0
        self.by_endpoint: Counter[str] = Counter()
        self.unhandled_errors = 0
        self.recent_unhandled: deque[str] = deque(maxlen=10)

    def record(self, endpoint: str, *, api_call: bool) -> None:
        """Note one request to ``endpoint``; ``api_call`` when it counted against the limit."""
        with self._lock:
            self.by_endpoint[endpoint] += 1
            if api_call:
                self.api_calls += 1

    def record_unhandled(self, description: str) -> None:
        """Note a request that failed with an unexpected exception (answered 500).

        Every client mistake has a Salesforce-shaped 4xx answer, so any of these is a
        sandbox defect; tests assert there were none.
        """
        with self._lock:
            self.unhandled_errors += 1
            self.recent_unhandled.append(description)

    def snapshot(self) -> dict[str, Any]:
        """``{"api_calls": N, "by_endpoint": {...}, "unhandled_errors": N, ...}``."""
        with self._lock:
            return {
                "api_calls": self.api_calls,
                "by_endpoint": dict(self.by_endpoint),
                "unhandled_errors": self.unhandled_errors,
                "recent_unhandled": list(self.recent_unhandled),
            }

    def reset(self) -> None:
        """Back to zero."""
        with self._lock:
            self.api_calls = 0
            self.by_endpoint.clear()
            self.unhandled_errors = 0
            self.recent_unhandled.clear()


@dataclass
class Faults:
    """Failures and latency injected into the REST API (``/_sandbox/faults``)."""

    error_rate: float = 0.0
    errors: list[str] = field(default_factory=lambda: ["SERVER_UNAVAILABLE"])
    latency_ms: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    def configure(self, spec: dict[str, Any]) -> None:
        """Apply the keys of ``spec`` that are present.

        Raises:
            ValueError: a key or value is not understood.
        """
        unknown = set(spec) - {"error_rate", "errors", "latency_ms", "daily_limit", "seed"}
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        if "error_rate" in spec:
            rate = float(spec["error_rate"])
            if not 0.0 <= rate <= 1.0:
                raise ValueError("error_rate must be between 0 and 1")
            self.error_rate = rate
        if "errors" in spec:
            errors = list(spec["errors"])
            bad = [e for e in errors if e not in FAULTS]
            if bad or not errors:
                raise ValueError(f"errors must be a non-empty subset of {sorted(FAULTS)}")
            self.errors = errors
        if "latency_ms" in spec:
            latency = float(spec["latency_ms"])
            if latency < 0:
                raise ValueError("latency_ms must not be negative")
            self.latency_ms = latency
        if "seed" in spec:
            self.rng.seed(int(spec["seed"]))

    def clear(self) -> None:
        """No more injected failures or latency."""
        self.error_rate = 0.0
        self.errors = ["SERVER_UNAVAILABLE"]
        self.latency_ms = 0.0

    def draw(self) -> ApiError | None:
        """The failure to answer this request with, if one is drawn."""
        if self.error_rate <= 0.0 or self.rng.random() >= self.error_rate:
            return None
        return FAULTS[self.rng.choice(self.errors)]()

    def describe(self, daily_limit: int) -> dict[str, Any]:
        """The current settings, as ``/_sandbox/faults`` reports them."""
        return {
            "error_rate": self.error_rate,
            "errors": list(self.errors),
            "latency_ms": self.latency_ms,
            "daily_limit": daily_limit,
        }
