"""Bulk CSV rows -> the records the REST API returns, for the mapping's one converter.

Bulk API 2.0 writes every value as text: ``true``/``false``, numbers as ``23.0``,
datetimes as ``2026-11-22T10:00:00.000Z``, and nothing at all for null. Here each row
becomes the dict a REST page would hold (booleans as bool, decimals as float, datetimes
in the REST form), so :class:`~sync.pull.rows.RowBuilder` converts and checks
it exactly as it does REST records.

An empty value is null for every type. Bulk cannot tell an empty text from a null one
(neither can Salesforce, which stores no empty strings), so nothing is lost for fields
the CRM itself fills; see the README for the text fields where it matters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sync.mapping.spec import ColumnType, Mapping


def _boolean(value: str) -> Any:
    lowered = value.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    return value  # left for the converter to refuse, naming the field


def _number(value: str) -> Any:
    try:
        return float(value)
    except ValueError:
        return value


def _datetime(value: str) -> str:
    # 2026-11-22T10:00:00.000Z is the REST API's 2026-11-22T10:00:00.000+0000
    if len(value) == 24 and value[-1] == "Z":
        return value[:-1] + "+0000"
    return value


_ADAPT: dict[ColumnType, Callable[[str], Any]] = {
    ColumnType.BOOLEAN: _boolean,
    ColumnType.DECIMAL: _number,
    ColumnType.DATETIME: _datetime,
}


def record_maker(mapping: Mapping, header: Sequence[str]) -> Callable[[list[str]], dict[str, Any]]:
    """A function turning one CSV row (in ``header`` order) into a REST-shaped record.

    Header names are matched to the mapping's fields ignoring case and keyed by the
    mapping's spelling; columns the mapping does not know keep the CRM's name. The
    function is generated for the header (one expression per column, no call for the
    common values); a row it cannot adapt is adapted value by value, leaving any
    malformed value for the converter to refuse by name.
    """
    spelled = {name.lower(): name for name in ("Id", "IsDeleted", "SystemModstamp")}
    kinds: dict[str, ColumnType] = {
        "isdeleted": ColumnType.BOOLEAN,
        "systemmodstamp": ColumnType.DATETIME,
    }
    for spec in mapping.fields:
        spelled[spec.crm_name.lower()] = spec.crm_name
        kinds[spec.crm_name.lower()] = spec.type
    names = tuple(spelled.get(h.lower(), h) for h in header)
    adapters = tuple(_ADAPT.get(kinds.get(h.lower(), ColumnType.TEXT)) for h in header)

    def slow(row: list[str]) -> dict[str, Any]:
        return {
            name: None if value == "" else (adapt(value) if adapt else value)
            for name, value, adapt in zip(names, row, adapters, strict=True)
        }

    items = []
    for i, (name, adapt) in enumerate(zip(names, adapters, strict=True)):
        v = f"row[{i}]"
        if adapt is _number:
            expr = f"float({v}) if {v} else None"
        elif adapt is _boolean:
            expr = f"True if {v} == 'true' else False if {v} == 'false' else _bool({v})"
        elif adapt is _datetime:
            expr = f"{v}[:-1] + '+0000' if len({v}) == 24 and {v}[-1] == 'Z' else ({v} or None)"
        else:
            expr = f"{v} or None"
        items.append(f"{name!r}: {expr}")
    source = "\n".join(
        [
            "def make(row):",
            "    try:",
            f"        return {{{', '.join(items)}}}",
            "    except (ValueError, IndexError):",
            "        return _slow(row)",
        ]
    )
    namespace: dict[str, Any] = {}
    helpers = {"_slow": slow, "_bool": lambda value: value or None}
    exec(compile(source, "<bulk record maker>", "exec"), helpers, namespace)  # noqa: S102
    make: Callable[[list[str]], dict[str, Any]] = namespace["make"]
    return make
