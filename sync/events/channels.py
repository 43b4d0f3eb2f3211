"""Which Change Data Capture channel each listening mapping follows.

One channel per object (``Account`` -> ``/data/AccountChangeEvent``, custom ``Foo__c`` ->
``/data/Foo__ChangeEvent``) rather than the all-objects ``/data/ChangeEvents``: the org
may refuse some objects (only 5 entities may be selected without an add-on), and the
allocation guard can drop the busiest objects one by one.
"""

from __future__ import annotations

from collections.abc import Iterable

from sync.mapping.spec import Mapping


def channel_of(object_name: str) -> str:
    """The CDC channel of ``object_name``."""
    if object_name.lower().endswith("__c"):
        return f"/data/{object_name[:-1]}ChangeEvent"
    return f"/data/{object_name}ChangeEvent"


def plan_channels(mappings: Iterable[Mapping]) -> dict[str, list[str]]:
    """Channel -> names of the mappings it triggers, for mappings with ``events: true``.

    Several mappings of one object share its channel; the order is the mappings' order.
    """
    plan: dict[str, list[str]] = {}
    for mapping in mappings:
        if mapping.events:
            plan.setdefault(channel_of(mapping.crm_object), []).append(mapping.name)
    return plan
