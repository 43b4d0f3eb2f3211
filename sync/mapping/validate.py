"""Check mappings against the CRM's describe of each object.

A missing object or field, or a CRM type that cannot be converted to the mapping's type,
is an error: the service stops with one message naming file, mapping and field. Limits
that only some values could exceed (a CRM field longer than its column) are warnings:
those values are recorded as record errors when they occur.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from sync.mapping.spec import (
    SYSTEM_FIELDS,
    ColumnType,
    FieldSpec,
    Mapping,
    MappingError,
    MappingSet,
    Problem,
)

_TEXT_TYPES = frozenset(
    {
        "string",
        "textarea",
        "email",
        "phone",
        "picklist",
        "multipicklist",
        "combobox",
        "url",
        "encryptedstring",
        "id",
        "reference",
    }
)
_NUMBER_TYPES = frozenset({"double", "currency", "percent", "int", "long"})
# CRM describe types each local type accepts.
ACCEPTED_CRM_TYPES: dict[ColumnType, frozenset[str]] = {
    ColumnType.STRING: _TEXT_TYPES,
    ColumnType.TEXT: _TEXT_TYPES,
    ColumnType.SFID: frozenset({"id", "reference"}),
    ColumnType.BOOLEAN: frozenset({"boolean"}),
    ColumnType.INTEGER: _NUMBER_TYPES,  # fractional numbers refused below, by scale
    ColumnType.DECIMAL: _NUMBER_TYPES,
    ColumnType.DATE: frozenset({"date"}),
    ColumnType.DATETIME: frozenset({"datetime"}),
}


@dataclass
class ValidationReport:
    """The outcome of a successful validation.

    Attributes:
        mappings: the mappings with CRM names in the CRM's canonical spelling.
        warnings: limits some values could exceed (recorded per record when they do).
    """

    mappings: MappingSet
    warnings: list[Problem] = field(default_factory=list)


def _fields_by_name(describe: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        str(f.get("name", "")).lower(): f
        for f in describe.get("fields", [])
        if isinstance(f, dict) and f.get("name")
    }


def _crm_length(meta: dict[str, Any]) -> int:
    if meta.get("type") in ("picklist", "multipicklist"):
        values = [
            str(v.get("value", ""))
            for v in meta.get("picklistValues") or []
            if isinstance(v, dict) and v.get("active", True)
        ]
        if values:
            return max(len(v) for v in values)
    return int(meta.get("length") or 0)


def _check_field(
    mapping: Mapping,
    spec: FieldSpec,
    meta: dict[str, Any],
    errors: list[Problem],
    warnings: list[Problem],
) -> FieldSpec:
    crm_type = str(meta.get("type", ""))
    where = (mapping.source, mapping.name, spec.crm_name)
    if crm_type not in ACCEPTED_CRM_TYPES[spec.type]:
        accepted = ", ".join(sorted(ACCEPTED_CRM_TYPES[spec.type]))
        errors.append(
            Problem(
                where[0],
                f"CRM type {crm_type!r} cannot map to {spec.type.value!r} (accepts: {accepted})",
                where[1],
                where[2],
            )
        )
        return spec
    scale = int(meta.get("scale") or 0)
    if spec.type is ColumnType.INTEGER and crm_type in ("double", "currency", "percent") and scale:
        errors.append(
            Problem(
                where[0],
                f"CRM type {crm_type!r} with {scale} decimals cannot map to 'integer'",
                where[1],
                where[2],
            )
        )
    if spec.reference_to is not None:
        targets = [str(t) for t in meta.get("referenceTo") or []]
        if crm_type == "reference" and spec.reference_to.lower() not in {
            t.lower() for t in targets
        }:
            errors.append(
                Problem(
                    where[0],
                    f"references {', '.join(targets) or 'nothing'} in the CRM, "
                    f"not {spec.reference_to}",
                    where[1],
                    where[2],
                )
            )
    if spec.type in (ColumnType.STRING, ColumnType.TEXT) and spec.max_length is not None:
        length = _crm_length(meta)
        if length > spec.max_length:
            warnings.append(
                Problem(
                    where[0],
                    f"the CRM allows {length} characters, column {spec.column} holds "
                    f"{spec.max_length}: longer values become record errors",
                    where[1],
                    where[2],
                )
            )
    if spec.type is ColumnType.DECIMAL and spec.precision is not None:
        crm_precision = int(meta.get("precision") or 0)
        if crm_precision - scale > spec.precision - (spec.scale or 0):
            warnings.append(
                Problem(
                    where[0],
                    f"the CRM allows {crm_precision - scale} integer digits, column "
                    f"{spec.column} holds {spec.precision - (spec.scale or 0)}: larger "
                    "values become record errors",
                    where[1],
                    where[2],
                )
            )
        if scale > (spec.scale or 0):
            warnings.append(
                Problem(
                    where[0],
                    f"the CRM keeps {scale} decimals, column {spec.column} keeps "
                    f"{spec.scale or 0}: values are rounded",
                    where[1],
                    where[2],
                )
            )
    canonical = str(meta.get("name", spec.crm_name))
    targets = [str(t) for t in meta.get("referenceTo") or []]
    reference_to = spec.reference_to
    if reference_to is not None:
        reference_to = next((t for t in targets if t.lower() == reference_to.lower()), reference_to)
    return replace(spec, crm_name=canonical, reference_to=reference_to)


def validate_mappings(
    mappings: MappingSet, describes: dict[str, dict[str, Any] | None]
) -> ValidationReport:
    """Check every mapping against the describe of its CRM object.

    Args:
        mappings: the loaded mappings.
        describes: the describe JSON of each mapped object, keyed by the object name as the
            mapping spells it; None when the CRM does not know the object.

    Returns:
        The mappings with canonical CRM names, and the warnings.

    Raises:
        MappingError: an object or field is missing, or a type cannot map.
    """
    errors: list[Problem] = []
    warnings: list[Problem] = []
    checked: dict[str, Mapping] = {}
    for mapping in mappings:
        describe = describes.get(mapping.crm_object)
        if describe is None:
            errors.append(
                Problem(
                    mapping.source,
                    f"object {mapping.crm_object!r} not found in the CRM",
                    mapping.name,
                )
            )
            continue
        if describe.get("queryable") is False:
            errors.append(
                Problem(
                    mapping.source,
                    f"object {mapping.crm_object!r} cannot be queried by this user",
                    mapping.name,
                )
            )
            continue
        by_name = _fields_by_name(describe)
        for system in SYSTEM_FIELDS:
            if system.lower() not in by_name:
                errors.append(
                    Problem(
                        mapping.source,
                        f"object {mapping.crm_object!r} has no {system} field",
                        mapping.name,
                        system,
                    )
                )
        specs: list[FieldSpec] = []
        for spec in mapping.fields:
            meta = by_name.get(spec.crm_name.lower())
            if meta is None:
                errors.append(
                    Problem(
                        mapping.source,
                        f"field not found on {mapping.crm_object} in the CRM",
                        mapping.name,
                        spec.crm_name,
                    )
                )
                specs.append(spec)
                continue
            specs.append(_check_field(mapping, spec, meta, errors, warnings))
        checked[mapping.name] = replace(
            mapping,
            crm_object=str(describe.get("name") or mapping.crm_object),
            fields=tuple(specs),
        )
    if errors:
        raise MappingError(errors)
    return ValidationReport(MappingSet(checked), warnings)
