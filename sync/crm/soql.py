"""Building SOQL safely, and the CRM's datetime formats.

Values always go through :func:`simple_salesforce.format_soql`, which quotes and escapes
them; identifiers (object and field names), which SOQL cannot quote, are checked against
the API-name grammar before they are spliced in with ``:literal``. Nothing here builds
SOQL with f-strings.

SOQL datetime literals are unquoted UTC instants with second precision
(``2026-11-22T10:00:00Z``); JSON answers carry milliseconds and a numeric offset
(``2026-11-22T10:00:00.000+0000``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from simple_salesforce import format_soql

# API names: letters, digits and single underscores, starting with a letter; custom
# names end in __c / __r etc. and may carry a namespace prefix (Apttus_Config2__Foo__c).
# Relationship paths (Account.Name) are dot-separated API names.
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$")


def identifier(name: str) -> str:
    """``name`` unchanged when it is a valid API name or relationship path.

    Raises:
        ValueError: anything else (spaces, quotes, operators), which could change the
            meaning of the query.
    """
    if not isinstance(name, str) or not _NAME.match(name) or name.endswith("_"):
        raise ValueError(f"not a valid Salesforce API name: {name!r}")
    return name


def soql_datetime(value: datetime, *, round_up: bool = False) -> str:
    """The SOQL literal of an aware datetime, in UTC with second precision.

    Args:
        value: an aware datetime.
        round_up: round a fractional second up instead of down. Lower bounds of a window
            (``>``) round down and upper bounds (``<=``) round up, so that a window never
            loses a record to the missing milliseconds (it may include one twice).

    Raises:
        ValueError: ``value`` is naive; the CRM would read it in the user's time zone.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"SOQL datetimes must be timezone-aware, got {value!r}")
    utc = value.astimezone(UTC)
    whole = utc.replace(microsecond=0)
    if round_up and utc.microsecond:
        whole += timedelta(seconds=1)
    return whole.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_datetime(value: str) -> datetime:
    """An aware UTC datetime from the CRM's JSON format.

    Accepts ``2026-11-22T10:00:00.000+0000`` (what the REST API sends), ``Z`` and
    ``+hh:mm`` offsets, with or without milliseconds.

    Raises:
        ValueError: not a datetime in one of those forms, or without an offset.
    """
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    elif re.search(r"[+-]\d{4}$", text):
        text = text[:-2] + ":" + text[-2:]
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"CRM datetime without an offset: {value!r}")
    return parsed.astimezone(UTC)


def format_datetime(value: datetime) -> str:
    """The CRM's JSON datetime format (``2026-11-22T10:00:00.000+0000``) of an aware value.

    Raises:
        ValueError: ``value`` is naive.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"CRM datetimes must be timezone-aware, got {value!r}")
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+0000"


def select(
    sobject: str,
    fields: Sequence[str],
    *,
    where: str | None = None,
    order_by: Sequence[str] = (),
    limit: int | None = None,
) -> str:
    """``SELECT fields FROM sobject [WHERE where] [ORDER BY ...] [LIMIT n]``.

    Args:
        sobject: the object's API name.
        fields: field API names, at least one.
        where: a condition already built with :func:`format_soql` (or helpers here).
        order_by: field names, each optionally followed by ``ASC``/``DESC``.
        limit: a positive row limit.

    Raises:
        ValueError: an invalid name, no fields, or a non-positive limit.
    """
    if not fields:
        raise ValueError("a SELECT needs at least one field")
    query = format_soql(
        "SELECT {fields:literal} FROM {sobject:literal}",
        fields=", ".join(identifier(f) for f in fields),
        sobject=identifier(sobject),
    )
    if where:
        query += format_soql(" WHERE {where:literal}", where=where)
    if order_by:
        query += format_soql(
            " ORDER BY {order:literal}", order=", ".join(_order_term(t) for t in order_by)
        )
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"LIMIT must be a positive integer, got {limit!r}")
        query += format_soql(" LIMIT {limit}", limit=limit)
    return query


def _order_term(term: str) -> str:
    parts = term.split()
    if len(parts) == 2 and parts[1].upper() in ("ASC", "DESC"):
        return f"{identifier(parts[0])} {parts[1].upper()}"
    if len(parts) != 1:
        raise ValueError(f"not an ORDER BY term: {term!r}")
    return identifier(parts[0])


def count(sobject: str, *, where: str | None = None) -> str:
    """``SELECT COUNT() FROM sobject [WHERE where]`` (answered by ``totalSize``)."""
    query = format_soql("SELECT COUNT() FROM {sobject:literal}", sobject=identifier(sobject))
    if where:
        query += format_soql(" WHERE {where:literal}", where=where)
    return query


def modstamp_window(
    since: datetime | None,
    until: datetime,
    *,
    field: str = "SystemModstamp",
) -> str:
    """The condition ``field > since AND field <= until`` (no lower bound without ``since``).

    ``since`` rounds down and ``until`` rounds up to whole seconds (see
    :func:`soql_datetime`), so the window is never narrower than asked.
    """
    upper = format_soql(
        "{field:literal} <= {until:literal}",
        field=identifier(field),
        until=soql_datetime(until, round_up=True),
    )
    if since is None:
        return upper
    lower = format_soql(
        "{field:literal} > {since:literal}", field=identifier(field), since=soql_datetime(since)
    )
    return format_soql("{lower:literal} AND {upper:literal}", lower=lower, upper=upper)


def id_in(ids: Iterable[str], *, field: str = "Id") -> str:
    """The condition ``field IN ('id1','id2',...)``, values quoted by format_soql.

    Raises:
        ValueError: no ids (``IN ()`` is not valid SOQL).
    """
    values = list(ids)
    if not values:
        raise ValueError("IN needs at least one value")
    return format_soql("{field:literal} IN {values}", field=identifier(field), values=values)


def and_(*conditions: str | None) -> str | None:
    """The conjunction of the non-empty conditions, each parenthesised; None if none."""
    parts = [c for c in conditions if c]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return " AND ".join(format_soql("({c:literal})", c=c) for c in parts)
