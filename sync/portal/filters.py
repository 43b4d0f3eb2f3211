"""List filters of the portal: parsed from the query string, validated, never trusted.

Pure functions: a query string goes in, a :class:`ListQuery` (or a list of messages for
the person) comes out. The database layer only ever sees dates, decimals and one of the
fixed sort keys, so nothing typed into a filter reaches SQL as text.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from urllib.parse import urlencode

PAGE_SIZE = 25
MAX_PAGE = 100_000
_MAX_AMOUNT = Decimal("1e15")


class SortKey(StrEnum):
    """What a list can be sorted by."""

    DATE = "date"
    AMOUNT = "amount"


class Direction(StrEnum):
    """Sort direction."""

    ASC = "asc"
    DESC = "desc"


@dataclass(frozen=True)
class ListQuery:
    """A validated list request: date range (inclusive), amount range, sort and page."""

    date_from: dt.date | None = None
    date_to: dt.date | None = None
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None
    sort: SortKey = SortKey.DATE
    direction: Direction = Direction.DESC
    page: int = 1
    page_size: int = PAGE_SIZE
    # The raw values as typed, to refill the form (escaped by the template).
    raw: tuple[tuple[str, str], ...] = ()

    @property
    def offset(self) -> int:
        """Rows to skip for this page."""
        return (self.page - 1) * self.page_size

    @property
    def is_filtered(self) -> bool:
        """True when any filter narrows the list."""
        return any(
            v is not None for v in (self.date_from, self.date_to, self.amount_min, self.amount_max)
        )

    def value(self, name: str) -> str:
        """The raw value the person typed for ``name`` ("" when none)."""
        return dict(self.raw).get(name, "")

    def query_string(self, **changes: str | int | None) -> str:
        """This query's parameters as a query string, with ``changes`` applied."""
        params: dict[str, str] = {
            k: v for k, v in self.raw if k in ("on", "from", "to", "min", "max") and v
        }
        params["sort"] = self.sort.value
        params["dir"] = self.direction.value
        params["page"] = str(self.page)
        for key, new in changes.items():
            if new is None or new == "":
                params.pop(key, None)
            else:
                params[key] = str(new)
        if params.get("page") == "1":
            del params["page"]
        return urlencode(params)

    def with_page(self, page: int) -> ListQuery:
        """The same query on another page."""
        return replace(self, page=page)


def _date(value: str, label: str, errors: list[str]) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        errors.append(f"{label}: enter a date as YYYY-MM-DD.")
        return None


def _amount(value: str, label: str, errors: list[str]) -> Decimal | None:
    if not value:
        return None
    try:
        amount = Decimal(value.replace(",", "").removeprefix("$"))
    except InvalidOperation:
        errors.append(f"{label}: enter an amount such as 1250.00.")
        return None
    if not amount.is_finite() or abs(amount) >= _MAX_AMOUNT:
        errors.append(f"{label}: enter an amount such as 1250.00.")
        return None
    return amount


def parse_list_query(
    params: Mapping[str, str], *, amounts: bool = True
) -> tuple[ListQuery, list[str]]:
    """Parse list parameters.

    Recognised parameters: ``on`` (one date) or ``from``/``to`` (inclusive range),
    ``min``/``max`` (amounts, when ``amounts``), ``sort`` (``date``/``amount``), ``dir``
    (``asc``/``desc``) and ``page``.

    Returns:
        The query (invalid parts dropped) and the messages to show for them.
    """
    errors: list[str] = []
    raw: list[tuple[str, str]] = []
    names = ("on", "from", "to", "min", "max") if amounts else ("on", "from", "to")
    for name in (*names, "sort", "dir", "page"):
        value = (params.get(name) or "").strip()[:64]
        if value:
            raw.append((name, value))
    got = dict(raw)

    date_from: dt.date | None
    date_to: dt.date | None
    on = _date(got.get("on", ""), "Date", errors)
    if on is not None:
        date_from = date_to = on
    else:
        date_from = _date(got.get("from", ""), "From", errors)
        date_to = _date(got.get("to", ""), "To", errors)
    if date_from and date_to and date_from > date_to:
        errors.append("From must be on or before To.")
        date_from = date_to = None

    amount_min = _amount(got.get("min", ""), "Minimum amount", errors) if amounts else None
    amount_max = _amount(got.get("max", ""), "Maximum amount", errors) if amounts else None
    if amount_min is not None and amount_max is not None and amount_min > amount_max:
        errors.append("Minimum amount must not be above the maximum amount.")
        amount_min = amount_max = None

    try:
        sort = SortKey(got.get("sort", SortKey.DATE.value))
    except ValueError:
        errors.append("Sort by date or amount.")
        sort = SortKey.DATE
    try:
        direction = Direction(got.get("dir", Direction.DESC.value))
    except ValueError:
        errors.append("Sort ascending or descending.")
        direction = Direction.DESC
    page_text = got.get("page", "1")
    page = 1
    if page_text.isdecimal() and 0 < int(page_text) <= MAX_PAGE:
        page = int(page_text)
    else:
        errors.append("Page must be a page number.")

    query = ListQuery(
        date_from=date_from,
        date_to=date_to,
        amount_min=amount_min,
        amount_max=amount_max,
        sort=sort,
        direction=direction,
        page=page,
        raw=tuple(raw),
    )
    return query, errors
