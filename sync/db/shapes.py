"""The mirrored tables as plain column shapes, for the mapping loader's checks.

:mod:`sync.mapping` imports nothing from the database; what it needs to know of the
local tables (which column holds which type, with which length and scale) it receives
as :data:`MIRRORED_SHAPES`, computed here from the models once.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from sqlalchemy import Boolean, Date, Integer, String, Table, Text
from sqlalchemy.types import TypeEngine

from sync.db.models import MIRRORED_MODELS
from sync.db.types import ScaledDecimal, UTCDateTime
from sync.mapping.spec import ColumnShape, ColumnType, TableShapes

# Which SQLAlchemy column types can hold each local type.
_COLUMN_KINDS: dict[ColumnType, tuple[type[TypeEngine[Any]], ...]] = {
    ColumnType.STRING: (String,),
    ColumnType.TEXT: (Text, String),
    ColumnType.SFID: (String,),
    ColumnType.BOOLEAN: (Boolean,),
    ColumnType.INTEGER: (Integer, ScaledDecimal),
    ColumnType.DECIMAL: (ScaledDecimal,),
    ColumnType.DATE: (Date,),
    ColumnType.DATETIME: (UTCDateTime,),
}


def column_shape(ctype: TypeEngine[Any]) -> ColumnShape:
    """The shape of a column of type ``ctype``."""
    holds = frozenset(kind for kind, types in _COLUMN_KINDS.items() if isinstance(ctype, types))
    max_length = ctype.length if isinstance(ctype, String) else None
    precision = scale = None
    if isinstance(ctype, ScaledDecimal):
        precision, scale = ctype.precision, ctype.scale
    return ColumnShape(
        holds=holds,
        type_text=repr(ctype),
        max_length=max_length,
        precision=precision,
        scale=scale,
    )


def table_shapes(tables: dict[str, Table]) -> TableShapes:
    """``tables`` (by name) as column shapes, read-only."""
    return MappingProxyType(
        {
            name: MappingProxyType({c.name: column_shape(c.type) for c in table.columns})
            for name, table in tables.items()
        }
    )


MIRRORED_SHAPES: TableShapes = table_shapes(
    {name: model.__table__ for name, model in MIRRORED_MODELS.items()}  # type: ignore[misc]
)
