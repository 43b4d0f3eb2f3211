"""The portal's reads from the mirrored tables, always scoped to one account.

Every function takes the account the request was authorised for and filters on it, and
on ``is_deleted``, in SQL: a detail lookup with another account's Id finds nothing (the
route answers 404), exactly like an Id that does not exist.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Connection, Select, and_, func, select

from sync.db.models import (
    Account,
    Asset,
    Invoice,
    InvoiceLine,
    Order,
    OrderLine,
    PaymentMethod,
    Product,
)
from sync.portal.filters import Direction, ListQuery, SortKey

UTC = dt.UTC
ACTIVE_ASSET_STATUS = "Activated"
RECURRING = "Recurring"
LICENSE_FAMILY = "License"
DIALER_MINUTES_FAMILY = "Dialer Minutes"

T = TypeVar("T")

_acc = Account.__table__
_asset = Asset.__table__
_prod = Product.__table__
_order = Order.__table__
_oline = OrderLine.__table__
_inv = Invoice.__table__
_iline = InvoiceLine.__table__
_pm = PaymentMethod.__table__


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


def _views(cls: type[T], rows: Sequence[Any]) -> list[T]:
    return [cls(**row._mapping) for row in rows]


def _live(table: Any, account_sfid: str) -> ColumnElement[bool]:
    return and_(table.c.account_sfid == account_sfid, table.c.is_deleted.is_(False))


def _product_join(table: Any) -> Any:
    return table.outerjoin(
        _prod, and_(_prod.c.sfid == table.c.product_sfid, _prod.c.is_deleted.is_(False))
    )


def _product_name() -> ColumnElement[str]:
    return func.coalesce(_prod.c.name, "Unknown product").label("product_name")


def get_account(conn: Connection, account_sfid: str) -> AccountView | None:
    """The account's details, or None when it is deleted or unknown."""
    row = conn.execute(
        select(
            _acc.c.sfid,
            _acc.c.name,
            _acc.c.phone,
            _acc.c.billing_email,
            _acc.c.billing_street,
            _acc.c.billing_city,
            _acc.c.billing_state,
            _acc.c.billing_postal_code,
            _acc.c.billing_country,
        ).where(_acc.c.sfid == account_sfid, _acc.c.is_deleted.is_(False))
    ).first()
    return AccountView(**row._mapping) if row else None


def _asset_select() -> Select[Any]:
    return select(
        _asset.c.sfid,
        _asset.c.product_sfid,
        _product_name(),
        _prod.c.product_code,
        _prod.c.family,
        _asset.c.quantity,
        _asset.c.status,
        _asset.c.price_type,
        _asset.c.net_price,
        _asset.c.start_date,
        _asset.c.end_date,
    ).select_from(_product_join(_asset))


def purchased_products(conn: Connection, account_sfid: str) -> ProductsSummary:
    """The account's active purchased products, license counts and dialer minutes."""
    rows = conn.execute(
        _asset_select()
        .where(_live(_asset, account_sfid), _asset.c.status == ACTIVE_ASSET_STATUS)
        .order_by(_prod.c.family, _prod.c.name, _asset.c.start_date, _asset.c.sfid)
    ).all()
    assets = _views(AssetView, rows)
    licenses: dict[str, Decimal] = {}
    minutes: Decimal | None = None
    recurring = Decimal("0.00")
    for asset in assets:
        quantity = asset.quantity or Decimal(0)
        if asset.family == LICENSE_FAMILY:
            licenses[asset.product_name] = licenses.get(asset.product_name, Decimal(0)) + quantity
        elif asset.family == DIALER_MINUTES_FAMILY:
            minutes = (minutes or Decimal(0)) + quantity
        if asset.price_type == RECURRING and asset.net_price is not None:
            recurring += asset.net_price
    return ProductsSummary(
        assets=assets,
        licenses=[LicenseCount(name, qty) for name, qty in sorted(licenses.items())],
        dialer_minutes=minutes,
        recurring_total=recurring,
    )


def get_asset(conn: Connection, account_sfid: str, asset_sfid: str) -> AssetView | None:
    """One purchased product of the account (any status), or None."""
    row = conn.execute(
        _asset_select().where(_live(_asset, account_sfid), _asset.c.sfid == asset_sfid)
    ).first()
    return AssetView(**row._mapping) if row else None


def recurring_total(conn: Connection, account_sfid: str) -> Decimal:
    """Sum of NetPrice over the account's active Recurring purchased products."""
    # SUM keeps the column's type, so the scaled integers of SQLite come back as exact
    # decimals just like single values do.
    total = conn.execute(
        select(func.sum(_asset.c.net_price)).where(
            _live(_asset, account_sfid),
            _asset.c.status == ACTIVE_ASSET_STATUS,
            _asset.c.price_type == RECURRING,
        )
    ).scalar_one()
    return total if total is not None else Decimal("0.00")


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, UTC)


def _list(
    conn: Connection,
    base: Select[Any],
    conditions: list[ColumnElement[bool]],
    sort_column: Any,
    id_column: Any,
    query: ListQuery,
) -> tuple[list[Any], int, int]:
    total = conn.execute(
        select(func.count()).select_from(base.where(*conditions).subquery())
    ).scalar_one()
    page = query.page
    pages = max(1, -(-total // query.page_size))
    page = min(page, pages)
    if query.direction is Direction.ASC:
        order = [sort_column.asc().nulls_last(), id_column.asc()]
    else:
        order = [sort_column.desc().nulls_last(), id_column.desc()]
    rows = conn.execute(
        base.where(*conditions)
        .order_by(*order)
        .limit(query.page_size)
        .offset((page - 1) * query.page_size)
    ).all()
    return list(rows), total, page


def list_orders(conn: Connection, account_sfid: str, query: ListQuery) -> Page[OrderView]:
    """A page of the account's orders, filtered and sorted as ``query`` says."""
    base = select(
        _order.c.sfid, _order.c.name, _order.c.order_date, _order.c.status, _order.c.amount
    )
    conditions = [_live(_order, account_sfid)]
    if query.date_from is not None:
        conditions.append(_order.c.order_date >= query.date_from)
    if query.date_to is not None:
        conditions.append(_order.c.order_date <= query.date_to)
    if query.amount_min is not None:
        conditions.append(_order.c.amount >= query.amount_min)
    if query.amount_max is not None:
        conditions.append(_order.c.amount <= query.amount_max)
    sort = _order.c.amount if query.sort is SortKey.AMOUNT else _order.c.order_date
    rows, total, page = _list(conn, base, conditions, sort, _order.c.id, query)
    return Page(_views(OrderView, rows), total, page, query.page_size)


def get_order(
    conn: Connection, account_sfid: str, order_sfid: str
) -> tuple[OrderView, list[OrderLineView]] | None:
    """One order of the account with its lines, or None."""
    row = conn.execute(
        select(
            _order.c.sfid, _order.c.name, _order.c.order_date, _order.c.status, _order.c.amount
        ).where(_live(_order, account_sfid), _order.c.sfid == order_sfid)
    ).first()
    if row is None:
        return None
    lines = conn.execute(
        select(
            _oline.c.sfid,
            _product_name(),
            _prod.c.product_code,
            _oline.c.quantity,
            _oline.c.net_price,
            _oline.c.charge_type,
        )
        .select_from(_product_join(_oline))
        .where(_oline.c.order_sfid == order_sfid, _oline.c.is_deleted.is_(False))
        .order_by(_oline.c.id)
    ).all()
    return OrderView(**row._mapping), _views(OrderLineView, lines)


_INVOICE_COLUMNS = (
    _inv.c.sfid,
    _inv.c.name,
    _inv.c.invoice_date,
    _inv.c.due_date,
    _inv.c.total_amount,
    _inv.c.total_due,
    _inv.c.status,
    _inv.c.payment_status,
    _inv.c.has_attachment,
)


def list_invoices(conn: Connection, account_sfid: str, query: ListQuery) -> Page[InvoiceView]:
    """A page of the account's invoices, filtered and sorted as ``query`` says."""
    conditions = [_live(_inv, account_sfid)]
    if query.date_from is not None:
        conditions.append(_inv.c.invoice_date >= _day_start(query.date_from))
    if query.date_to is not None:
        conditions.append(_inv.c.invoice_date < _day_start(query.date_to + dt.timedelta(days=1)))
    if query.amount_min is not None:
        conditions.append(_inv.c.total_amount >= query.amount_min)
    if query.amount_max is not None:
        conditions.append(_inv.c.total_amount <= query.amount_max)
    sort = _inv.c.total_amount if query.sort is SortKey.AMOUNT else _inv.c.invoice_date
    rows, total, page = _list(conn, select(*_INVOICE_COLUMNS), conditions, sort, _inv.c.id, query)
    return Page(_views(InvoiceView, rows), total, page, query.page_size)


def get_invoice(conn: Connection, account_sfid: str, invoice_sfid: str) -> InvoiceDetail | None:
    """One invoice of the account with its lines, or None."""
    row = conn.execute(
        select(*_INVOICE_COLUMNS).where(_live(_inv, account_sfid), _inv.c.sfid == invoice_sfid)
    ).first()
    if row is None:
        return None
    lines = conn.execute(
        select(
            _iline.c.sfid,
            _iline.c.description,
            _iline.c.quantity,
            _iline.c.amount,
            _iline.c.tax_amount,
        )
        .where(_iline.c.invoice_sfid == invoice_sfid, _iline.c.is_deleted.is_(False))
        .order_by(_iline.c.id)
    ).all()
    return InvoiceDetail(InvoiceView(**row._mapping), _views(InvoiceLineView, lines))


_PM_COLUMNS = (
    _pm.c.sfid,
    _pm.c.type,
    _pm.c.card_type,
    _pm.c.card_last_four,
    _pm.c.card_expiration_month,
    _pm.c.card_expiration_year,
    _pm.c.is_default,
    _pm.c.is_one_time,
    _pm.c.status,
)


def payment_methods(conn: Connection, account_sfid: str) -> list[PaymentMethodView]:
    """The account's payment methods, the default first."""
    rows = conn.execute(
        select(*_PM_COLUMNS)
        .where(_live(_pm, account_sfid))
        .order_by(func.coalesce(_pm.c.is_default, False).desc(), _pm.c.id)
    ).all()
    return _views(PaymentMethodView, rows)


def get_payment_method(
    conn: Connection, account_sfid: str, method_sfid: str
) -> PaymentMethodView | None:
    """One payment method of the account, or None."""
    row = conn.execute(
        select(*_PM_COLUMNS).where(_live(_pm, account_sfid), _pm.c.sfid == method_sfid)
    ).first()
    return PaymentMethodView(**row._mapping) if row else None
