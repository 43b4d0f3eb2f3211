"""The sandbox CRM's object schema, loaded from schema.yaml.

Field and object names are case-insensitive in Salesforce; lookups here are too, and
return the canonical spelling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

SCHEMA_FILE = Path(__file__).with_name("schema.yaml")

FIELD_TYPES = frozenset(
    {
        "id",
        "string",
        "textarea",
        "email",
        "phone",
        "picklist",
        "boolean",
        "double",
        "currency",
        "int",
        "percent",
        "date",
        "datetime",
        "reference",
    }
)
SYSTEM_FIELDS = ("Id", "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp")


@dataclass(frozen=True)
class FieldDef:
    """One field of an object, with the metadata describe reports."""

    name: str
    type: str
    label: str
    length: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    external_id: bool = False
    unique: bool = False
    reference_to: tuple[str, ...] = ()
    picklist_values: tuple[str, ...] = ()
    precision: int = 0
    scale: int = 0
    default: Any = None
    system: bool = False

    @property
    def required(self) -> bool:
        """True when a create must give a value (Salesforce: not nillable, no default)."""
        return not self.nillable and self.createable and self.default is None


@dataclass(frozen=True)
class ObjectDef:
    """One sObject type."""

    name: str
    key_prefix: str
    label: str
    fields: dict[str, FieldDef] = field(default_factory=dict)  # keyed by lower-case name

    def field(self, name: str) -> FieldDef | None:
        """The field called ``name`` in any letter case, or None."""
        return self.fields.get(name.lower())

    @property
    def field_names(self) -> list[str]:
        """Canonical field names, system fields first."""
        return [f.name for f in self.fields.values()]

    @property
    def external_id_fields(self) -> list[FieldDef]:
        """Fields that upsert may key on."""
        return [f for f in self.fields.values() if f.external_id]


@dataclass(frozen=True)
class Schema:
    """Every object of the sandbox CRM."""

    objects: dict[str, ObjectDef]  # keyed by lower-case name

    def get(self, name: str) -> ObjectDef | None:
        """The object called ``name`` in any letter case, or None."""
        return self.objects.get(name.lower())

    def by_prefix(self, key_prefix: str) -> ObjectDef | None:
        """The object whose Ids start with ``key_prefix``, or None."""
        for obj in self.objects.values():
            if obj.key_prefix == key_prefix:
                return obj
        return None


def _system_fields() -> list[FieldDef]:
    return [
        FieldDef(
            "Id",
            "id",
            "Record ID",
            length=18,
            nillable=False,
            createable=False,
            updateable=False,
            unique=True,
            system=True,
        ),
        FieldDef(
            "IsDeleted",
            "boolean",
            "Deleted",
            nillable=False,
            createable=False,
            updateable=False,
            default=False,
            system=True,
        ),
        FieldDef(
            "CreatedDate",
            "datetime",
            "Created Date",
            nillable=False,
            createable=False,
            updateable=False,
            system=True,
        ),
        FieldDef(
            "LastModifiedDate",
            "datetime",
            "Last Modified Date",
            nillable=False,
            createable=False,
            updateable=False,
            system=True,
        ),
        FieldDef(
            "SystemModstamp",
            "datetime",
            "System Modstamp",
            nillable=False,
            createable=False,
            updateable=False,
            system=True,
        ),
    ]


def _field(name: str, spec: dict[str, Any], where: str) -> FieldDef:
    ftype = spec.get("type")
    if ftype not in FIELD_TYPES:
        raise ValueError(f"{where}.{name}: unknown field type {ftype!r}")
    label = spec.get("label") or name.removesuffix("__c").split("__")[-1].replace("_", " ")
    return FieldDef(
        name=name,
        type=ftype,
        label=label,
        length=int(spec.get("length", 18 if ftype == "reference" else 0)),
        nillable=not spec.get("required", False),
        createable=spec.get("createable", True),
        updateable=spec.get("updateable", True),
        external_id=spec.get("externalId", False),
        unique=spec.get("unique", False),
        reference_to=tuple(spec.get("referenceTo", ())),
        picklist_values=tuple(spec.get("values", ())),
        precision=int(spec.get("precision", 0)),
        scale=int(spec.get("scale", 0)),
        default=spec.get("default"),
    )


def parse_schema(document: dict[str, Any]) -> Schema:
    """Build a :class:`Schema` from the parsed YAML document."""
    objects: dict[str, ObjectDef] = {}
    for obj_name, spec in document["objects"].items():
        fields = {f.name.lower(): f for f in _system_fields()}
        for fname, fspec in spec.get("fields", {}).items():
            fields[fname.lower()] = _field(fname, fspec, obj_name)
        objects[obj_name.lower()] = ObjectDef(
            name=obj_name,
            key_prefix=str(spec["keyPrefix"]),
            label=spec.get("label", obj_name),
            fields=fields,
        )
    return Schema(objects)


@cache
def load_schema(path: Path = SCHEMA_FILE) -> Schema:
    """The sandbox schema (parsed once per process)."""
    with path.open(encoding="utf-8") as fh:
        return parse_schema(yaml.safe_load(fh))
