"""The portal's write forms: what a Billing Admin typed, checked before anything is staged.

Every check names the field and says what is expected; a form with any problem stages
nothing. Card numbers and CVCs are read here and handed to the payment gateway; they are
never echoed back into a page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sync.changes.rules import ValueProblem, check_email, check_length, normalize_phone
from sync.changes.staging import FieldEdit
from sync.db.models import Account
from sync.payments import CardDetails


@dataclass(frozen=True)
class AccountField:
    """One editable account field: form name, label, local column, how it is checked."""

    name: str
    label: str
    column: str
    kind: str = "text"
    required: bool = False


ACCOUNT_FIELDS: tuple[AccountField, ...] = (
    AccountField("phone", "Phone", "phone", "phone", required=True),
    AccountField("billing_email", "Billing email", "billing_email", "email", required=True),
    AccountField("street", "Street", "billing_street"),
    AccountField("city", "City", "billing_city"),
    AccountField("state", "State", "billing_state"),
    AccountField("postal_code", "Postal code", "billing_postal_code"),
    AccountField("country", "Country", "billing_country"),
)


def _column_length(column: str) -> int | None:
    length = getattr(Account.__table__.c[column].type, "length", None)
    return int(length) if length else None


def _text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def parse_account_form(
    form: Mapping[str, Any], limits: Mapping[str, int]
) -> tuple[list[FieldEdit], dict[str, str]]:
    """The fields that changed, or the problems found (by form name).

    A field is changed when what was submitted differs from the value the page showed
    (the hidden ``seen_<name>``); unchanged fields are neither checked nor staged.

    Args:
        form: the submitted form.
        limits: the CRM's length of each account column (from its describe); the local
            column's length stands in where the CRM's is unknown.
    """
    edits: list[FieldEdit] = []
    problems: dict[str, str] = {}
    for f in ACCOUNT_FIELDS:
        raw = _text(form, f.name)
        seen_raw = form.get(f"seen_{f.name}")
        seen = seen_raw if isinstance(seen_raw, str) else ""
        if raw == seen.strip():
            continue
        try:
            if not raw:
                if f.required:
                    raise ValueProblem(f"{f.label} is required.")
                value: str | None = None
            elif f.kind == "phone":
                value = normalize_phone(raw)
            elif f.kind == "email":
                value = check_email(raw)
            else:
                value = raw
            if value is not None:
                check_length(f.label, value, limits.get(f.column) or _column_length(f.column))
        except ValueProblem as exc:
            problems[f.name] = str(exc)
            continue
        edits.append(FieldEdit(f.column, f.label, seen or None, value))
    return edits, problems


def _int(form: Mapping[str, Any], name: str) -> int | None:
    raw = _text(form, name)
    return int(raw) if raw.isdigit() and len(raw) <= 4 else None


@dataclass(frozen=True)
class CardForm:
    """The Add Card form, minus what must never be shown again (number, CVC)."""

    name_on_card: str
    exp_month: str
    exp_year: str
    is_default: bool
    is_one_time: bool


def parse_card_form(
    form: Mapping[str, Any], today: dt.date
) -> tuple[CardDetails | None, CardForm, dict[str, str]]:
    """Card details for the gateway, the safe part of the form, and problems by field."""
    safe = CardForm(
        name_on_card=_text(form, "name_on_card")[:120],
        exp_month=_text(form, "exp_month")[:2],
        exp_year=_text(form, "exp_year")[:4],
        is_default=form.get("is_default") is not None,
        is_one_time=form.get("is_one_time") is not None,
    )
    problems: dict[str, str] = {}
    if not safe.name_on_card:
        problems["name_on_card"] = "Name on card: enter the name as printed on the card."
    number = _text(form, "card_number")
    if not number:
        problems["card_number"] = "Card number: enter the number printed on the card."
    cvc = _text(form, "cvc")
    if not cvc:
        problems["cvc"] = "CVC: enter the 3 or 4 digit code on the card."
    month = _int(form, "exp_month")
    if month is None or not 1 <= month <= 12:
        problems["exp_month"] = "Expiration month: a number from 1 to 12."
    year = _int(form, "exp_year")
    if year is not None and year < 100:
        year += 2000
    if year is None or not today.year <= year <= today.year + 25:
        problems["exp_year"] = (
            f"Expiration year: a year from {today.year} on, like {today.year + 3}."
        )
    if problems or month is None or year is None:
        return None, safe, problems
    return (
        CardDetails(
            number=number, cvc=cvc, exp_month=month, exp_year=year, name_on_card=safe.name_on_card
        ),
        safe,
        problems,
    )
