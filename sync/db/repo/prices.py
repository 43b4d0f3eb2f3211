"""SQL that purchases read from the mirror: price lists, active prices, owned assets."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Connection, Table, and_, func, select

from sync.db.models import Account, Asset, PriceList, PriceListItem, Product

_acc: Table = Account.__table__  # type: ignore[assignment]
_asset: Table = Asset.__table__  # type: ignore[assignment]
_prod: Table = Product.__table__  # type: ignore[assignment]
_pl: Table = PriceList.__table__  # type: ignore[assignment]
_pli: Table = PriceListItem.__table__  # type: ignore[assignment]


def account_price_list(conn: Connection, account_sfid: str) -> tuple[str | None, str | None]:
    """(sfid, name) of the account's price list; (None, None) when there is none.

    The account's own list when it is live, else the one active list (the first by sfid).
    """
    own = conn.execute(
        select(_pl.c.sfid, _pl.c.name)
        .select_from(_acc.join(_pl, _pl.c.sfid == _acc.c.price_list_sfid))
        .where(_acc.c.sfid == account_sfid, _pl.c.is_deleted.is_(False))
    ).first()
    if own is not None:
        return own.sfid, own.name
    active = conn.execute(
        select(_pl.c.sfid, _pl.c.name)
        .where(_pl.c.is_deleted.is_(False), _pl.c.active.is_(True))
        .order_by(_pl.c.sfid)
        .limit(1)
    ).first()
    return (active.sfid, active.name) if active is not None else (None, None)


@dataclass(frozen=True)
class PriceRow:
    """One active, priced item of a price list, with its live product."""

    item_sfid: str
    product_sfid: str
    product_name: str | None
    family: str | None
    list_price: Decimal
    price_type: str | None
    frequency: str | None
    charge_type: str | None
    pack_size: Decimal | None


def active_prices(conn: Connection, list_sfid: str) -> list[PriceRow]:
    """The list's active items with a price and a live product, by item sfid."""
    rows = conn.execute(
        select(
            _pli.c.sfid,
            _pli.c.product_sfid,
            _prod.c.name,
            _prod.c.family,
            _pli.c.list_price,
            _pli.c.price_type,
            _pli.c.frequency,
            _pli.c.charge_type,
            _pli.c.pack_size,
        )
        .select_from(
            _pli.join(
                _prod, and_(_prod.c.sfid == _pli.c.product_sfid, _prod.c.is_deleted.is_(False))
            )
        )
        .where(
            _pli.c.price_list_sfid == list_sfid,
            _pli.c.is_deleted.is_(False),
            _pli.c.active.is_(True),
            _pli.c.list_price.is_not(None),
        )
        .order_by(_pli.c.sfid)
    ).all()
    return [
        PriceRow(
            item_sfid=r.sfid,
            product_sfid=r.product_sfid,
            product_name=r.name,
            family=r.family,
            list_price=Decimal(r.list_price),
            price_type=r.price_type,
            frequency=r.frequency,
            charge_type=r.charge_type,
            pack_size=r.pack_size,
        )
        for r in rows
    ]


def product_name(conn: Connection, product_sfid: str, family: str) -> str | None:
    """The name of the product when it is of ``family``; None otherwise."""
    name: str | None = conn.execute(
        select(_prod.c.name).where(_prod.c.sfid == product_sfid, _prod.c.family == family)
    ).scalar_one_or_none()
    return name


def asset_quantities(
    conn: Connection, account_sfid: str, *, family: str, status: str
) -> dict[str, Decimal]:
    """The account's live asset quantity per product sfid, for one family and status."""
    rows = conn.execute(
        select(_asset.c.product_sfid, func.sum(_asset.c.quantity))
        .select_from(_asset.join(_prod, _prod.c.sfid == _asset.c.product_sfid))
        .where(
            _asset.c.account_sfid == account_sfid,
            _asset.c.is_deleted.is_(False),
            _asset.c.status == status,
            _prod.c.family == family,
        )
        .group_by(_asset.c.product_sfid)
    ).all()
    return {r[0]: Decimal(r[1] or 0) for r in rows}
