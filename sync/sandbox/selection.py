"""Read the SELECT list of a query for given rows, parent fields (``Account.Name``) included.

Both the REST pages and the Bulk API 2.0 results read rows this way: the object's own
columns by row number, then each relationship's parent fields by Id, one statement per
relationship and chunk of parents, so a page costs a few statements whatever its size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sync.sandbox.schema import FieldDef, ObjectDef
from sync.sandbox.soql.compiler import ParentColumn
from sync.sandbox.store import Store
from sync.sandbox.tables import quote_identifier

_PARENTS_PER_STATEMENT = 500

Column = FieldDef | ParentColumn


@dataclass(frozen=True)
class SelectedRow:
    """One record's selected values, stored forms.

    Attributes:
        values: the Id, then one value per selected column, in SELECT order (a parent
            field whose reference is empty or whose parent is gone is None).
        parents: relationship name -> the parent's Id, or None when the reference is
            empty (REST shows the relationship as null then).
    """

    values: tuple[Any, ...]
    parents: dict[str, str | None]


def read_rows(
    store: Store, obj: ObjectDef, columns: Sequence[Column], numbers: Sequence[int]
) -> list[SelectedRow]:
    """The selected values of the rows numbered ``numbers``, in that order (purged left out)."""
    own = [c.name for c in columns if isinstance(c, FieldDef)]
    parent_columns = [c for c in columns if isinstance(c, ParentColumn)]
    references: list[str] = []
    for column in parent_columns:
        if column.reference.name not in references:
            references.append(column.reference.name)
    fetched = ["Id", *own, *(r for r in references if r not in own)]
    rows = store.rows_by_number(obj, fetched, numbers)
    index = {name: i for i, name in enumerate(fetched)}
    if not parent_columns:
        width = len(own) + 1
        return [SelectedRow(tuple(row[:width]), {}) for row in rows]

    # parent values per relationship: parent Id -> {field name: stored value}
    by_relationship: dict[str, tuple[ObjectDef, FieldDef, list[str]]] = {}
    for column in parent_columns:
        entry = by_relationship.setdefault(
            column.relationship, (column.parent, column.reference, [])
        )
        if column.field.name not in entry[2]:
            entry[2].append(column.field.name)
    parent_values: dict[str, dict[str, dict[str, Any]]] = {}
    for relationship, (parent, reference, names) in by_relationship.items():
        wanted = sorted({row[index[reference.name]] for row in rows} - {None})
        parent_values[relationship] = _parents(store, parent, names, wanted)

    out = []
    for row in rows:
        values: list[Any] = [row[0]]
        parents: dict[str, str | None] = {}
        for selected in columns:
            if isinstance(selected, FieldDef):
                values.append(row[index[selected.name]])
                continue
            parent_id = row[index[selected.reference.name]]
            parents[selected.relationship] = parent_id
            found = parent_values[selected.relationship].get(parent_id) if parent_id else None
            values.append(found.get(selected.field.name) if found else None)
        out.append(SelectedRow(tuple(values), parents))
    return out


def _parents(
    store: Store, parent: ObjectDef, names: list[str], ids: list[str]
) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    columns = ", ".join(quote_identifier(n) for n in ["Id", *names])
    table = quote_identifier(parent.name)
    for start in range(0, len(ids), _PARENTS_PER_STATEMENT):
        chunk = ids[start : start + _PARENTS_PER_STATEMENT]
        marks = ", ".join("?" for _ in chunk)
        for row in store.select_rows(
            f'SELECT {columns} FROM {table} WHERE "Id" IN ({marks})', chunk
        ):
            found[row[0]] = dict(zip(names, row[1:], strict=True))
    return found
