"""SOQL for the sandbox CRM: parse a SELECT, resolve it against the schema, run it on SQLite.

Usage::

    compiled = compile_select(parse(text), load_schema(), include_deleted=False)
    sql, params = compiled.sql()
    convert = row_converter(compiled.fields)
    records = [convert(row) for row in connection.execute(sql, params)]
"""

from sync.sandbox.soql.compiler import MAX_OFFSET, CompiledQuery, compile_select
from sync.sandbox.soql.errors import SoqlError
from sync.sandbox.soql.nodes import SelectQuery
from sync.sandbox.soql.parser import parse
from sync.sandbox.tables import create_index_sql, create_table_sql
from sync.sandbox.values import (
    FieldValueError,
    row_converter,
    soql_value_from_sqlite,
    sqlite_value_from_json,
)

__all__ = [
    "MAX_OFFSET",
    "CompiledQuery",
    "FieldValueError",
    "SelectQuery",
    "SoqlError",
    "compile_select",
    "create_index_sql",
    "create_table_sql",
    "parse",
    "row_converter",
    "soql_value_from_sqlite",
    "sqlite_value_from_json",
]
