"""Mappings: which CRM object fills which local table, and how its fields convert.

Loaded from mappings/*.yaml (:mod:`sync.mapping.loader`), checked against the CRM's
describe (:mod:`sync.mapping.validate`), applied by pure transforms
(:mod:`sync.mapping.transform`).
"""

from sync.mapping.loader import default_mappings_dir, load_mappings
from sync.mapping.spec import (
    ColumnType,
    Direction,
    FieldSpec,
    Mapping,
    MappingError,
    MappingSet,
    Problem,
)
from sync.mapping.transform import ConversionError, record_to_row, row_to_record
from sync.mapping.validate import ValidationReport, validate_mappings

__all__ = [
    "ColumnType",
    "ConversionError",
    "Direction",
    "FieldSpec",
    "Mapping",
    "MappingError",
    "MappingSet",
    "Problem",
    "ValidationReport",
    "default_mappings_dir",
    "load_mappings",
    "record_to_row",
    "row_to_record",
    "validate_mappings",
]
