"""What a mapping is: a CRM object, a local table, and how fields become columns.

These are plain values. The loader builds them from mappings/*.yaml and binds each column
to the table's limits (length, scale), described as plain :class:`ColumnShape` values
that its caller hands in, so that the transforms can check a value without touching the
database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from collections.abc import Mapping as ReadOnly
from dataclasses import dataclass, field
from enum import StrEnum


class Direction(StrEnum):
    """Which way a mapping's data flows."""

    READ = "read"
    """Pulled from the CRM only."""
    READ_WRITE = "read_write"
    """Pulled, and accepted portal changes are pushed back."""


class ColumnType(StrEnum):
    """The local type a CRM field is converted to."""

    STRING = "string"
    TEXT = "text"
    SFID = "sfid"
    BOOLEAN = "boolean"
    INTEGER = "integer"
    DECIMAL = "decimal"
    DATE = "date"
    DATETIME = "datetime"


# The columns every mirrored table has; a mapping may not map a field onto them.
SYSTEM_COLUMNS = frozenset({"id", "sfid", "system_modstamp", "is_deleted", "synced_at"})
# The CRM fields every pull reads, whatever the mapping lists.
SYSTEM_FIELDS = ("Id", "IsDeleted", "SystemModstamp")


@dataclass(frozen=True)
class ColumnShape:
    """What one local column can hold: what the loader checks a mapped field against.

    Attributes:
        holds: the local types whose values the column stores.
        type_text: the column's type as messages name it.
        max_length: the length limit of a text column (None: unlimited).
        precision: total digits of a decimal column (None: not a decimal column).
        scale: digits after the point of a decimal column.
    """

    holds: frozenset[ColumnType]
    type_text: str
    max_length: int | None = None
    precision: int | None = None
    scale: int | None = None


# Table name -> column name -> shape: the local tables a mapping may fill.
TableShapes = ReadOnly[str, ReadOnly[str, ColumnShape]]


@dataclass(frozen=True)
class FieldSpec:
    """One CRM field stored in one column.

    Attributes:
        crm_name: the field's name in the CRM, as the mapping spells it.
        column: the local column.
        type: how the value is converted.
        reference_to: for references, the CRM object the Id points at.
        max_length: the column's length limit for strings (None: unlimited).
        precision: total digits of a decimal column (None: unlimited).
        scale: digits after the point of a decimal column.
    """

    crm_name: str
    column: str
    type: ColumnType
    reference_to: str | None = None
    max_length: int | None = None
    precision: int | None = None
    scale: int | None = None

    @property
    def is_reference(self) -> bool:
        """True for a reference to another CRM record (stored as its sfid)."""
        return self.reference_to is not None


@dataclass(frozen=True)
class Mapping:
    """How one CRM object is mirrored into one local table."""

    name: str
    crm_object: str
    table: str
    fields: tuple[FieldSpec, ...]
    direction: Direction = Direction.READ
    filter: str | None = None
    source: str = "<memory>"
    # Records from which a load goes through the Bulk API (None: the setting's value;
    # 0: never). Not part of the fingerprint: it changes how rows are read, not what.
    bulk_threshold: int | None = None
    events: bool = True
    """Listen to the object's Change Data Capture events (``events: false``: poll only)."""

    @property
    def crm_fields(self) -> list[str]:
        """Every CRM field a pull selects: the system fields, then the mapped ones."""
        mapped = [f.crm_name for f in self.fields]
        lowered = {m.lower() for m in mapped}
        return [f for f in SYSTEM_FIELDS if f.lower() not in lowered] + mapped

    @property
    def columns(self) -> list[str]:
        """The mapped columns, in field order."""
        return [f.column for f in self.fields]

    @property
    def fingerprint(self) -> str:
        """A digest of everything that decides what the table holds.

        When it changes (a field added, a column or type changed, a new filter), rows
        already stored were converted differently, so the pull reloads the mapping.
        """
        parts = [self.crm_object.lower(), self.table, self.filter or ""]
        parts += sorted(
            f"{f.crm_name.lower()}>{f.column}:{f.type.value}:{f.reference_to or ''}"
            for f in self.fields
        )
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]

    def field(self, crm_name: str) -> FieldSpec | None:
        """The spec of CRM field ``crm_name`` (any letter case), or None."""
        lowered = crm_name.lower()
        for spec in self.fields:
            if spec.crm_name.lower() == lowered:
                return spec
        return None


@dataclass(frozen=True)
class MappingSet:
    """Every mapping of a deployment, by name, in a stable order."""

    mappings: dict[str, Mapping] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Mapping]:
        return iter(self.mappings.values())

    def __len__(self) -> int:
        return len(self.mappings)

    def __contains__(self, name: object) -> bool:
        return name in self.mappings

    def __getitem__(self, name: str) -> Mapping:
        return self.mappings[name]

    @property
    def names(self) -> list[str]:
        """Mapping names in load order."""
        return list(self.mappings)

    def by_table(self, table: str) -> Mapping | None:
        """The mapping that fills ``table``, or None."""
        for mapping in self.mappings.values():
            if mapping.table == table:
                return mapping
        return None


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a mapping, naming where it is."""

    source: str
    message: str
    mapping: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = [self.source]
        if self.mapping:
            where.append(f"mapping {self.mapping!r}")
        if self.field:
            where.append(f"field {self.field!r}")
        return f"{': '.join(where)}: {self.message}"


class MappingError(Exception):
    """The mappings cannot be used; the message names file, mapping and field.

    Attributes:
        problems: every problem found, the first one being the reason of the message.
    """

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        if len(problems) == 1:
            text = f"invalid mapping: {problems[0]}"
        else:
            text = f"{len(problems)} mapping problems:\n" + "\n".join(f"  {p}" for p in problems)
        super().__init__(text)
