"""The sandbox CRM's object schema, loaded from schema.yaml.

Field and object names are case-insensitive in Salesforce; lookups here are too, and
return the canonical spelling.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
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
RELATIONSHIP_KINDS = frozenset({"lookup", "masterDetail"})


class DeleteRule(StrEnum):
    """What deleting a record does to the records whose reference points at it."""

    CASCADE = "cascade"  # master-detail or cascade-delete lookup: they are deleted too
    RESTRICT = "restrict"  # required lookup: the delete is refused while they exist
    CLEAR = "clear"  # optional lookup: their reference is set to null


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
    relationship: str = ""  # references: "lookup" or "masterDetail"
    cascade_delete: bool = False
    relationship_name: str | None = None  # e.g. Account (AccountId), Order__r (Order__c)
    relationship_order: int | None = None  # master-detail: 0 primary, 1 secondary

    @property
    def required(self) -> bool:
        """True when a create must give a value (Salesforce: not nillable, no default)."""
        return not self.nillable and self.createable and self.default is None

    @property
    def master_detail(self) -> bool:
        """True for the reference of a detail record to its master."""
        return self.relationship == "masterDetail"

    @property
    def delete_rule(self) -> DeleteRule | None:
        """What deleting the referenced record does to this record (None: no reference)."""
        if self.type != "reference":
            return None
        if self.cascade_delete:
            return DeleteRule.CASCADE
        return DeleteRule.CLEAR if self.nillable else DeleteRule.RESTRICT


@dataclass(frozen=True)
class ChildRelationship:
    """A reference to an object, seen from the referenced (parent) object."""

    child_object: str
    field: str
    relationship_name: str
    cascade_delete: bool
    restricted_delete: bool


@dataclass(frozen=True)
class ObjectDef:
    """One sObject type."""

    name: str
    key_prefix: str
    label: str
    fields: dict[str, FieldDef] = field(default_factory=dict)  # keyed by lower-case name
    label_plural: str = ""
    child_relationships: tuple[ChildRelationship, ...] = ()

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

    def children_of(self, obj: ObjectDef) -> list[tuple[ObjectDef, FieldDef]]:
        """(child object, reference field) of every reference to ``obj``."""
        out = []
        for relation in obj.child_relationships:
            child = self.objects[relation.child_object.lower()]
            out.append((child, child.fields[relation.field.lower()]))
        return out

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


def default_relationship_name(field_name: str) -> str:
    """Salesforce's name of a reference's parent (``AccountId`` -> ``Account``).

    Custom references end in ``__r`` instead of ``__c`` (``Order__c`` -> ``Order__r``).
    """
    if field_name.endswith("__c"):
        return field_name[:-3] + "__r"
    return field_name[:-2] if field_name.endswith("Id") else field_name


def _reference_spec(name: str, spec: dict[str, Any], where: str) -> dict[str, Any]:
    """The relationship keys of a field spec, checked; empty for non-references."""
    keys = ("relationship", "cascadeDelete", "relationshipName", "childRelationshipName")
    if spec.get("type") != "reference":
        given = [k for k in keys if k in spec]
        if given:
            raise ValueError(f"{where}.{name}: {', '.join(given)} only apply to references")
        return {}
    kind = spec.get("relationship", "lookup")
    if kind not in RELATIONSHIP_KINDS:
        raise ValueError(
            f"{where}.{name}: relationship must be one of {sorted(RELATIONSHIP_KINDS)}"
        )
    if not spec.get("referenceTo"):
        raise ValueError(f"{where}.{name}: a reference needs referenceTo")
    if kind == "masterDetail":
        # a detail cannot exist without its master, and goes with it
        if spec.get("required") is False or spec.get("cascadeDelete") is False:
            raise ValueError(f"{where}.{name}: a master-detail reference is required and cascades")
        return {
            "relationship": kind,
            "cascade_delete": True,
            "nillable": False,
            "relationship_name": spec.get("relationshipName") or default_relationship_name(name),
        }
    return {
        "relationship": kind,
        "cascade_delete": bool(spec.get("cascadeDelete", False)),
        "relationship_name": spec.get("relationshipName") or default_relationship_name(name),
    }


def _field(name: str, spec: dict[str, Any], where: str) -> FieldDef:
    ftype = spec.get("type")
    if ftype not in FIELD_TYPES:
        raise ValueError(f"{where}.{name}: unknown field type {ftype!r}")
    label = spec.get("label") or name.removesuffix("__c").split("__")[-1].replace("_", " ")
    reference = _reference_spec(name, spec, where)
    return FieldDef(
        name=name,
        type=ftype,
        label=label,
        length=int(spec.get("length", 18 if ftype == "reference" else 0)),
        nillable=reference.pop("nillable", not spec.get("required", False)),
        createable=spec.get("createable", True),
        updateable=spec.get("updateable", True),
        external_id=spec.get("externalId", False),
        unique=spec.get("unique", False),
        reference_to=tuple(spec.get("referenceTo", ())),
        picklist_values=tuple(spec.get("values", ())),
        precision=int(spec.get("precision", 0)),
        scale=int(spec.get("scale", 0)),
        default=spec.get("default"),
        **reference,
    )


def _child_relationship_name(child: str, f: FieldDef, spec: dict[str, Any]) -> str:
    if spec.get("childRelationshipName"):
        return str(spec["childRelationshipName"])
    if f.name.endswith("__c"):
        return child.removesuffix("__c") + "s__r"
    return child + "s"


def _with_relationships(
    objects: dict[str, ObjectDef], specs: dict[str, dict[str, Any]]
) -> dict[str, ObjectDef]:
    """``objects`` with master-detail orders and each parent's child relationships."""
    children: dict[str, list[ChildRelationship]] = {}
    out: dict[str, ObjectDef] = {}
    for key, obj in objects.items():
        fields = dict(obj.fields)
        order = 0
        for fkey, f in obj.fields.items():
            if f.type != "reference":
                continue
            for parent in f.reference_to:
                if parent.lower() not in objects:
                    raise ValueError(f"{obj.name}.{f.name}: referenceTo names unknown {parent!r}")
            if f.master_detail:
                if order > 1:
                    raise ValueError(f"{obj.name}: at most two master-detail references")
                fields[fkey] = replace(f, relationship_order=order)
                order += 1
            spec = specs[obj.name]["fields"][f.name]
            relation = ChildRelationship(
                child_object=obj.name,
                field=f.name,
                relationship_name=_child_relationship_name(obj.name, f, spec),
                cascade_delete=f.cascade_delete,
                restricted_delete=f.delete_rule is DeleteRule.RESTRICT,
            )
            for parent in f.reference_to:
                siblings = children.setdefault(parent.lower(), [])
                if any(r.relationship_name == relation.relationship_name for r in siblings):
                    raise ValueError(
                        f"{obj.name}.{f.name}: child relationship name "
                        f"{relation.relationship_name!r} is taken on {parent}"
                    )
                siblings.append(relation)
        out[key] = replace(obj, fields=fields)
    return {
        key: replace(obj, child_relationships=tuple(children.get(key, ())))
        for key, obj in out.items()
    }


def parse_schema(document: dict[str, Any]) -> Schema:
    """Build a :class:`Schema` from the parsed YAML document."""
    objects: dict[str, ObjectDef] = {}
    for obj_name, spec in document["objects"].items():
        fields = {f.name.lower(): f for f in _system_fields()}
        for fname, fspec in spec.get("fields", {}).items():
            fields[fname.lower()] = _field(fname, fspec, obj_name)
        label = spec.get("label", obj_name)
        objects[obj_name.lower()] = ObjectDef(
            name=obj_name,
            key_prefix=str(spec["keyPrefix"]),
            label=label,
            fields=fields,
            label_plural=spec.get("labelPlural") or label + "s",
        )
    return Schema(_with_relationships(objects, document["objects"]))


@cache
def load_schema(path: Path = SCHEMA_FILE) -> Schema:
    """The sandbox schema (parsed once per process)."""
    with path.open(encoding="utf-8") as fh:
        return parse_schema(yaml.safe_load(fh))
