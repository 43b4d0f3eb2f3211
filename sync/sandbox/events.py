"""Change Data Capture in the sandbox: the change events every write emits, and their log.

Every committed create, update, delete and undelete of a record of a selected entity
(through REST, sObject Collections, ``/composite``, upsert, SOAP undelete, or a cascade
of one of them) becomes one change event, written to the ``_cdc_events`` table in the
same transaction as the record, so a rolled-back write (an all-or-none batch that
failed) leaves no event behind. The event bus is shared by ``/data/ChangeEvents`` and the
per-object channels (``/data/AccountChangeEvent``, ``Foo__c`` ->
``/data/Foo__ChangeEvent``); replay ids increase but are not contiguous, as Salesforce's
are.

Event payloads follow the CometD shape: a ``ChangeEventHeader`` plus, by change type,
every non-empty field (CREATE, UNDELETE), the changed fields plus ``LastModifiedDate``
(UPDATE), or nothing (DELETE, GAP_*). Address and person-name fields are nested as the
compound fields Salesforce sends (``BillingAddress: {"City": ...}``, changed field
``BillingAddress.City``). ``IsDeleted`` and ``SystemModstamp`` are never in a body.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from sync.sandbox.schema import FieldDef, ObjectDef
from sync.sandbox.values import soql_value_from_sqlite

TABLE = "_cdc_events"
ALL_CHANNEL = "/data/ChangeEvents"
EVENT_RETENTION = 72 * 3600.0
"""Seconds a change event stays available for replay (Salesforce: 72 hours)."""

CHANGE_TYPES = frozenset({"CREATE", "UPDATE", "DELETE", "UNDELETE"})
GAP_TYPES = frozenset({"GAP_CREATE", "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE", "GAP_OVERFLOW"})

_NEVER_IN_BODY = frozenset({"isdeleted", "systemmodstamp", "id"})

# Compound fields: (compound name, {flat field: component}) per object.
_COMPOUNDS: dict[str, list[tuple[str, dict[str, str]]]] = {
    "account": [
        (
            "BillingAddress",
            {
                "BillingStreet": "Street",
                "BillingCity": "City",
                "BillingState": "State",
                "BillingPostalCode": "PostalCode",
                "BillingCountry": "Country",
            },
        ),
        (
            "ShippingAddress",
            {
                "ShippingStreet": "Street",
                "ShippingCity": "City",
                "ShippingState": "State",
                "ShippingPostalCode": "PostalCode",
                "ShippingCountry": "Country",
            },
        ),
    ],
    "contact": [
        ("Name", {"Salutation": "Salutation", "FirstName": "FirstName", "LastName": "LastName"}),
    ],
}


def channel_of(object_name: str) -> str:
    """The CDC channel of an object: ``Account`` -> ``/data/AccountChangeEvent``.

    Custom objects drop the ``c`` of their suffix: ``Foo__c`` -> ``/data/Foo__ChangeEvent``.
    """
    if object_name.lower().endswith("__c"):
        return f"/data/{object_name[:-1]}ChangeEvent"
    return f"/data/{object_name}ChangeEvent"


def schema_id(object_name: str) -> str:
    """A stable schema id per event type (what ``data.schema`` names)."""
    return hashlib.sha256(channel_of(object_name).encode()).hexdigest()[:22]


def _iso(stored: str) -> str:
    """Stored ``2026-11-22T10:00:00.000+0000`` -> CometD's ``2026-11-22T10:00:00.000Z``."""
    return stored[:-5] + "Z" if stored.endswith("+0000") else stored


def json_value(field: FieldDef, stored: Any) -> Any:
    """The value of ``field`` as a change event carries it."""
    value = soql_value_from_sqlite(field, stored)
    if field.type == "datetime" and isinstance(value, str):
        return _iso(value)
    return value


def event_fields(
    obj: ObjectDef, values: dict[str, Any], changed: Sequence[str] | None
) -> tuple[dict[str, Any], list[str]]:
    """The body fields and ``changedFields`` of an event.

    Args:
        obj: the object.
        values: canonical field name to its JSON value (already converted).
        changed: for an UPDATE, the fields that changed (body = those); None for a
            CREATE or UNDELETE (body = every non-empty field, changedFields empty).

    Returns:
        (body fields with compound fields nested, changedFields).
    """
    names = [n for n in (changed if changed is not None else values) if n in values]
    names = [n for n in names if n.lower() not in _NEVER_IN_BODY]
    if changed is None:
        names = [n for n in names if values[n] is not None]
    body: dict[str, Any] = {}
    changed_out: list[str] = []
    nested: dict[str, str] = {}
    for compound, parts in _COMPOUNDS.get(obj.name.lower(), []):
        for flat, component in parts.items():
            nested[flat.lower()] = f"{compound}.{component}"
    for name in names:
        path = nested.get(name.lower())
        if path is None:
            body[name] = values[name]
            changed_out.append(name)
            continue
        compound, component = path.split(".")
        body.setdefault(compound, {})[component] = values[name]
        changed_out.append(path)
    return body, (changed_out if changed is not None else [])


@dataclass(frozen=True)
class StoredEvent:
    """One change event as the log keeps it."""

    replay_id: int
    entity: str
    created_ms: int
    payload: dict[str, Any]

    def message(self, channel: str) -> dict[str, Any]:
        """The Bayeux message delivering this event on ``channel``."""
        return {
            "channel": channel,
            "data": {
                "schema": schema_id(self.entity),
                "payload": self.payload,
                "event": {"replayId": self.replay_id},
            },
        }

    def on_channel(self, channel: str) -> bool:
        """True when subscribers of ``channel`` get this event."""
        return channel == ALL_CHANNEL or channel == channel_of(self.entity)


def create_table(conn: sqlite3.Connection) -> None:
    """The event log's table (idempotent)."""
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {TABLE} (replay_id INTEGER PRIMARY KEY, "
        "entity TEXT NOT NULL, created_ms INTEGER NOT NULL, payload BLOB NOT NULL)"
    )
    conn.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_created ON {TABLE} (created_ms)")


def insert(conn: sqlite3.Connection, event: StoredEvent) -> None:
    """Write ``event`` (inside the caller's transaction)."""
    conn.execute(
        f"INSERT INTO {TABLE} (replay_id, entity, created_ms, payload) VALUES (?, ?, ?, ?)",
        (event.replay_id, event.entity, event.created_ms, orjson.dumps(event.payload)),
    )


def _row(row: Sequence[Any]) -> StoredEvent:
    return StoredEvent(int(row[0]), str(row[1]), int(row[2]), orjson.loads(row[3]))


def after(
    conn: sqlite3.Connection, replay_id: int, entities: Iterable[str] | None, limit: int
) -> list[StoredEvent]:
    """Events with a replay id above ``replay_id``, oldest first (``entities``: filter)."""
    wanted = None if entities is None else sorted(set(entities))
    if wanted is not None and not wanted:
        return []
    where = "replay_id > ?"
    params: list[Any] = [replay_id]
    if wanted is not None:
        where += f" AND entity IN ({', '.join('?' for _ in wanted)})"
        params.extend(wanted)
    rows = conn.execute(
        f"SELECT replay_id, entity, created_ms, payload FROM {TABLE} WHERE {where} "
        "ORDER BY replay_id LIMIT ?",
        [*params, limit],
    ).fetchall()
    return [_row(r) for r in rows]


def exists(conn: sqlite3.Connection, replay_id: int) -> bool:
    """True when the log still holds the event ``replay_id``."""
    row = conn.execute(f"SELECT 1 FROM {TABLE} WHERE replay_id = ?", (replay_id,)).fetchone()
    return row is not None


def newest(conn: sqlite3.Connection) -> int:
    """The highest replay id stored (0 when the log is empty)."""
    row = conn.execute(f"SELECT MAX(replay_id) FROM {TABLE}").fetchone()
    return int(row[0] or 0)


def oldest(conn: sqlite3.Connection) -> int | None:
    """The lowest replay id still retained, or None."""
    row = conn.execute(f"SELECT MIN(replay_id) FROM {TABLE}").fetchone()
    return None if row[0] is None else int(row[0])


def purge(conn: sqlite3.Connection, cutoff_ms: int) -> int:
    """Drop events created before ``cutoff_ms``; returns how many."""
    return conn.execute(f"DELETE FROM {TABLE} WHERE created_ms < ?", (cutoff_ms,)).rowcount
