"""Deleting records as Salesforce does: cascades, restrictions and cleared lookups.

Each reference field declares in schema.yaml what deleting the record it points at does
to the referring record (:class:`~sync.sandbox.schema.DeleteRule`):

- master-detail, or a lookup with ``cascadeDelete``: the referring records go to the
  recycle bin with it, and their own children follow by the same rules;
- a required lookup: the delete fails with ``DELETE_FAILED`` while a live record that is
  not itself being deleted refers to it;
- an optional lookup: the reference is cleared, which is an update of the referring
  record (``LastModifiedDate`` and ``SystemModstamp`` move).

The whole plan is worked out before anything is written, so a refused delete writes
nothing. Records in the recycle bin neither cascade again nor block a delete.

Purging after the retention takes whole cascades: a record deleted with its master goes
when the master goes, even though its own ``SystemModstamp`` is a few milliseconds later.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sync.sandbox.clock import ModstampClock, format_ms
from sync.sandbox.errors import ApiError
from sync.sandbox.schema import DeleteRule, FieldDef, ObjectDef, Schema
from sync.sandbox.validation import quote

_CHUNK = 500  # ids per IN (...) list: far below SQLite's variable limit
_LISTED = 10  # related records named in a DELETE_FAILED message


@dataclass
class _Group:
    """Record Ids of one object, in the order they were reached."""

    obj: ObjectDef
    ids: list[str] = field(default_factory=list)
    members: set[str] = field(default_factory=set)

    def add(self, record_ids: Iterable[str]) -> list[str]:
        """Add the Ids not yet present; returns those."""
        new = [i for i in record_ids if i not in self.members]
        self.members.update(new)
        self.ids.extend(new)
        return new


@dataclass
class DeletePlan:
    """What one delete writes: records to soft-delete and references to clear."""

    deleted: dict[str, _Group] = field(default_factory=dict)  # by lower-case object name
    cleared: dict[str, tuple[ObjectDef, dict[str, list[str]]]] = field(default_factory=dict)

    def count(self) -> int:
        """How many records the delete takes to the recycle bin."""
        return sum(len(g.ids) for g in self.deleted.values())

    def group(self, obj: ObjectDef) -> _Group:
        """The Ids of ``obj`` the delete takes (created empty)."""
        return self.deleted.setdefault(obj.name.lower(), _Group(obj))

    def is_deleted(self, obj: ObjectDef, record_id: str) -> bool:
        """True when the delete takes ``record_id``."""
        group = self.deleted.get(obj.name.lower())
        return group is not None and record_id in group.members


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _referring(
    conn: sqlite3.Connection,
    child: ObjectDef,
    ref: FieldDef,
    parent_ids: Sequence[str],
    *,
    deleted: bool = False,
) -> list[str]:
    """Ids of ``child`` records (live, or in the recycle bin) whose ``ref`` is a parent."""
    found: list[str] = []
    for chunk in _chunks(parent_ids):
        rows = conn.execute(
            f'SELECT "Id" FROM {quote(child.name)} WHERE {quote(ref.name)} IN '
            f'({", ".join("?" for _ in chunk)}) AND "IsDeleted" = ? ORDER BY "Id"',
            [*chunk, 1 if deleted else 0],
        ).fetchall()
        found.extend(row[0] for row in rows)
    return found


def plan_delete(
    conn: sqlite3.Connection, schema: Schema, obj: ObjectDef, record_id: str
) -> DeletePlan:
    """Work out what deleting the live record ``record_id`` does.

    Raises:
        ApiError: 400 DELETE_FAILED when a required lookup of a record that stays
            refers to a record the delete would take.
    """
    plan = DeletePlan()
    plan.group(obj).add([record_id])
    pending: list[tuple[ObjectDef, list[str]]] = [(obj, [record_id])]
    while pending:
        parent, parent_ids = pending.pop(0)
        for child, ref in schema.children_of(parent):
            if ref.delete_rule is DeleteRule.CASCADE:
                new = plan.group(child).add(_referring(conn, child, ref, parent_ids))
                if new:
                    pending.append((child, new))
    blockers: dict[str, tuple[ObjectDef, list[str]]] = {}
    for group in list(plan.deleted.values()):
        for child, ref in schema.children_of(group.obj):
            rule = ref.delete_rule
            if rule is DeleteRule.CASCADE:
                continue
            staying = [
                i for i in _referring(conn, child, ref, group.ids) if not plan.is_deleted(child, i)
            ]
            if not staying:
                continue
            if rule is DeleteRule.RESTRICT:
                blockers.setdefault(child.name.lower(), (child, []))[1].extend(staying)
            else:
                fields_by_id = plan.cleared.setdefault(child.name.lower(), (child, {}))[1]
                for i in staying:
                    fields_by_id.setdefault(i, []).append(ref.name)
    if blockers:
        raise _delete_failed(conn, obj, record_id, list(blockers.values()))
    return plan


def apply_delete(
    conn: sqlite3.Connection, clock: ModstampClock, plan: DeletePlan
) -> dict[str, str]:
    """Write ``plan``: soft-delete its records (the first one first), clear references.

    Every written record gets its own ``SystemModstamp``, so readers paging on it see
    each change.

    Returns:
        The new ``LastModifiedDate`` (stored format) of each record whose reference was
        cleared, by Id.
    """
    cleared_at: dict[str, str] = {}
    for group in plan.deleted.values():
        table = quote(group.obj.name)
        for record_id in group.ids:
            conn.execute(
                f'UPDATE {table} SET "IsDeleted" = 1, "SystemModstamp" = ? WHERE "Id" = ?',
                (format_ms(clock.next_ms()), record_id),
            )
    for obj, fields_by_id in plan.cleared.values():
        table = quote(obj.name)
        for record_id, names in fields_by_id.items():
            stamp = format_ms(clock.next_ms())
            sets = ", ".join(f"{quote(n)} = NULL" for n in dict.fromkeys(names))
            conn.execute(
                f'UPDATE {table} SET {sets}, "LastModifiedDate" = ?, "SystemModstamp" = ? '
                'WHERE "Id" = ?',
                (stamp, stamp, record_id),
            )
            cleared_at[record_id] = stamp
    return cleared_at


def apply_undelete(
    conn: sqlite3.Connection,
    schema: Schema,
    clock: ModstampClock,
    obj: ObjectDef,
    record_id: str,
) -> list[tuple[ObjectDef, str]]:
    """Restore a record from the recycle bin, with the records its delete cascaded to.

    Salesforce brings back master-detail and cascade-delete children deleted with their
    parent. Every restored record gets its own ``SystemModstamp``.

    Returns:
        (object, Id) of every restored record, the given one first.
    """
    restored: list[tuple[ObjectDef, str]] = [(obj, record_id)]
    pending: list[tuple[ObjectDef, list[str]]] = [(obj, [record_id])]
    while pending:
        parent, parent_ids = pending.pop(0)
        for child, ref in schema.children_of(parent):
            if ref.delete_rule is DeleteRule.CASCADE:
                found = _referring(conn, child, ref, parent_ids, deleted=True)
                if found:
                    restored.extend((child, i) for i in found)
                    pending.append((child, found))
    for restored_obj, restored_id in restored:
        conn.execute(
            f'UPDATE {quote(restored_obj.name)} SET "IsDeleted" = 0, "SystemModstamp" = ? '
            'WHERE "Id" = ?',
            (format_ms(clock.next_ms()), restored_id),
        )
    return restored


def purge(conn: sqlite3.Connection, schema: Schema, cutoff: str) -> int:
    """Hard-delete recycle-bin records deleted before ``cutoff`` (stored format).

    Records in the recycle bin that cascade from a purged record are purged with it.

    Returns:
        How many records were removed.
    """
    groups: dict[str, _Group] = {}
    pending: list[tuple[ObjectDef, list[str]]] = []
    for obj in schema.objects.values():
        rows = conn.execute(
            f'SELECT "Id" FROM {quote(obj.name)} WHERE "IsDeleted" = 1 AND "SystemModstamp" < ?',
            (cutoff,),
        ).fetchall()
        if rows:
            ids = groups.setdefault(obj.name.lower(), _Group(obj)).add(row[0] for row in rows)
            pending.append((obj, ids))
    while pending:
        parent, parent_ids = pending.pop(0)
        for child, ref in schema.children_of(parent):
            if ref.delete_rule is DeleteRule.CASCADE:
                found = _referring(conn, child, ref, parent_ids, deleted=True)
                new = groups.setdefault(child.name.lower(), _Group(child)).add(found)
                if new:
                    pending.append((child, new))
    purged = 0
    for group in groups.values():
        for chunk in _chunks(group.ids):
            cur = conn.execute(
                f'DELETE FROM {quote(group.obj.name)} WHERE "Id" IN '
                f'({", ".join("?" for _ in chunk)}) AND "IsDeleted" = 1',
                list(chunk),
            )
            purged += cur.rowcount
    return purged


# -- DELETE_FAILED ------------------------------------------------------------------------


def _names(conn: sqlite3.Connection, obj: ObjectDef, record_ids: Sequence[str]) -> list[str]:
    """How Salesforce shows records in messages: Name, a contact's full name, or the Id."""
    if obj.field("Name") is not None:
        columns = '"Name"'
    elif obj.field("LastName") is not None:
        columns = "TRIM(COALESCE(\"FirstName\", '') || ' ' || \"LastName\")"
    else:
        return list(record_ids)
    out = []
    for record_id in record_ids:
        row = conn.execute(
            f'SELECT {columns} FROM {quote(obj.name)} WHERE "Id" = ?', (record_id,)
        ).fetchone()
        out.append(row[0] if row and row[0] else record_id)
    return out


def _delete_failed(
    conn: sqlite3.Connection,
    obj: ObjectDef,
    record_id: str,
    blockers: list[tuple[ObjectDef, list[str]]],
) -> ApiError:
    parts = []
    for child, ids in blockers:
        listed = ", ".join(_names(conn, child, ids[:_LISTED]))
        more = f" and {len(ids) - _LISTED} more" if len(ids) > _LISTED else ""
        parts.append(f"{child.label_plural.lower()}: {listed}{more}")
    (name,) = _names(conn, obj, [record_id])
    return ApiError(
        400,
        "DELETE_FAILED",
        f"Your attempt to delete {name} could not be completed because it is associated "
        f"with the following {'; '.join(parts)}",
    )
