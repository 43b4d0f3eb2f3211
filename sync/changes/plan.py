"""From staged changes to change items: pure, fed with plain values.

Staged changes are replayed over the mirrored payment methods (:func:`project_methods`)
to check the rules that hold after any accepted change (the default method is active,
exactly one active method is the default, only active methods can be changed) and to
derive the minimal CRM writes (:func:`plan_items`): field updates where the projected
value differs from the mirrored one, and one create per added card.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from sync.changes.pricing import Purchase, money_text, summarize
from sync.changes.rules import (
    CardWords,
    ChangeKind,
    Operation,
    external_key,
    field_change_words,
)
from sync.clock import utc_now
from sync.mapping.spec import Mapping, MappingSet
from sync.mapping.transform import row_to_record

ACTIVE = "Active"
INACTIVE = "Inactive"
CARD_TYPE = "Credit Card"
ORDER_STATUS = "Pending"
PURCHASE_KINDS = (ChangeKind.ADD_LICENSES, ChangeKind.ADD_MINUTES)


class PlanError(ValueError):
    """The staged changes cannot be accepted as they are; the message says why."""


@dataclass(frozen=True)
class Staged:
    """One staged change as the plan needs it."""

    id: int
    kind: ChangeKind
    target: str | None
    payload: dict[str, Any]
    description: str


@dataclass(frozen=True)
class MethodState:
    """A payment method as mirrored (or as added by a staged change)."""

    ref: str
    is_default: bool
    status: str | None
    words: CardWords
    added_by: int | None = None

    @property
    def active(self) -> bool:
        """True for methods that can pay (status Active, or no status at all)."""
        return (self.status or ACTIVE) == ACTIVE


@dataclass(frozen=True)
class Item:
    """One CRM write of a change set, before it is stored."""

    operation: Operation
    sobject: str
    label: str
    record_sfid: str | None = None
    external_key: str | None = None
    field: str | None = None
    old_value: Any = None
    new_value: Any = None


@dataclass(frozen=True)
class WriteTargets:
    """The CRM objects and fields the portal writes, as the mappings name them."""

    accounts: Mapping
    payment_methods: Mapping
    authorizations: Mapping
    orders: Mapping | None = None
    order_lines: Mapping | None = None
    price_list_items: Mapping | None = None

    @classmethod
    def from_mappings(cls, mappings: MappingSet) -> WriteTargets:
        """The targets of ``mappings`` (purchases need orders, order lines and prices).

        Raises:
            PlanError: a table the write side needs has no mapping.
        """
        found: dict[str, Mapping | None] = {}
        for table in ("accounts", "payment_methods", "authorizations"):
            mapping = mappings.by_table(table)
            if mapping is None:
                raise PlanError(f"no mapping fills table {table}: the portal cannot write it")
            found[table] = mapping
        for table in ("orders", "order_lines", "price_list_items"):
            found[table] = mappings.by_table(table)
        return cls(**found)  # type: ignore[arg-type]

    def purchase_targets(self) -> tuple[Mapping, Mapping, Mapping]:
        """The orders, order lines and price list items mappings.

        Raises:
            PlanError: one of them is missing: purchases cannot be placed.
        """
        if self.orders is None or self.order_lines is None or self.price_list_items is None:
            raise PlanError("Purchases need the orders, order_lines and price_list_items mappings.")
        return self.orders, self.order_lines, self.price_list_items

    @staticmethod
    def crm_field(mapping: Mapping, column: str) -> str:
        """The CRM field behind ``column`` of ``mapping``.

        Raises:
            PlanError: the mapping does not map that column.
        """
        for spec in mapping.fields:
            if spec.column == column:
                return spec.crm_name
        raise PlanError(f"mapping {mapping.name} does not map column {column}")


def _set_default(methods: list[MethodState], ref: str) -> list[MethodState]:
    return [replace(m, is_default=m.ref == ref) for m in methods]


def project_methods(mirrored: Sequence[MethodState], staged: Sequence[Staged]) -> list[MethodState]:
    """The payment methods after ``staged`` are applied, in order.

    Raises:
        PlanError: a staged change breaks a rule: removing the default method, changing
            a method that is not active (or is gone), or leaving active methods without
            exactly one default.
    """
    methods = list(mirrored)
    touched = False
    for change in staged:
        if change.kind is ChangeKind.ADD_CARD:
            p = change.payload
            new = MethodState(
                ref=f"new:{change.id}",
                is_default=False,
                status=ACTIVE,
                words=CardWords(p["brand"], p["last_four"], p["exp_month"], p["exp_year"]),
                added_by=change.id,
            )
            methods.append(new)
            if p.get("is_default"):
                methods = _set_default(methods, new.ref)
            touched = True
        elif change.kind in (ChangeKind.MAKE_DEFAULT, ChangeKind.REMOVE_METHOD):
            target = next((m for m in methods if m.ref == change.target), None)
            if target is None or not target.active:
                raise PlanError(
                    "That payment method is no longer active: discard the change and reload."
                )
            if change.kind is ChangeKind.MAKE_DEFAULT:
                methods = _set_default(methods, target.ref)
            else:
                if target.is_default:
                    raise PlanError(
                        f"{target.words} is the default payment method and cannot be "
                        "removed: make another method the default first."
                    )
                methods = [replace(m, status=INACTIVE) if m is target else m for m in methods]
            touched = True
    if touched:
        active = [m for m in methods if m.active]
        defaults = [m for m in active if m.is_default]
        if active and not defaults:
            # a first card added to an account without a default becomes the default
            added = [m for m in active if m.added_by is not None]
            if not added:
                raise PlanError("Make one of the active payment methods the default.")
            methods = _set_default(methods, added[-1].ref)
        elif len(defaults) > 1:
            methods = _set_default(methods, defaults[-1].ref)
        # an inactive method is never the default
        methods = [replace(m, is_default=False) if not m.active else m for m in methods]
    return methods


#: A change set goes to the CRM as ONE all-or-nothing Composite Graph, whose limits are
#: 500 nodes, 15 distinct method x object x version node kinds and references 15 deep.
#: The CRM door checks the same numbers when it sends (sync.crm.graph); a unit test keeps
#: the two equal. Here they refuse a change at staging, before the admin accepts a set
#: that could never be sent (a set is never split: all of it or nothing is the promise).
MAX_WRITES = 500
MAX_WRITE_KINDS = 15
MAX_WRITE_DEPTH = 15


@dataclass(frozen=True)
class WriteShape:
    """The size of the one request a change set is sent as.

    Attributes:
        writes: records written (the authorization, each updated record once, each create).
        kinds: distinct kinds of record written (all writes are PATCHes of one version).
        depth: the longest chain of writes naming an earlier one (an order line its order).
    """

    writes: int
    kinds: int
    depth: int

    def problem(self) -> str | None:
        """Why the request would not fit, in the admin's words; None when it fits."""
        if self.writes > MAX_WRITES:
            return (
                f"they need {self.writes} CRM writes, and one all-or-nothing CRM request "
                f"takes at most {MAX_WRITES}"
            )
        if self.kinds > MAX_WRITE_KINDS:
            return (
                f"they write {self.kinds} kinds of CRM record, and one all-or-nothing CRM "
                f"request takes at most {MAX_WRITE_KINDS}"
            )
        if self.depth > MAX_WRITE_DEPTH:
            return (
                f"their CRM writes depend on each other {self.depth} levels deep, and one "
                f"all-or-nothing CRM request takes at most {MAX_WRITE_DEPTH}"
            )
        return None


def write_shape(mirrored: Sequence[MethodState], staged: Sequence[Staged]) -> WriteShape:
    """The shape of the request :func:`plan_items` and the push make of ``staged``.

    It counts what they write: the authorization record; the account once if a field of
    it changes; each mirrored payment method whose default flag or status changes, and
    each added card; for purchases, the order and one line per purchase (the lines name
    the order, so depth 2).

    Raises:
        PlanError: the staged changes break a payment-method rule.
    """
    writes, kinds, depth = 1, {"authorization"}, 1
    if any(c.kind is ChangeKind.ACCOUNT_FIELD for c in staged):
        writes += 1
        kinds.add("account")
    projected = project_methods(mirrored, staged)
    before = {m.ref: m for m in mirrored}
    methods = 0
    for method in projected:
        old = before.get(method.ref)
        if old is None:
            methods += 1 if method.added_by is not None else 0
        elif (old.is_default, old.status) != (method.is_default, method.status):
            methods += 1
    if methods:
        writes += methods
        kinds.add("payment_method")
    purchases = sum(1 for c in staged if c.kind in PURCHASE_KINDS)
    if purchases:
        writes += 1 + purchases
        kinds.update(("order", "order_line"))
        depth = 2
    return WriteShape(writes, len(kinds), depth)


@dataclass
class PlanInput:
    """What :func:`plan_items` needs besides the staged changes."""

    account_sfid: str
    set_key: str
    targets: WriteTargets
    mirrored_methods: list[MethodState] = field(default_factory=list)
    today: dt.date | None = None


def plan_items(inp: PlanInput, staged: Sequence[Staged]) -> list[Item]:
    """The CRM writes that carry out ``staged``.

    Account fields become updates (value seen -> new value). Payment methods are
    projected (:func:`project_methods`); each mirrored method whose default flag or
    status differs afterwards gets an update per field, and each added card one create,
    upserted by an external key derived from the set's key and the item's position.

    Raises:
        PlanError: the staged changes break a payment-method rule.
    """
    targets = inp.targets
    items: list[Item] = []
    account_object = targets.accounts.crm_object
    for change in staged:
        if change.kind is ChangeKind.ACCOUNT_FIELD:
            assert change.target is not None
            p = change.payload
            items.append(
                Item(
                    Operation.UPDATE,
                    account_object,
                    field_change_words(p["label"], p["saw"], p["new"]),
                    record_sfid=inp.account_sfid,
                    field=targets.crm_field(targets.accounts, change.target),
                    old_value=p["saw"],
                    new_value=p["new"],
                )
            )
    projected = project_methods(inp.mirrored_methods, staged)
    before = {m.ref: m for m in inp.mirrored_methods}
    pm = targets.payment_methods
    for method in projected:
        old = before.get(method.ref)
        if old is None:
            continue
        for column, label, saw, new in (
            ("is_default", "Is Default", old.is_default, method.is_default),
            ("status", "Status", old.status, method.status),
        ):
            if saw != new:
                items.append(
                    Item(
                        Operation.UPDATE,
                        pm.crm_object,
                        f"{old.words}: {field_change_words(label, saw, new)}",
                        record_sfid=method.ref,
                        field=targets.crm_field(pm, column),
                        old_value=saw,
                        new_value=new,
                    )
                )
    staged_by_id = {c.id: c for c in staged}
    for method in projected:
        if method.added_by is None:
            continue
        p = staged_by_id[method.added_by].payload
        key = external_key(inp.set_key, len(items) + 1)
        row = {
            "account_sfid": inp.account_sfid,
            "type": CARD_TYPE,
            "card_type": p["brand"],
            "card_last_four": p["last_four"],
            "card_expiration_month": p["exp_month"],
            "card_expiration_year": p["exp_year"],
            "payment_token": p["token"],
            "is_default": method.is_default,
            "is_one_time": bool(p.get("is_one_time")),
            "status": ACTIVE,
            "sync_key": key,
        }
        items.append(
            Item(
                Operation.CREATE,
                pm.crm_object,
                f"Add card: {method.words}" + (" (default)" if method.is_default else ""),
                external_key=key,
                field=targets.crm_field(pm, "sync_key"),
                new_value=row_to_record(pm, row),
            )
        )
    purchases = [s for s in staged if s.kind in PURCHASE_KINDS]
    if purchases:
        items.extend(_purchase_items(inp, purchases, len(items)))
    return items


def _purchase_items(inp: PlanInput, purchases: Sequence[Staged], before: int) -> list[Item]:
    """One order with a line per purchase, after checks that the prices still hold.

    The order is upserted by its key; each line names the order by the reference the
    push gives the order's write (``@{create<position>.id}``), so the order and its
    lines are written in the same all-or-nothing graph.
    """
    orders, order_lines, prices = inp.targets.purchase_targets()
    wanted = [Purchase.from_payload(s.payload) for s in purchases]
    summary = summarize(wanted, license_counts={}, current_recurring=Decimal(0))
    items: list[Item] = []
    price_field = WriteTargets.crm_field(prices, "list_price")
    active_field = WriteTargets.crm_field(prices, "active")
    for change, line in zip(purchases, summary.lines, strict=True):
        p = change.payload
        items.append(
            Item(
                Operation.CHECK,
                prices.crm_object,
                f"Price of {line.product_name}: {money_text(line.unit_price)} "
                f"{'per minute' if change.kind is ChangeKind.ADD_MINUTES else line.per}",
                record_sfid=p["price_item"],
                field=price_field,
                old_value=p["unit_price"],
                new_value=p["unit_price"],
            )
        )
        items.append(
            Item(
                Operation.CHECK,
                prices.crm_object,
                f"{line.product_name} is for sale",
                record_sfid=p["price_item"],
                field=active_field,
                old_value=True,
                new_value=True,
            )
        )
    order_position = before + len(items) + 1
    order_key = external_key(inp.set_key, order_position)
    today = inp.today or utc_now().date()
    items.append(
        Item(
            Operation.CREATE,
            orders.crm_object,
            f"Order of {money_text(summary.order_total)}, status {ORDER_STATUS}",
            external_key=order_key,
            field=WriteTargets.crm_field(orders, "sync_key"),
            new_value=row_to_record(
                orders,
                {
                    "name": f"Portal order {inp.set_key[:8]}",
                    "account_sfid": inp.account_sfid,
                    "order_date": today,
                    "status": ORDER_STATUS,
                    "amount": summary.order_total,
                    "sync_key": order_key,
                },
            ),
        )
    )
    for change, line in zip(purchases, summary.lines, strict=True):
        key = external_key(inp.set_key, before + len(items) + 1)
        items.append(
            Item(
                Operation.CREATE,
                order_lines.crm_object,
                f"Order line: {line.quantity:,} {line.product_name}, {money_text(line.amount)}",
                external_key=key,
                field=WriteTargets.crm_field(order_lines, "sync_key"),
                new_value=row_to_record(
                    order_lines,
                    {
                        "order_sfid": f"@{{create{order_position}.id}}",
                        "product_sfid": change.payload["product"],
                        "quantity": Decimal(line.quantity),
                        "net_price": line.amount,
                        "charge_type": line.charge_type,
                        "sync_key": key,
                    },
                ),
            )
        )
    return items


def authorization_record(
    targets: WriteTargets,
    *,
    account_sfid: str,
    contact_sfid: str,
    typed_name: str,
    accepted_at: dt.datetime,
    summary: str,
    key: str,
) -> dict[str, Any]:
    """The Billing_Authorization__c fields of one change set, as the mapping names them."""
    row = {
        "account_sfid": account_sfid,
        "contact_sfid": contact_sfid,
        "authorized_by_name": typed_name,
        "accepted_at": accepted_at,
        "summary": summary,
        "sync_key": key,
    }
    return row_to_record(targets.authorizations, row)
