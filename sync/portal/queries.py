"""The portal's reads from the mirrored tables, always scoped to one account.

Every function takes the account the request was authorised for and filters on it, and
on ``is_deleted``, in SQL: a detail lookup with another account's Id finds nothing (the
route answers 404), exactly like an Id that does not exist.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Connection, Select, and_, func, select

from sync.db.models import (
    Account,
    Asset,
    ChangeItem,
    ChangeSet,
    Invoice,
    InvoiceLine,
    Order,
    OrderLine,
    PaymentMethod,
    Product,
)
from sync.db.states import ChangeState, Operation
from sync.portal.filters import Direction, ListQuery, SortKey
from sync.portal.views import (
    AccountView,
    AssetView,
    InvoiceDetail,
    InvoiceLineView,
    InvoiceView,
    LicenseCount,
    OrderLineView,
    OrderView,
    Page,
    PaymentMethodView,
    ProductsSummary,
)

UTC = dt.UTC
ACTIVE_ASSET_STATUS = "Activated"
RECURRING = "Recurring"
LICENSE_FAMILY = "License"
DIALER_MINUTES_FAMILY = "Dialer Minutes"
CENT = Decimal("0.01")

T = TypeVar("T")

_acc = Account.__table__
_asset = Asset.__table__
_prod = Product.__table__
_order = Order.__table__
_oline = OrderLine.__table__
_inv = Invoice.__table__
_iline = InvoiceLine.__table__
_pm = PaymentMethod.__table__


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
    # counted on the table itself: a count over the page's select would make the
    # database carry every selected column through the subquery first
    table = base.get_final_froms()[0]
    total = conn.execute(select(func.count()).select_from(table).where(*conditions)).scalar_one()
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


@dataclass(frozen=True)
class PlacedOrder:
    """An order accepted in the portal that the mirror does not hold yet."""

    key: str
    name: str | None
    order_date: dt.date | None
    amount: Decimal | None
    status: str


def placed_orders(
    conn: Connection, account_sfid: str, order_object: str, fields: dict[str, str]
) -> list[PlacedOrder]:
    """Orders of the account's accepted (or just applied) change sets, not yet mirrored.

    ``fields`` names the CRM fields of the order record by column (name, order_date,
    status, amount). Once the pull brings the CRM's order (same Billing_Sync_Key__c) it
    is listed from the mirror only.
    """
    sets = ChangeSet.__table__
    items = ChangeItem.__table__
    mirrored = select(_order.c.sync_key).where(
        _order.c.sync_key == items.c.external_key, _order.c.is_deleted.is_(False)
    )
    rows = conn.execute(
        select(items.c.external_key, items.c.new_value, sets.c.accepted_at)
        .select_from(items.join(sets, sets.c.id == items.c.change_set_id))
        .where(
            sets.c.account_sfid == account_sfid,
            sets.c.state.in_(
                [ChangeState.ACCEPTED.value, ChangeState.SENDING.value, ChangeState.APPLIED.value]
            ),
            items.c.operation == Operation.CREATE.value,
            items.c.sobject == order_object,
            ~mirrored.exists(),
        )
        .order_by(sets.c.accepted_at.desc(), items.c.id.desc())
    ).all()
    out = []
    for r in rows:
        record = {k.lower(): v for k, v in (json.loads(r.new_value or "{}") or {}).items()}
        amount = record.get(fields.get("amount", "").lower())
        day = record.get(fields.get("order_date", "").lower())
        out.append(
            PlacedOrder(
                key=r.external_key,
                name=record.get(fields.get("name", "").lower()),
                order_date=dt.date.fromisoformat(day) if day else r.accepted_at.date(),
                amount=Decimal(str(amount)).quantize(Decimal("0.01"))
                if amount is not None
                else None,
                status=record.get(fields.get("status", "").lower()) or "Pending",
            )
        )
    return out
