"""Pure conversions between CRM records (JSON dicts) and local rows (column dicts).

Nothing here touches the network or the database: tests feed plain dicts. The pull's
fast path, a converter generated per mapping that produces the database driver's bound
forms, lives next to the pull (:mod:`sync.pull.rows`); :func:`record_to_row` here is the
reference it is tested against. A value that
cannot be stored faithfully raises :class:`ConversionError` naming the field, so the pull
records that one record and carries on with the rest of its page.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from sync.mapping.spec import ColumnType, FieldSpec, Mapping

UTC = dt.UTC
_SFID = re.compile(r"^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$")
# 2026-11-22T10:00:00.000+0000, ...Z, ...+00:00, with or without the fraction.
_SF_DATETIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?"
    r"(Z|[+-]\d{2}:?\d{2})$"
)


class ConversionError(ValueError):
    """A CRM value that cannot be stored in its column.

    Attributes:
        field: the CRM field name.
        reason: what is wrong, without the value when it may be sensitive.
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


def parse_sf_datetime(text: str) -> dt.datetime:
    """Parse a Salesforce JSON datetime into an aware UTC datetime.

    Accepts ``2026-11-22T10:00:00.000+0000`` (what the REST API sends), ``Z``,
    ``+hh:mm`` and ``+hhmm`` offsets, with or without the fraction.

    Raises:
        ValueError: ``text`` is not a datetime in one of those forms, or has no offset.
    """
    if not isinstance(text, str) or not _SF_DATETIME.match(text):
        raise ValueError(f"not a datetime: {text!r}")
    # fromisoformat (C, Python 3.11+) reads every form the pattern lets through.
    value = dt.datetime.fromisoformat(text)
    return value.astimezone(UTC)


def fast_sf_datetime(text: Any) -> dt.datetime:
    """:func:`parse_sf_datetime` for the hot path: the pattern is checked only on failure.

    Raises:
        ValueError: as :func:`parse_sf_datetime`.
    """
    try:
        value = dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return parse_sf_datetime(text)
    if value.tzinfo is None or len(text) < 20 or text[10] != "T":
        return parse_sf_datetime(text)
    return value.astimezone(UTC)


def format_sf_datetime(value: dt.datetime) -> str:
    """Format an aware datetime as Salesforce JSON does: ``2026-11-22T10:00:00.000+0000``.

    Raises:
        ValueError: ``value`` is naive.
    """
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}")
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+0000"


def _to_string(spec: FieldSpec, value: Any) -> str:
    if not isinstance(value, str):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConversionError(spec.crm_name, f"expected text, got {type(value).__name__}")
        value = str(value)
    if "\x00" in value:
        raise ConversionError(spec.crm_name, "contains a NUL character, which no column holds")
    if spec.max_length is not None and len(value) > spec.max_length:
        raise ConversionError(
            spec.crm_name,
            f"{len(value)} characters do not fit column {spec.column} "
            f"({spec.max_length} characters)",
        )
    return value


def _is_sfid(value: Any) -> bool:
    return isinstance(value, str) and len(value) in (15, 18) and value.isascii() and value.isalnum()


def _to_sfid(spec: FieldSpec, value: Any) -> str:
    if not _is_sfid(value):
        raise ConversionError(spec.crm_name, f"not a record Id: {value!r}")
    return value


def _to_boolean(spec: FieldSpec, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ConversionError(spec.crm_name, f"expected true or false, got {value!r}")


@lru_cache(maxsize=1024)
def decimal_limits(spec: FieldSpec) -> tuple[Decimal | None, Decimal | None]:
    """The quantum of ``spec``'s scale and the bound its magnitude stays under (or None)."""
    quantum = Decimal(1).scaleb(-spec.scale) if spec.scale is not None else None
    limit = Decimal(10) ** (spec.precision - (spec.scale or 0)) if spec.precision else None
    return quantum, limit


def to_decimal(
    spec: FieldSpec,
    value: Any,
    limits: tuple[Decimal | None, Decimal | None] | None = None,
) -> Decimal:
    """A CRM number as the exact Decimal of ``spec``'s column.

    Args:
        spec: the field.
        value: the CRM's JSON number (or its text).
        limits: :func:`decimal_limits` of ``spec``, when the caller holds them already.

    Raises:
        ConversionError: not a finite number, or too large for the column.
    """
    if isinstance(value, bool):
        raise ConversionError(spec.crm_name, f"expected a number, got {value!r}")
    try:
        number = Decimal(repr(value) if isinstance(value, float) else value)
    except (InvalidOperation, TypeError, ValueError):
        raise ConversionError(spec.crm_name, f"expected a number, got {value!r}") from None
    if not number.is_finite():
        raise ConversionError(spec.crm_name, f"expected a number, got {value!r}")
    quantum, limit = limits or decimal_limits(spec)
    if quantum is not None:
        # The CRM rounds on write to the field's scale; a double can still carry binary
        # noise such as 0.30000000000000004, which the column's scale absorbs.
        try:
            number = number.quantize(quantum)
        except InvalidOperation:
            # more digits than the decimal context's 28, so more than any column holds
            raise _too_large(spec, number) from None
    if limit is not None and abs(number) >= limit:
        raise _too_large(spec, number)
    return number


def _too_large(spec: FieldSpec, number: Decimal) -> ConversionError:
    return ConversionError(
        spec.crm_name,
        f"{number} is too large for column {spec.column} "
        f"({spec.precision} digits, {spec.scale or 0} after the point)",
    )


def _to_integer(spec: FieldSpec, value: Any) -> int:
    if isinstance(value, bool):
        raise ConversionError(spec.crm_name, f"expected a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+(?:\.0*)?", value):
        return int(Decimal(value))
    raise ConversionError(spec.crm_name, f"expected a whole number, got {value!r}")


def to_date(spec: FieldSpec, value: Any) -> dt.date:
    """A CRM date (``YYYY-MM-DD``) as a date.

    Raises:
        ConversionError: not a date.
    """
    if not isinstance(value, str):
        raise ConversionError(spec.crm_name, f"expected a date, got {value!r}")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ConversionError(spec.crm_name, f"not a date: {value!r}") from None


def _to_datetime(spec: FieldSpec, value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise ConversionError(spec.crm_name, f"expected a datetime, got {value!r}")
    try:
        return fast_sf_datetime(value)
    except ValueError:
        raise ConversionError(spec.crm_name, f"not a datetime: {value!r}") from None


Converter = Callable[[FieldSpec, Any], Any]

# The converter of each column type, for non-null values.
CONVERTERS: dict[ColumnType, Converter] = {
    ColumnType.STRING: _to_string,
    ColumnType.TEXT: _to_string,
    ColumnType.SFID: _to_sfid,
    ColumnType.BOOLEAN: _to_boolean,
    ColumnType.INTEGER: _to_integer,
    ColumnType.DECIMAL: to_decimal,
    ColumnType.DATE: to_date,
    ColumnType.DATETIME: _to_datetime,
}


def convert_value(spec: FieldSpec, value: Any) -> Any:
    """Convert one CRM JSON value for ``spec``'s column; None stays None.

    Raises:
        ConversionError: the value cannot be stored faithfully.
    """
    if value is None:
        return None
    return CONVERTERS[spec.type](spec, value)


def field_value(record: dict[str, Any], name: str) -> Any:
    """``record[name]``, tolerating a letter case other than the mapping's.

    Raises:
        KeyError: the record has no such field in any letter case.
    """
    if name in record:
        return record[name]
    lowered = name.lower()
    for key, value in record.items():
        if key.lower() == lowered:
            return value
    raise KeyError(name)


def record_id(record: dict[str, Any]) -> str | None:
    """The record's Id, or None when it has none."""
    try:
        value = field_value(record, "Id")
    except KeyError:
        return None
    return value if isinstance(value, str) else None


# The columns the pull fills itself, in the order a row starts with.
SYSTEM_ROW_COLUMNS = ("sfid", "system_modstamp", "is_deleted", "synced_at")
_STAMP = FieldSpec("SystemModstamp", "system_modstamp", ColumnType.DATETIME)


def record_to_row(
    mapping: Mapping, record: dict[str, Any], synced_at: dt.datetime
) -> dict[str, Any]:
    """The local row for a CRM record of ``mapping``'s object.

    The row has every mapped column plus ``sfid``, ``system_modstamp``, ``is_deleted``
    (queryAll's IsDeleted: a tombstone) and ``synced_at``. This is the reference
    conversion: one field at a time, in field order, through :func:`convert_value`,
    slow and plainly right. The pull converts pages with the generated builder of
    :mod:`sync.pull.rows`, which is tested to give the same rows and the same errors.

    Raises:
        ConversionError: the record lacks a field or a value cannot be stored; the
            first problem in field order (Id, SystemModstamp, then the mapping's) is
            the one raised.
    """
    try:
        sfid = field_value(record, "Id")
    except KeyError:
        sfid = None
    if not _is_sfid(sfid):
        raise ConversionError("Id", f"not a record Id: {sfid!r}")
    try:
        stamp = field_value(record, "SystemModstamp")
    except KeyError:
        raise ConversionError("SystemModstamp", "missing from the record") from None
    if stamp is None:
        raise ConversionError("SystemModstamp", "expected a datetime, got None")
    row: dict[str, Any] = {
        "sfid": sfid,
        "system_modstamp": convert_value(_STAMP, stamp),
        # Only a real true is a tombstone; queryAll always sends the field.
        "is_deleted": record.get("IsDeleted", False) is True,
        "synced_at": synced_at,
    }
    for spec in mapping.fields:
        try:
            value = field_value(record, spec.crm_name)
        except KeyError:
            raise ConversionError(spec.crm_name, "missing from the record") from None
        row[spec.column] = convert_value(spec, value)
    return row


def value_to_crm(spec: FieldSpec, value: Any) -> Any:
    """Convert a column value back to the CRM's JSON form."""
    if value is None:
        return None
    if spec.type is ColumnType.DATETIME:
        return format_sf_datetime(value)
    if spec.type is ColumnType.DATE:
        return value.isoformat()
    if spec.type is ColumnType.DECIMAL:
        return float(value)
    return value


def row_to_record(
    mapping: Mapping, row: dict[str, Any], columns: Iterable[str] | None = None
) -> dict[str, Any]:
    """The CRM field values for a local row (only ``columns`` when given).

    Columns the mapping does not know are ignored; ``sfid`` and the other system columns
    are never written back.
    """
    wanted = set(columns) if columns is not None else None
    record: dict[str, Any] = {}
    for spec in mapping.fields:
        if spec.column not in row or (wanted is not None and spec.column not in wanted):
            continue
        record[spec.crm_name] = value_to_crm(spec, row[spec.column])
    return record
