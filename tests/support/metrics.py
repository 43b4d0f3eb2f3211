"""Reading ``/metrics`` in tests: parsed by prometheus-client's own parser."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.parser import text_string_to_metric_families

from sync.telemetry import counters

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """(family name to type, every sample by (sample name, labels))."""
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return types, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; KeyError names what is missing."""
    key = (name, frozenset(labels.items()))
    if key not in samples:
        raise KeyError(f"no sample {name}{labels}")
    return samples[key]


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    """The values ``label`` takes among the samples called ``name``."""
    return {dict(labels)[label] for (n, labels) in samples if n == name and label in dict(labels)}


def clear_buffer() -> None:
    """Forget tallies other tests left in this process's buffer."""
    counters.BUFFER.drain()
    counters.BUFFER.take_usage()


def names_of(samples: Samples) -> Iterable[str]:
    return {name for name, _ in samples}
