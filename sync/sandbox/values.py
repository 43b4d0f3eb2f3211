"""Field values of the sandbox CRM: JSON (REST) <-> SQLite storage.

Storage encodings (one SQLite column per field):

- string, textarea, email, phone, picklist, id, reference: TEXT
- boolean: INTEGER 0/1 (never NULL: Salesforce checkboxes are false when unset)
- double, currency, percent: REAL; int: INTEGER
- date: TEXT ``YYYY-MM-DD``
- datetime: TEXT ``YYYY-MM-DDTHH:MM:SS.mmm+0000``, always UTC, so text order is time order

Writes go through :func:`sqlite_value_from_json`, which type-checks like Salesforce and
raises :class:`FieldValueError` with the status code Salesforce would answer. Reads go
through :func:`row_converter` (fast, one converter per selected field) or
:func:`soql_value_from_sqlite` (one value).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from sync.sandbox.schema import FieldDef

TEXT_TYPES = frozenset({"string", "textarea", "email", "phone", "picklist"})
ID_TYPES = frozenset({"id", "reference"})
REAL_TYPES = frozenset({"double", "currency", "percent"})
NUMBER_TYPES = REAL_TYPES | {"int"}

# Salesforce numbers have at most 18 digits (which also fits SQLite's 64-bit integers).
_MAX_DIGITS = 18

# Salesforce stores dates between these bounds only.
MIN_YEAR = 1700
MAX_YEAR = 4000

_ID_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_RE = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-5]{3})?")
_DATE_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_DATETIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
    r"(Z|z|[+-]\d{2}:?\d{2})?)?"
)
# Deliberately loose, as Salesforce's own check is: something@something.tld.
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class FieldValueError(ValueError):
    """A value that a field cannot hold.

    Attributes:
        field_name: Canonical name of the field.
        message: Salesforce-like message (starts with the field's label).
        status_code: Salesforce error code, e.g. ``JSON_PARSER_ERROR``, ``STRING_TOO_LONG``.
    """

    def __init__(
        self,
        field_name: str,
        message: str,
        status_code: str = "INVALID_TYPE_ON_FIELD_IN_RECORD",
    ) -> None:
        super().__init__(message)
        self.field_name = field_name
        self.message = message
        self.status_code = status_code


# ---------------------------------------------------------------------------------------
# Ids


def id_suffix(id15: str) -> str:
    """The 3-character case-checksum suffix of a 15-character Salesforce Id."""
    suffix = []
    for chunk in range(3):
        flags = 0
        for bit, char in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= char <= "Z":
                flags |= 1 << bit
        suffix.append(_ID_SUFFIX_ALPHABET[flags])
    return "".join(suffix)


def normalize_id(value: str) -> str | None:
    """The canonical 18-character form of a 15- or 18-character Id, or None if invalid.

    A 15-character Id gets its checksum suffix. An 18-character Id is case-insensitive
    (that is what the suffix is for), so its first 15 characters get the letter case the
    suffix encodes.
    """
    if not _ID_RE.fullmatch(value):
        return None
    if len(value) == 15:
        return value + id_suffix(value)
    suffix = value[15:].upper()
    chars = list(value[:15])
    for chunk, flag_char in enumerate(suffix):
        flags = _ID_SUFFIX_ALPHABET.index(flag_char)
        for bit in range(5):
            pos = chunk * 5 + bit
            chars[pos] = chars[pos].upper() if flags & (1 << bit) else chars[pos].lower()
    head = "".join(chars)
    if id_suffix(head) != suffix:
        # A suffix bit set for a digit: no Id has that suffix.
        return None
    return head + suffix


# ---------------------------------------------------------------------------------------
# Dates and datetimes


def format_datetime(value: datetime) -> str:
    """``value`` in the storage and JSON format ``2026-11-22T10:00:00.000+0000`` (UTC)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: give a timezone-aware datetime")
    utc = value.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}+0000"


def parse_stored_datetime(value: str) -> datetime:
    """The aware UTC datetime of a stored ``YYYY-MM-DDTHH:MM:SS.mmm+0000`` value."""
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")


def _offset(text: str | None) -> timezone:
    if text is None or text in ("Z", "z"):
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:])
    if hours > 23 or minutes > 59:
        raise ValueError(f"bad UTC offset {text!r}")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def parse_datetime(text: str) -> datetime:
    """Parse the datetime forms Salesforce accepts, returning an aware UTC datetime.

    Accepts ``2026-11-22T10:00:00.000+0000``, ``...Z``, ``...+hh:mm``, no or any number
    of fractional digits (kept to the millisecond), no seconds, no offset (UTC), and a
    bare date (midnight UTC).

    Raises:
        ValueError: Not a datetime, or out of Salesforce's range (years 1700 to 4000).
    """
    match = _DATETIME_RE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"not a datetime: {text!r}")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micros = int((fraction or "0")[:3].ljust(3, "0")) * 1000
    try:
        parsed = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            micros,
            tzinfo=_offset(offset),
        ).astimezone(UTC)
    except OverflowError:  # the offset moves it past year 1 or 9999
        raise ValueError(f"year out of range: {text!r}") from None
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise ValueError(f"year out of range: {text!r}")
    return parsed


def parse_date(text: str) -> date:
    """Parse ``YYYY-MM-DD`` within Salesforce's range.

    Raises:
        ValueError: Not a date, or out of range.
    """
    match = _DATE_RE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"not a date: {text!r}")
    parsed = date(int(match[1]), int(match[2]), int(match[3]))
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise ValueError(f"year out of range: {text!r}")
    return parsed


# ---------------------------------------------------------------------------------------
# JSON -> storage


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "VALUE_TRUE" if value else "VALUE_FALSE"
    if isinstance(value, int):
        return "VALUE_NUMBER_INT"
    if isinstance(value, float):
        return "VALUE_NUMBER_FLOAT"
    if isinstance(value, str):
        return "VALUE_STRING"
    if isinstance(value, dict):
        return "START_OBJECT"
    if isinstance(value, list):
        return "START_ARRAY"
    return type(value).__name__


def _parser_error(field: FieldDef, java_type: str, value: Any) -> FieldValueError:
    # Salesforce's JSON deserializer (Jackson) words it this way.
    return FieldValueError(
        field.name,
        f"Cannot deserialize instance of {java_type} from {_json_kind(value)} value "
        f"{value} or request may be missing a required field",
        "JSON_PARSER_ERROR",
    )


def _text(field: FieldDef, value: Any) -> str | None:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float) and not (
        isinstance(value, float) and not math.isfinite(value)
    ):
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        raise _parser_error(field, "string", value)
    if text == "":
        # Salesforce stores an empty text value as null.
        return None
    if field.length and len(text) > field.length:
        raise FieldValueError(
            field.name,
            f"{field.label}: data value too large: {text[:255]} (max length={field.length})",
            "STRING_TOO_LONG",
        )
    if field.type == "email" and not _EMAIL_RE.fullmatch(text):
        raise FieldValueError(
            field.name, f"{field.label}: invalid email address: {text}", "INVALID_EMAIL_ADDRESS"
        )
    if field.type == "picklist" and field.picklist_values:
        if text in field.picklist_values:
            return text
        for allowed in field.picklist_values:
            if allowed.lower() == text.lower():
                return allowed
        raise FieldValueError(
            field.name,
            f"{field.label}: bad value for restricted picklist field: {text}",
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        )
    return text


def _id(field: FieldDef, value: Any) -> str | None:
    if not isinstance(value, str):
        raise _parser_error(field, "id", value)
    if value == "":
        return None
    normalized = normalize_id(value)
    if normalized is None:
        raise FieldValueError(
            field.name, f"{field.label}: id value of incorrect type: {value}", "MALFORMED_ID"
        )
    return normalized


def _boolean(field: FieldDef, value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return int(value.lower() == "true")
    raise _parser_error(field, "boolean", value)


def _number(field: FieldDef, value: Any) -> int | float:
    java_type = "int" if field.type == "int" else "double"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _parser_error(field, java_type, value)
    number: float
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise _parser_error(field, java_type, value) from None
    if not math.isfinite(number):
        raise _parser_error(field, java_type, value)
    result: int | float
    if field.type == "int" and isinstance(value, int):
        result = value  # exact: a float would round integers beyond 2**53
    elif field.type == "int":
        if number != int(number):
            raise _parser_error(field, java_type, value)
        result = int(number)
    else:
        result = round(number, field.scale) if field.scale else number
    digits = field.precision - field.scale if field.precision else _MAX_DIGITS
    if abs(result) >= 10**digits:
        raise FieldValueError(
            field.name,
            f"{field.label}: value outside of valid range on numeric field: {value}",
            "NUMBER_OUTSIDE_VALID_RANGE",
        )
    return result


def _date(field: FieldDef, value: Any) -> str:
    if not isinstance(value, str):
        raise _parser_error(field, "date", value)
    try:
        return parse_date(value).isoformat()
    except ValueError:
        raise _parser_error(field, "date", value) from None


def _datetime(field: FieldDef, value: Any) -> str:
    if not isinstance(value, str):
        raise _parser_error(field, "datetime", value)
    try:
        return format_datetime(parse_datetime(value))
    except ValueError:
        raise _parser_error(field, "datetime", value) from None


_FROM_JSON: dict[str, Callable[[FieldDef, Any], Any]] = {
    **dict.fromkeys(TEXT_TYPES, _text),
    **dict.fromkeys(ID_TYPES, _id),
    "boolean": _boolean,
    **dict.fromkeys(NUMBER_TYPES, _number),
    "date": _date,
    "datetime": _datetime,
}


def sqlite_value_from_json(field: FieldDef, value: Any) -> Any:
    """The stored form of a JSON ``value`` written to ``field``.

    Args:
        field: The target field.
        value: The decoded JSON value (None for null).

    Returns:
        str, int, float or None, in the storage encoding of the field's type. Null or an
        empty string stores NULL, except for booleans, which store 0.

    Raises:
        FieldValueError: The value does not fit the field (wrong JSON type, bad
            date/datetime/number, string too long, unknown restricted picklist value,
            malformed Id, bad email address, number out of range).
    """
    if value is None and field.type != "boolean":
        return None
    return _FROM_JSON[field.type](field, value)


# ---------------------------------------------------------------------------------------
# storage -> JSON


def _bool_from_sqlite(value: Any) -> bool:
    return bool(value)


def _float_from_sqlite(value: Any) -> Any:
    return None if value is None else float(value)


def _int_from_sqlite(value: Any) -> Any:
    return None if value is None else int(value)


def _converter(field: FieldDef) -> Callable[[Any], Any] | None:
    """The per-value converter of ``field``, or None when the stored value is the JSON."""
    if field.type == "boolean":
        return _bool_from_sqlite
    if field.type in REAL_TYPES:
        return _float_from_sqlite
    if field.type == "int":
        return _int_from_sqlite
    return None


def soql_value_from_sqlite(field: FieldDef, value: Any) -> Any:
    """The JSON value of a stored ``value`` of ``field`` (bool, float, int, str or None)."""
    convert = _converter(field)
    return value if convert is None else convert(value)


def row_converter(fields: Sequence[FieldDef]) -> Callable[[Sequence[Any]], dict[str, Any]]:
    """A function turning a SQLite row of ``fields`` (in order) into a record dict.

    The record has the canonical field names as keys, JSON values, and no
    ``attributes``. Text, date and datetime values pass through unchanged; booleans
    become bool, numbers float (double/currency/percent) or int.
    """
    names = tuple(f.name for f in fields)
    converted = tuple(
        (i, name, convert)
        for i, (name, convert) in enumerate(zip(names, map(_converter, fields), strict=True))
        if convert is not None
    )
    if not converted:

        def plain(row: Sequence[Any]) -> dict[str, Any]:
            return dict(zip(names, row, strict=False))

        return plain

    def convert_row(row: Sequence[Any]) -> dict[str, Any]:
        record = dict(zip(names, row, strict=False))
        for i, name, convert in converted:
            record[name] = convert(row[i])
        return record

    return convert_row
