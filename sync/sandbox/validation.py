"""Field-level checks of writes, raising the errors Salesforce answers with.

Known and writable fields, value types, references to live records of the right object,
required fields and unique values.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sync.sandbox import ids
from sync.sandbox.errors import ApiError
from sync.sandbox.schema import FieldDef, ObjectDef, Schema
from sync.sandbox.values import FieldValueError, sqlite_value_from_json

Record = dict[str, Any]


def quote(name: str) -> str:
    """A double-quoted SQL identifier (names come from the schema, never from requests)."""
    return '"' + name.replace('"', '""') + '"'


def row_state(
    conn: sqlite3.Connection, obj: ObjectDef, record_id: str
) -> tuple[str, int, str] | None:
    """(Id, IsDeleted, LastModifiedDate) of one record, or None."""
    row = conn.execute(
        f'SELECT "Id", "IsDeleted", "LastModifiedDate" FROM {quote(obj.name)} WHERE "Id" = ?',
        (record_id,),
    ).fetchone()
    return None if row is None else (row[0], row[1], row[2])


def convert(
    conn: sqlite3.Connection,
    schema: Schema,
    obj: ObjectDef,
    values: dict[str, Any],
    *,
    creating: bool,
) -> Record:
    """Request JSON -> stored values, with Salesforce's field-level checks.

    Raises:
        ApiError: 400 INVALID_FIELD (unknown field),
            INVALID_FIELD_FOR_INSERT_UPDATE (read-only field), a type error naming the
            field, or for references MALFORMED_ID (not an Id), FIELD_INTEGRITY_EXCEPTION
            (an Id of another object), INVALID_CROSS_REFERENCE_KEY (no such record) or
            ENTITY_IS_DELETED.
    """
    out: Record = {}
    for key, value in values.items():
        if key == "attributes":
            continue
        f = obj.field(key)
        if f is None:
            raise ApiError(
                400,
                "INVALID_FIELD",
                f"No such column '{key}' on sobject of type {obj.name}",
                [key],
            )
        if (creating and not f.createable) or (not creating and not f.updateable):
            raise ApiError(
                400,
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {f.name}. Please check the security "
                "settings of this field and verify that it is read/write for your "
                "profile or permission set.",
                [f.name],
            )
        # null goes through the conversion too: a checkbox stores false for it, as in
        # Salesforce; every other type stores NULL, which check_required then judges
        try:
            stored = sqlite_value_from_json(f, value)
        except FieldValueError as exc:
            raise ApiError(400, value_error_code(f, exc), str(exc), [f.name]) from None
        if f.type == "reference" and stored is not None:
            stored = _check_reference(conn, schema, f, str(stored))
        out[f.name] = stored
    return out


def _check_reference(conn: sqlite3.Connection, schema: Schema, f: FieldDef, raw: str) -> str:
    record_id = ids.normalize(raw)
    if record_id is None:
        raise ApiError(
            400, "MALFORMED_ID", f"{f.label}: id value of incorrect type: {raw}", [f.name]
        )
    targets = [t for t in (schema.get(name) for name in f.reference_to) if t]
    target = next((t for t in targets if record_id.startswith(t.key_prefix)), None)
    if target is None:
        # a well-formed Id of another object: Salesforce names it an integrity problem
        raise ApiError(
            400,
            "FIELD_INTEGRITY_EXCEPTION",
            f"{f.label}: id value of incorrect type: {raw}",
            [f.name],
        )
    state = row_state(conn, target, record_id)
    if state is None:
        raise ApiError(
            400,
            "INVALID_CROSS_REFERENCE_KEY",
            f"{f.label}: invalid cross reference id",
            [f.name],
        )
    if state[1]:
        raise ApiError(400, "ENTITY_IS_DELETED", "entity is deleted", [f.name])
    return record_id


def check_required(obj: ObjectDef, row: Record, *, creating: bool) -> None:
    """Raise 400 REQUIRED_FIELD_MISSING when a required field is (being set to) null."""
    missing = [
        f.name
        for f in obj.fields.values()
        if f.required
        and (
            (creating and row.get(f.name) is None)
            or (not creating and f.name in row and row[f.name] is None)
        )
    ]
    if missing:
        raise ApiError(
            400,
            "REQUIRED_FIELD_MISSING",
            f"Required fields are missing: [{', '.join(missing)}]",
            missing,
        )


def check_unique(conn: sqlite3.Connection, obj: ObjectDef, row: Record, own_id: str | None) -> None:
    """Raise 400 DUPLICATE_VALUE when a unique field's value is held by another record."""
    for name, value in row.items():
        f = obj.fields[name.lower()]
        if not f.unique or value is None or f.name == "Id":
            continue
        hit = conn.execute(
            f'SELECT "Id" FROM {quote(obj.name)} WHERE {quote(f.name)} = ? '
            'AND "IsDeleted" = 0 AND "Id" != ? LIMIT 1',
            (value, own_id or ""),
        ).fetchone()
        if hit:
            raise ApiError(
                400,
                "DUPLICATE_VALUE",
                f"duplicate value found: {f.name} duplicates value on record with id: {hit[0]}",
                [f.name],
            )


def value_error_code(f: FieldDef, exc: Exception) -> str:
    """The Salesforce error code for a rejected field value."""
    code = getattr(exc, "status_code", None)
    if isinstance(code, str) and code:
        return code
    if f.type == "picklist":
        return "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    if f.type == "email":
        return "INVALID_EMAIL_ADDRESS"
    if f.type in ("string", "textarea", "phone"):
        return "STRING_TOO_LONG"
    return "JSON_PARSER_ERROR"
