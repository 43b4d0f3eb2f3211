"""SQLite tables of the sandbox CRM: one table per object, one column per field.

Tables and columns carry the objects' and fields' canonical names, double-quoted. Text
columns (string, textarea, email, phone, picklist) use ``COLLATE NOCASE`` because
Salesforce compares and sorts text case-insensitively (``WHERE Name = 'acme'`` finds
"Acme", and external ids match regardless of case); Ids and references stay
case-sensitive, as 15-character Ids are.
"""

from __future__ import annotations

from sync.sandbox.schema import FieldDef, ObjectDef
from sync.sandbox.values import ID_TYPES, REAL_TYPES, TEXT_TYPES


def quote_identifier(name: str) -> str:
    """``name`` as a double-quoted SQLite identifier."""
    return '"' + name.replace('"', '""') + '"'


def column_type(field: FieldDef) -> str:
    """The SQLite column type (with collation) that stores ``field``."""
    if field.type in TEXT_TYPES:
        return "TEXT COLLATE NOCASE"
    if field.type in ID_TYPES or field.type in ("date", "datetime"):
        return "TEXT"
    if field.type in REAL_TYPES:
        return "REAL"
    if field.type in ("int", "boolean"):
        return "INTEGER"
    raise ValueError(f"{field.name}: no storage for field type {field.type!r}")


def _column(field: FieldDef) -> str:
    parts = [quote_identifier(field.name), column_type(field)]
    if field.name == "Id":
        parts.append("NOT NULL PRIMARY KEY")
    elif field.type == "boolean":
        # Salesforce checkboxes are never null.
        parts.append(f"NOT NULL DEFAULT {1 if field.default else 0}")
    return " ".join(parts)


def create_table_sql(obj: ObjectDef) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for ``obj`` (a rowid table keyed by ``Id``).

    Uniqueness of unique external ids is not a constraint here: the server checks it,
    so that a duplicate answers DUPLICATE_VALUE instead of failing the statement.
    """
    columns = ",\n  ".join(_column(f) for f in obj.fields.values())
    return f"CREATE TABLE IF NOT EXISTS {quote_identifier(obj.name)} (\n  {columns}\n)"


def create_index_sql(obj: ObjectDef) -> list[str]:
    """``CREATE INDEX IF NOT EXISTS`` statements for ``obj``.

    Indexes: (SystemModstamp, Id) for incremental pulls and their ORDER BY; each
    external id field (upsert lookups); each reference field (children of a parent).
    """
    table = quote_identifier(obj.name)
    statements = [
        f"CREATE INDEX IF NOT EXISTS {quote_identifier(f'{obj.name}__modstamp_id')} "
        f'ON {table} ("SystemModstamp", "Id")'
    ]
    for field in obj.fields.values():
        if field.external_id or field.type == "reference":
            index = quote_identifier(f"{obj.name}__{field.name}")
            statements.append(
                f"CREATE INDEX IF NOT EXISTS {index} ON {table} ({quote_identifier(field.name)})"
            )
    return statements
