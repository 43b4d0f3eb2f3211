"""Prices and the billing summary of purchases: pure, exact decimals, rounded to cents.

One function, :func:`summarize`, turns the pending purchases (each with the unit price
the admin saw) into the Summary the portal shows and the amounts the accepted order
carries: what the admin accepted is what the CRM receives.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sync.changes.rules import ValueProblem

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
RECURRING = "Recurring"
MONTHLY = "Monthly"
YEARLY = "Yearly"
LICENSE_FAMILY = "License"
DIALER_MINUTES_FAMILY = "Dialer Minutes"

#: At most this many licenses of one product in one purchase.
MAX_LICENSES = 1_000
#: At most this many dialer minutes in one purchase.
MAX_MINUTES = 1_000_000

_WHOLE = re.compile(r"^[0-9]{1,3}(?:,[0-9]{3})+$|^[0-9]+$")


def cents(value: Decimal) -> Decimal:
    """``value`` rounded to cents, halves away from zero (as invoices round)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Price:
    """One product's active price list item, as the account's price list has it."""

    item_sfid: str
    product_sfid: str
    product_name: str
    family: str | None
    list_price: Decimal
    price_type: str | None
    frequency: str | None
    charge_type: str | None
    pack_size: int = 1
    price_list: str | None = None

    @property
    def recurring(self) -> bool:
        """True for a price charged every period (monthly or yearly)."""
        return self.price_type == RECURRING


@dataclass(frozen=True)
class Purchase:
    """One pending purchase: a product, a quantity and the unit price seen when staging."""

    product_sfid: str
    product_name: str
    quantity: int
    unit_price: Decimal
    price_type: str | None
    frequency: str | None
    charge_type: str | None
    family: str | None = None

    @property
    def recurring(self) -> bool:
        """True for licenses and other products charged every period."""
        return self.price_type == RECURRING

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Purchase:
        """The purchase a staged change's payload stands for."""
        return cls(
            product_sfid=payload["product"],
            product_name=payload["name"],
            quantity=int(payload["quantity"]),
            unit_price=Decimal(payload["unit_price"]),
            price_type=payload.get("price_type"),
            frequency=payload.get("frequency"),
            charge_type=payload.get("charge_type"),
            family=payload.get("family"),
        )


@dataclass(frozen=True)
class SummaryLine:
    """One line of the Summary: product, quantity, unit price, amount."""

    product_sfid: str
    product_name: str
    quantity: int
    unit_price: Decimal
    amount: Decimal
    charge_type: str | None
    recurring: bool
    monthly: Decimal
    """What the line adds to the monthly recurring total (zero for one-time charges)."""

    @property
    def per(self) -> str:
        """``per month``, ``per year`` or ``one time``, as the Summary says it."""
        if not self.recurring:
            return "one time"
        return "per year" if self.monthly != self.amount else "per month"


@dataclass(frozen=True)
class LicenseChange:
    """A license product's count before and after the purchase."""

    product_name: str
    current: Decimal
    new: Decimal


@dataclass(frozen=True)
class Summary:
    """What the portal shows above the Accept form, and what the order carries."""

    lines: list[SummaryLine]
    purchasing_now: Decimal
    """One-time total due today: minute credit and one-time charges."""
    new_licenses: list[LicenseChange]
    current_recurring: Decimal
    added_recurring: Decimal
    grand_total_recurring: Decimal
    """Today's recurring total plus the new licenses' recurring amounts, per month."""
    order_total: Decimal
    """The order's amount: every line's amount (one-time charges and first periods)."""

    @property
    def empty(self) -> bool:
        """True when nothing is being purchased."""
        return not self.lines


def monthly_amount(amount: Decimal, frequency: str | None) -> Decimal:
    """A recurring amount per month (a yearly price counts one twelfth, in cents)."""
    if frequency == YEARLY:
        return cents(amount / 12)
    return amount


def summarize(
    purchases: Sequence[Purchase],
    *,
    license_counts: Mapping[str, Decimal],
    current_recurring: Decimal,
) -> Summary:
    """The Summary of ``purchases``.

    Args:
        purchases: the pending purchases, in staging order.
        license_counts: active license count per product sfid, before the purchases.
        current_recurring: today's recurring billing total.

    Returns:
        Lines with their amounts (quantity x unit price, in cents), the one-time total
        due now, per license product its count before and after, and the recurring total
        per month after the purchase.
    """
    lines: list[SummaryLine] = []
    added: dict[str, tuple[str, Decimal]] = {}
    for p in purchases:
        amount = cents(Decimal(p.quantity) * p.unit_price)
        monthly = monthly_amount(amount, p.frequency) if p.recurring else ZERO
        lines.append(
            SummaryLine(
                p.product_sfid,
                p.product_name,
                p.quantity,
                p.unit_price,
                amount,
                p.charge_type,
                p.recurring,
                monthly,
            )
        )
        if p.family == LICENSE_FAMILY:
            name, count = added.get(p.product_sfid, (p.product_name, Decimal(0)))
            added[p.product_sfid] = (name, count + p.quantity)
    purchasing_now = sum((line.amount for line in lines if not line.recurring), ZERO)
    added_recurring = sum((line.monthly for line in lines), ZERO)
    current = cents(current_recurring)
    new_licenses = [
        LicenseChange(
            name, license_counts.get(sfid, Decimal(0)), license_counts.get(sfid, Decimal(0)) + count
        )
        for sfid, (name, count) in added.items()
    ]
    return Summary(
        lines=lines,
        purchasing_now=cents(purchasing_now),
        new_licenses=new_licenses,
        current_recurring=current,
        added_recurring=cents(added_recurring),
        grand_total_recurring=cents(current + added_recurring),
        order_total=cents(sum((line.amount for line in lines), ZERO)),
    )


def parse_quantity(raw: str | None, *, label: str, maximum: int, pack_size: int = 1) -> int:
    """A whole, positive quantity as the admin typed it (``1000`` or ``1,000``).

    Raises:
        ValueProblem: empty, not a whole number, zero, above ``maximum``, or not a whole
            number of packs; the message says what is expected.
    """
    text = (raw or "").strip()
    if not text:
        raise ValueProblem(f"Enter the {label.lower()}: a whole number like {pack_size * 5}.")
    # ASCII digits only (str.isdigit() also accepts other scripts' digits)
    if not _WHOLE.match(text):
        raise ValueProblem(
            f"{label} {text!r} is not a whole number: enter digits only, like {pack_size * 5}."
        )
    value = int(text.replace(",", ""))
    if value <= 0:
        raise ValueProblem(f"{label} must be at least {pack_size}.")
    if value > maximum:
        raise ValueProblem(f"{label} can be at most {maximum:,} in one purchase.")
    if pack_size > 1 and value % pack_size:
        raise ValueProblem(
            f"{label} are sold in packs of {pack_size:,}: enter a multiple of {pack_size:,}."
        )
    return value


def money_text(value: Decimal) -> str:
    """``$1,234.50``; unit prices below a cent keep their digits (``$0.012``)."""
    if value == value.quantize(CENT):
        return f"${value.quantize(CENT):,}"
    return f"${value.normalize():,f}"


def purchase_words(minutes: bool, name: str, quantity: int, price: Decimal, per: str) -> str:
    """e.g. ``Add 5 Contact Center Agent License at $95.00 per month each``."""
    if minutes:
        return f"Add {quantity:,} dialer minutes of credit at {money_text(price)} per minute"
    return f"Add {quantity:,} {name} at {money_text(price)} {per} each"


def describe_purchase(kind: str, payload: dict[str, Any]) -> str:
    """The pending-change wording of a purchase payload."""
    per = "per year" if payload.get("frequency") == "Yearly" else "per month"
    if payload.get("price_type") != "Recurring":
        per = "one time"
    return purchase_words(
        kind == "add_minutes",
        payload["name"],
        int(payload["quantity"]),
        Decimal(payload["unit_price"]),
        per,
    )
