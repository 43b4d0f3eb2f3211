"""What the portal's pages show: plain, immutable views of mirrored rows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list."""

    items: list[T]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        """How many pages the list has (at least 1)."""
        return max(1, -(-self.total // self.page_size))

    @property
    def has_previous(self) -> bool:
        """True when there is a page before this one."""
        return self.page > 1

    @property
    def has_next(self) -> bool:
        """True when there is a page after this one."""
        return self.page < self.pages

    @property
    def first_index(self) -> int:
        """1-based position of the first item on this page (0 when empty)."""
        return (self.page - 1) * self.page_size + 1 if self.items else 0

    @property
    def last_index(self) -> int:
        """1-based position of the last item on this page (0 when empty)."""
        return (self.page - 1) * self.page_size + len(self.items)


@dataclass(frozen=True)
class AccountView:
    """Account details."""

    sfid: str
    name: str | None
    phone: str | None
    billing_email: str | None
    billing_street: str | None
    billing_city: str | None
    billing_state: str | None
    billing_postal_code: str | None
    billing_country: str | None

    @property
    def address_lines(self) -> list[str]:
        """The billing address as display lines, blank parts left out."""
        city_line = " ".join(
            p
            for p in (
                ", ".join(p for p in (self.billing_city, self.billing_state) if p),
                self.billing_postal_code,
            )
            if p
        )
        lines = [*(self.billing_street or "").splitlines(), city_line, self.billing_country or ""]
        return [line.strip() for line in lines if line and line.strip()]


@dataclass(frozen=True)
class AssetView:
    """A purchased product."""

    sfid: str
    product_sfid: str | None
    product_name: str
    product_code: str | None
    family: str | None
    quantity: Decimal | None
    status: str | None
    price_type: str | None
    net_price: Decimal | None
    start_date: dt.date | None
    end_date: dt.date | None


@dataclass(frozen=True)
class LicenseCount:
    """How many licenses of one product the account holds."""

    product_name: str
    quantity: Decimal


@dataclass(frozen=True)
class ProductsSummary:
    """The Purchased Products tab."""

    assets: list[AssetView]
    licenses: list[LicenseCount]
    dialer_minutes: Decimal | None
    recurring_total: Decimal


@dataclass(frozen=True)
class OrderView:
    """An order as listed."""

    sfid: str
    name: str | None
    order_date: dt.date | None
    status: str | None
    amount: Decimal | None


@dataclass(frozen=True)
class OrderLineView:
    """One line of an order."""

    sfid: str
    product_name: str
    product_code: str | None
    quantity: Decimal | None
    net_price: Decimal | None
    charge_type: str | None


@dataclass(frozen=True)
class InvoiceView:
    """An invoice as listed and shown."""

    sfid: str
    name: str | None
    invoice_date: dt.datetime | None
    due_date: dt.date | None
    total_amount: Decimal | None
    total_due: Decimal | None
    status: str | None
    payment_status: str | None
    has_attachment: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "has_attachment", bool(self.has_attachment))

    @property
    def number(self) -> str:
        """The invoice number people quote (its Name, or its Id when unnamed)."""
        return self.name or self.sfid


@dataclass(frozen=True)
class InvoiceLineView:
    """One line of an invoice."""

    sfid: str
    description: str | None
    quantity: Decimal | None
    amount: Decimal | None
    tax_amount: Decimal | None


@dataclass(frozen=True)
class InvoiceDetail:
    """An invoice with its lines and their totals."""

    invoice: InvoiceView
    lines: list[InvoiceLineView]

    @property
    def subtotal(self) -> Decimal:
        """Sum of the lines' amounts."""
        return sum((line.amount or Decimal(0) for line in self.lines), Decimal("0.00"))

    @property
    def tax_total(self) -> Decimal:
        """Sum of the lines' tax."""
        return sum((line.tax_amount or Decimal(0) for line in self.lines), Decimal("0.00"))


@dataclass(frozen=True)
class PaymentMethodView:
    """A payment method, masked: type, card brand and last four only."""

    sfid: str
    type: str | None
    card_type: str | None
    card_last_four: str | None
    card_expiration_month: int | None
    card_expiration_year: int | None
    is_default: bool
    is_one_time: bool
    status: str | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_default", bool(self.is_default))
        object.__setattr__(self, "is_one_time", bool(self.is_one_time))

    @property
    def masked(self) -> str:
        """e.g. ``Visa ending in 4242``; never more than the last four digits."""
        last_four = self.card_last_four or ""
        if not (len(last_four) == 4 and last_four.isdigit()):
            last_four = ""
        label = self.card_type or self.type or "Payment method"
        return f"{label} ending in {last_four}" if last_four else label

    @property
    def expiry(self) -> str | None:
        """``MM/YYYY`` when known."""
        if self.card_expiration_month and self.card_expiration_year:
            return f"{self.card_expiration_month:02d}/{self.card_expiration_year}"
        return None
