"""How the portal, the ops pages and the PDFs write money, quantities and dates."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

CURRENCY_SYMBOL = "$"


def money(value: Decimal | None) -> str:
    """``$1,234.50``; ``-$12.00`` for credits; an en dash when unknown."""
    if value is None:
        return "\u2013"
    sign = "-" if value < 0 else ""
    return f"{sign}{CURRENCY_SYMBOL}{abs(value):,.2f}"


def quantity(value: Decimal | None) -> str:
    """``5,000`` or ``1.5``: no trailing zeros from the 4-decimal storage."""
    if value is None:
        return "\u2013"
    if value == value.to_integral_value():
        return f"{value:,.0f}"
    return f"{value.normalize():,f}"


def day(value: dt.date | dt.datetime | None) -> str:
    """``Mar 5, 2026`` (datetimes are shown as their UTC date)."""
    if value is None:
        return "\u2013"
    if isinstance(value, dt.datetime):
        value = value.astimezone(dt.UTC).date()
    return f"{value:%b} {value.day}, {value.year}"


def iso_day(value: dt.date | dt.datetime | None) -> str:
    """``2026-03-05``, for machine-readable ``<time datetime>`` attributes."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        value = value.astimezone(dt.UTC).date()
    return value.isoformat()


def utc_time(value: dt.datetime | None) -> str:
    """``2026-03-05 14:02:09 UTC``; a hyphen when unknown."""
    if value is None:
        return "-"
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def status_class(status: str | None) -> str:
    """A CSS modifier for a status badge: one of a fixed set, never the raw value."""
    known = {
        "activated": "ok",
        "active": "ok",
        "paid": "ok",
        "approved": "ok",
        "pending": "warn",
        "pending activation": "warn",
        "pending approval": "warn",
        "partially paid": "warn",
        "draft": "muted",
        "historical": "muted",
        "superseded": "muted",
        "inactive": "muted",
        "not paid": "warn",
        "overdue": "bad",
        "cancelled": "bad",
        "expired": "bad",
    }
    return known.get((status or "").strip().lower(), "muted")
