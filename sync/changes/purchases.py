"""Purchases as staged changes: prices from the mirrored price list, staging, the Summary.

A purchase is a staged change like any other (kinds ``add_licenses`` and
``add_minutes``): it keeps the unit price the admin saw, reaches the CRM only after
Accept, and becomes one order with its lines (:func:`sync.changes.plan.plan_items`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Table, and_, delete, func, select

from sync.changes.plan import Staged
from sync.changes.pricing import (
    DIALER_MINUTES_FAMILY,
    LICENSE_FAMILY,
    MAX_LICENSES,
    MAX_MINUTES,
    Price,
    Purchase,
    Summary,
    describe_purchase,
    money_text,
    parse_quantity,
    summarize,
)
from sync.changes.rules import ChangeKind, ValueProblem
from sync.changes.staging import (
    STAGED,
    StagedView,
    StagingError,
    _check_room,
    insert_staged,
    list_staged,
)
from sync.db.models import Account, Asset, PriceList, PriceListItem, Product

_acc: Table = Account.__table__  # type: ignore[assignment]
_asset: Table = Asset.__table__  # type: ignore[assignment]
_prod: Table = Product.__table__  # type: ignore[assignment]
_pl: Table = PriceList.__table__  # type: ignore[assignment]
_pli: Table = PriceListItem.__table__  # type: ignore[assignment]

PURCHASE_KINDS = (ChangeKind.ADD_LICENSES, ChangeKind.ADD_MINUTES)
ACTIVE_ASSET_STATUS = "Activated"


class NotForSale(StagingError):
    """The product has no active price in the account's price list."""


@dataclass(frozen=True)
class PriceBook:
    """The account's price list and the active prices in it, per product sfid."""

    list_sfid: str | None
    list_name: str | None
    prices: dict[str, Price]

    def why_not(self, product_name: str) -> str:
        """Why a product without a price cannot be bought."""
        if self.list_sfid is None:
            return (
                f"{product_name} cannot be bought here: the billing system has no active "
                "price list for this account. Contact your account manager."
            )
        return (
            f"{product_name} cannot be bought here: it has no active price in the "
            f"{self.list_name or 'account'} price list. Contact your account manager."
        )


def _account_list(conn: Connection, account_sfid: str) -> tuple[str | None, str | None]:
    """The account's price list (its own, when live, else the one active list)."""
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


def price_book(conn: Connection, account_sfid: str) -> PriceBook:
    """The active prices of the account's price list."""
    list_sfid, list_name = _account_list(conn, account_sfid)
    if list_sfid is None:
        return PriceBook(None, None, {})
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
    prices: dict[str, Price] = {}
    for r in rows:
        if r.product_sfid in prices:
            continue  # one price per product: the first item of the list
        prices[r.product_sfid] = Price(
            item_sfid=r.sfid,
            product_sfid=r.product_sfid,
            product_name=r.name or "Unknown product",
            family=r.family,
            list_price=Decimal(r.list_price),
            price_type=r.price_type,
            frequency=r.frequency,
            charge_type=r.charge_type,
            pack_size=max(1, int(r.pack_size or 1)),
            price_list=list_name,
        )
    return PriceBook(list_sfid, list_name, prices)


def license_counts(conn: Connection, account_sfid: str) -> dict[str, Decimal]:
    """Active license count per product sfid."""
    rows = conn.execute(
        select(_asset.c.product_sfid, func.sum(_asset.c.quantity))
        .select_from(_asset.join(_prod, _prod.c.sfid == _asset.c.product_sfid))
        .where(
            _asset.c.account_sfid == account_sfid,
            _asset.c.is_deleted.is_(False),
            _asset.c.status == ACTIVE_ASSET_STATUS,
            _prod.c.family == LICENSE_FAMILY,
        )
        .group_by(_asset.c.product_sfid)
    ).all()
    return {r[0]: Decimal(r[1] or 0) for r in rows}


def purchase_of(change: Staged | StagedView) -> Purchase:
    """The purchase a staged change stands for."""
    return Purchase.from_payload(change.payload)


def purchases_of(staged: Sequence[Staged | StagedView]) -> list[Purchase]:
    """The purchases among ``staged``, in order."""
    return [purchase_of(s) for s in staged if s.kind in PURCHASE_KINDS]


def purchase_payload(price: Price, quantity: int) -> dict[str, Any]:
    """What a staged purchase keeps: product, quantity and the price seen (as text)."""
    return {
        "product": price.product_sfid,
        "name": price.product_name,
        "family": price.family,
        "quantity": quantity,
        "unit_price": str(price.list_price),
        "price_item": price.item_sfid,
        "price_type": price.price_type,
        "frequency": price.frequency,
        "charge_type": price.charge_type,
    }


def stage_purchase(
    conn: Connection,
    contact_sfid: str,
    account_sfid: str,
    kind: ChangeKind,
    product_sfid: str,
    raw_quantity: str | None,
    now: dt.datetime,
) -> None:
    """Stage licenses or dialer-minute credit at the account's current price.

    Staging the same product again adds to the pending quantity (at today's price).

    Raises:
        NotForSale: the product has no active price in the account's price list.
        StagingError: the quantity is not a positive whole number (of packs) within the
            bound, the product is not of the kind, or too many changes are pending.
    """
    assert kind in PURCHASE_KINDS
    book = price_book(conn, account_sfid)
    price = book.prices.get(product_sfid)
    family = LICENSE_FAMILY if kind is ChangeKind.ADD_LICENSES else DIALER_MINUTES_FAMILY
    if price is None:
        name = conn.execute(
            select(_prod.c.name).where(_prod.c.sfid == product_sfid, _prod.c.family == family)
        ).scalar_one_or_none()
        raise NotForSale(book.why_not(name or "This product"))
    if price.family != family:
        raise StagingError(f"{price.product_name} is not sold as {family.lower()}.")
    label = "Quantity" if kind is ChangeKind.ADD_LICENSES else "Minutes"
    maximum = MAX_LICENSES if kind is ChangeKind.ADD_LICENSES else MAX_MINUTES
    try:
        quantity = parse_quantity(
            raw_quantity, label=label, maximum=maximum, pack_size=price.pack_size
        )
    except ValueProblem as exc:
        raise StagingError(str(exc)) from exc
    existing = list_staged(conn, contact_sfid, account_sfid)
    before = next((s for s in existing if s.kind is kind and s.target == product_sfid), None)
    if before is None:
        _check_room(conn, existing, account_sfid, [Staged(0, kind, product_sfid, {}, "")])
    else:
        quantity += int(before.payload["quantity"])
        if quantity > maximum:
            raise StagingError(
                f"{label} can be at most {maximum:,} in one purchase; "
                f"{int(before.payload['quantity']):,} are already pending."
            )
        conn.execute(delete(STAGED).where(STAGED.c.id == before.id))
    payload = purchase_payload(price, quantity)
    insert_staged(
        conn,
        contact_sfid,
        account_sfid,
        kind,
        product_sfid,
        payload,
        describe_purchase(kind, payload),
        now,
    )


def pending_summary(
    conn: Connection, account_sfid: str, staged: Sequence[StagedView], current_recurring: Decimal
) -> Summary:
    """The Summary of the staged purchases against the account's licenses today."""
    return summarize(
        purchases_of(staged),
        license_counts=license_counts(conn, account_sfid),
        current_recurring=current_recurring,
    )


def price_changes(conn: Connection, account_sfid: str, staged: Sequence[StagedView]) -> list[str]:
    """A warning per pending purchase whose price the mirrored price list no longer has.

    Accepting it anyway ends in a conflict at the push (never a charge at another price).
    """
    purchases = [s for s in staged if s.kind in PURCHASE_KINDS]
    if not purchases:
        return []
    book = price_book(conn, account_sfid)
    notes = []
    for change in purchases:
        name = change.payload["name"]
        seen = Decimal(change.payload["unit_price"])
        price = book.prices.get(change.payload["product"])
        if price is None:
            notes.append(f"{book.why_not(name)} Discard this purchase.")
        elif price.list_price != seen:
            notes.append(
                f"The price of {name} is now {money_text(price.list_price)}; you added it at "
                f"{money_text(seen)}. Discard it and add it again at the new price."
            )
    return notes
