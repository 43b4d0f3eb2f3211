"""The Prometheus exposition: a custom collector that turns a :class:`Status` into metrics.

Names and labels are a contract with dashboards and alert rules (see the README's
Monitoring section). A gauge over a fixed set of label values (mappings, outbox states,
denial reasons, worker roles) exports every value, zeros included, so a healthy
deployment never shows "no data".
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from sync.db.repo.monitoring import OUTBOX_STATES
from sync.service.status import ROLES, Status
from sync.telemetry import counters

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

PASS_OUTCOMES: tuple[str, ...] = ("ok", "failed", "limit_exceeded", "interrupted")
KNOWN_ENDPOINTS: tuple[str, ...] = (
    "composite",
    "composite/graph",
    "composite/sobjects",
    "limits",
    "query",
    "queryAll",
    "sobjects",
    "sobjects/describe",
)
KNOWN_ERROR_CODES: tuple[str, ...] = (
    "INVALID_SESSION_ID",
    "REQUEST_LIMIT_EXCEEDED",
    "SERVER_UNAVAILABLE",
    "UNABLE_TO_LOCK_ROW",
    "TIMEOUT",
    "CONNECTION_ERROR",
)

StoredSeries = dict[str, list[tuple[dict[str, str], float]]]
"""Stored series by name: (labels, value) pairs, labels parsed once per scrape."""


def index_series(stored: dict[tuple[str, str], float]) -> StoredSeries:
    """The status' stored counters grouped by series name."""
    grouped: StoredSeries = defaultdict(list)
    for (name, labels), value in stored.items():
        grouped[name].append((counters.parse_label_string(labels), value))
    return grouped


def _series(stored: StoredSeries, name: str) -> Iterator[tuple[dict[str, str], float]]:
    yield from stored.get(name, ())


def _counter(
    stored: StoredSeries,
    name: str,
    doc: str,
    label: str | Sequence[str],
    zeros: Iterable[dict[str, str]] = (),
) -> CounterMetricFamily:
    labels = [label] if isinstance(label, str) else list(label)
    values: dict[tuple[str, ...], float] = {tuple(z[k] for k in labels): 0.0 for z in zeros}
    for found, value in _series(stored, name):
        key = tuple(found.get(k, "") for k in labels)
        values[key] = values.get(key, 0.0) + value
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(list(key), value)
    return family


def _le(text: str) -> float:
    return math.inf if text == "+Inf" else float(text)


def _histogram(
    stored: StoredSeries,
    name: str,
    doc: str,
    labels: Sequence[str],
    bounds: Sequence[float],
    zeros: Iterable[dict[str, str]] = (),
) -> HistogramMetricFamily:
    buckets: dict[tuple[str, ...], dict[float, float]] = defaultdict(dict)
    sums: dict[tuple[str, ...], float] = {}
    for zero in zeros:
        key = tuple(zero[k] for k in labels)
        buckets[key] = {}
        sums[key] = 0.0
    for found, value in _series(stored, f"{name}_bucket"):
        key = tuple(found.get(k, "") for k in labels)
        buckets[key][_le(found["le"])] = value
    for found, value in _series(stored, f"{name}_sum"):
        sums[tuple(found.get(k, "") for k in labels)] = value
    family = HistogramMetricFamily(name, doc, labels=list(labels))
    for key in sorted(buckets):
        seen = buckets[key]
        cumulative = []
        for bound in (*bounds, math.inf):
            cumulative.append((counters.format_le(bound), seen.get(bound, 0.0)))
        family.add_metric(list(key), cumulative, sums.get(key, 0.0))
    return family


class StatusCollector(Collector):
    """Collects every ``billing_sync_*`` metric from a fresh status on each scrape."""

    def __init__(self, source: Callable[[], Status]) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        yield from families(self.source())


def families(snap: Status) -> Iterator[Metric]:
    """Every metric family of ``snap``."""
    names = [m.name for m in snap.mappings]
    per_mapping = [{"mapping": n} for n in names]
    stored = index_series(snap.counters)

    lag = GaugeMetricFamily(
        "billing_sync_mapping_lag_seconds",
        "Now minus the newest CRM change mirrored (NaN before the first record).",
        labels=["mapping"],
    )
    records = GaugeMetricFamily(
        "billing_sync_mapping_records", "Mirrored rows by state.", labels=["mapping", "state"]
    )
    errors = GaugeMetricFamily(
        "billing_sync_mapping_record_errors",
        "Records that failed to convert and wait for a retry.",
        labels=["mapping"],
    )
    paused = GaugeMetricFamily(
        "billing_sync_mapping_paused",
        "1 while the mapping's polling is paused.",
        labels=["mapping"],
    )
    success = GaugeMetricFamily(
        "billing_sync_mapping_last_success_timestamp_seconds",
        "When the mapping was last known in step with the CRM: a pass that stored its "
        "window or a change check that found nothing new (0: never).",
        labels=["mapping"],
    )
    for m in snap.mappings:
        lag.add_metric([m.name], math.nan if m.lag_seconds is None else m.lag_seconds)
        records.add_metric([m.name, "live"], m.live)
        records.add_metric([m.name, "deleted"], m.deleted)
        errors.add_metric([m.name], m.record_errors)
        paused.add_metric([m.name], 1.0 if m.paused else 0.0)
        success.add_metric([m.name], m.last_success.timestamp() if m.last_success else 0.0)
    yield from (lag, records, errors, paused, success)

    yield _histogram(
        stored,
        counters.PASS_DURATION,
        "Duration of pull passes.",
        ["mapping"],
        counters.PASS_BUCKETS,
        zeros=per_mapping,
    )
    yield _counter(
        stored,
        counters.PASSES,
        "Pull passes by outcome.",
        ["mapping", "outcome"],
        zeros=[{"mapping": n, "outcome": o} for n in names for o in PASS_OUTCOMES],
    )

    yield _counter(
        stored,
        counters.CRM_CALLS,
        "CRM API calls (as the org counts them) by endpoint, every process together.",
        "endpoint",
        zeros=[{"endpoint": e} for e in KNOWN_ENDPOINTS],
    )
    usage = GaugeMetricFamily(
        "billing_sync_crm_api_usage_ratio",
        "The org's API usage over its daily limit, from Sforce-Limit-Info (NaN: not seen yet).",
    )
    usage.add_metric([], snap.usage_ratio)
    yield usage
    yield _counter(
        stored,
        counters.CRM_ERRORS,
        "CRM errors by error code (HTTP_<status> without one; TIMEOUT, CONNECTION_ERROR).",
        "code",
        zeros=[{"code": c} for c in KNOWN_ERROR_CODES],
    )
    yield _counter(
        stored,
        counters.CRM_LOGINS,
        "CRM logins by flow and outcome (success, refused, failed), every process together.",
        ["flow", "outcome"],
        zeros=[
            {"flow": f, "outcome": o}
            for f in ("jwt", "client_credentials", "password")
            for o in ("success", "refused", "failed")
        ],
    )
    interval = GaugeMetricFamily(
        "billing_sync_poll_interval_seconds",
        "The polling interval in effect after the API budget guard.",
    )
    interval.add_metric([], snap.decision.interval)
    yield interval
    budget = GaugeMetricFamily(
        "billing_sync_api_budget_calls",
        "CRM calls per 24 hours billing-sync may spend (NaN: the org's limit is not known).",
    )
    budget.add_metric([], math.nan if snap.decision.budget is None else snap.decision.budget)
    yield budget
    used = GaugeMetricFamily(
        "billing_sync_api_budget_used_calls", "CRM calls billing-sync spent in the last 24 hours."
    )
    used.add_metric([], snap.decision.used_24h)
    yield used

    outbox = GaugeMetricFamily(
        "billing_sync_outbox_change_sets", "Change sets by state.", labels=["state"]
    )
    for state in OUTBOX_STATES:
        outbox.add_metric([state], snap.outbox.get(state, 0))
    yield outbox
    oldest = GaugeMetricFamily(
        "billing_sync_outbox_oldest_pending_seconds",
        "Age of the oldest change set accepted or sending (0: none).",
    )
    oldest.add_metric([], snap.oldest_pending_seconds)
    yield oldest
    push = HistogramMetricFamily(
        "billing_sync_push_duration_seconds",
        "Seconds from a change set's acceptance to its application in the CRM.",
    )
    push.add_metric(
        [], [(counters.format_le(b), float(n)) for b, n in snap.push.buckets], snap.push.sum
    )
    yield push

    yield _counter(stored, counters.PORTAL_REQUESTS, "Portal HTTP requests.", ["route", "status"])
    yield _histogram(
        stored,
        counters.PORTAL_DURATION,
        "Portal request duration until the response headers.",
        ["route"],
        counters.PORTAL_BUCKETS,
    )
    yield _counter(
        stored,
        counters.PORTAL_DENIED,
        "Portal requests refused: no valid session, not a Billing Admin, another account's id.",
        "reason",
        zeros=[{"reason": r} for r in counters.DENIAL_REASONS],
    )

    age = GaugeMetricFamily(
        "billing_sync_worker_heartbeat_age_seconds",
        "Seconds since each background process's last heartbeat.",
        labels=["worker"],
    )
    for hb in snap.workers:
        age.add_metric([hb.ident], hb.age(snap.now))
    yield age
    alive = GaugeMetricFamily(
        "billing_sync_workers_alive",
        "Background processes whose heartbeat is fresh, by role (worker, beat, run).",
        labels=["role"],
    )
    for role in ROLES:
        alive.add_metric([role], snap.alive(role))
    yield alive
    info = GaugeMetricFamily("billing_sync_build_info", "The running version.", labels=["version"])
    info.add_metric([snap.version], 1.0)
    yield info


def render(source: Callable[[], Status]) -> bytes:
    """The Prometheus text exposition of a fresh status."""
    return exposition(families(source()))


def _label_value(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def exposition(metrics: Iterable[Metric]) -> bytes:
    """``metrics`` in the Prometheus text format (version 0.0.4).

    The bytes ``prometheus_client.generate_latest`` writes for these families (counters,
    gauges and histograms, names and label names valid as they are), written directly:
    its general path (name escaping, OpenMetrics samples, timestamps) costs more than the
    rest of a scrape.
    """
    out: list[str] = []
    write = out.append
    for metric in metrics:
        name = f"{metric.name}_total" if metric.type == "counter" else metric.name
        doc = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
        write(f"# HELP {name} {doc}\n# TYPE {name} {metric.type}\n")
        for sample in metric.samples:
            value = floatToGoString(sample.value)
            if sample.labels:
                labels = ",".join(
                    f'{key}="{_label_value(text)}"' for key, text in sorted(sample.labels.items())
                )
                write(f"{sample.name}{{{labels}}} {value}\n")
            else:
                write(f"{sample.name} {value}\n")
    return "".join(out).encode()
