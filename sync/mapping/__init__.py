"""Mappings: which CRM object fills which local table, and how its fields convert.

Loaded from mappings/*.yaml (:mod:`sync.mapping.loader`) against the local tables'
shapes its caller hands in, checked against the CRM's describe (a plain dict, by
:mod:`sync.mapping.validate`), applied by pure transforms (:mod:`sync.mapping.transform`).
Nothing here imports the database or the CRM client.
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
