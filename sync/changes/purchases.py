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

from sqlalchemy import Connection

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
    StagedView,
    StagingError,
    check_room,
    insert_staged,
    list_staged,
)
from sync.db.repo import prices as repo
from sync.db.repo.changes import delete_staged

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


def price_book(conn: Connection, account_sfid: str) -> PriceBook:
    """The active prices of the account's price list (its own when live, else the active one)."""
    list_sfid, list_name = repo.account_price_list(conn, account_sfid)
    if list_sfid is None:
        return PriceBook(None, None, {})
    prices: dict[str, Price] = {}
    for r in repo.active_prices(conn, list_sfid):
        if r.product_sfid in prices:
            continue  # one price per product: the first item of the list
        prices[r.product_sfid] = Price(
            item_sfid=r.item_sfid,
            product_sfid=r.product_sfid,
            product_name=r.product_name or "Unknown product",
            family=r.family,
            list_price=r.list_price,
            price_type=r.price_type,
            frequency=r.frequency,
            charge_type=r.charge_type,
            pack_size=max(1, int(r.pack_size or 1)),
            price_list=list_name,
        )
    return PriceBook(list_sfid, list_name, prices)


def license_counts(conn: Connection, account_sfid: str) -> dict[str, Decimal]:
    """Active license count per product sfid."""
    return repo.asset_quantities(
        conn, account_sfid, family=LICENSE_FAMILY, status=ACTIVE_ASSET_STATUS
    )


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
        name = repo.product_name(conn, product_sfid, family)
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
        check_room(conn, existing, account_sfid, [Staged(0, kind, product_sfid, {}, "")])
    else:
        quantity += int(before.payload["quantity"])
        if quantity > maximum:
            raise StagingError(
                f"{label} can be at most {maximum:,} in one purchase; "
                f"{int(before.payload['quantity']):,} are already pending."
            )
        delete_staged(conn, [before.id])
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
