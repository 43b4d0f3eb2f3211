"""The Summary's arithmetic, quantity checks and the order a purchase becomes."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from sync.changes.plan import PlanError, PlanInput, Staged, WriteTargets, plan_items
from sync.changes.pricing import (
    Purchase,
    cents,
    describe_purchase,
    money_text,
    parse_quantity,
    summarize,
)
from sync.changes.rules import ChangeKind, Operation, ValueProblem
from sync.db.shapes import MIRRORED_SHAPES
from sync.mapping.loader import default_mappings_dir, load_mappings

D = Decimal


def _license(qty: int, price: str, *, product: str = "p1", frequency: str = "Monthly") -> Purchase:
    return Purchase(
        product,
        f"License {product}",
        qty,
        D(price),
        "Recurring",
        frequency,
        "Subscription Fee",
        "License",
    )


def _minutes(qty: int, price: str = "0.012") -> Purchase:
    return Purchase(
        "dm", "Dialer Minutes", qty, D(price), "Usage", None, "Usage Fee", "Dialer Minutes"
    )


def _one_time(qty: int, price: str) -> Purchase:
    return Purchase(
        "impl", "Implementation", qty, D(price), "One Time", None, "Implementation Fee", "Service"
    )


# purchases, current recurring, (line amounts, purchasing now, grand total recurring, order)
SUMMARY_TABLE = [
    (
        [_license(5, "95"), _minutes(1000)],
        "1234.50",
        (["475.00", "12.00"], "12.00", "1709.50", "487.00"),
    ),
    ([_minutes(1000, "0.0125")], "0", (["12.50"], "12.50", "0.00", "12.50")),
    # half a cent rounds up, per line
    ([_minutes(1000, "0.01245")], "0", (["12.45"], "12.45", "0.00", "12.45")),
    ([_minutes(100, "0.00005")], "0", (["0.01"], "0.01", "0.00", "0.01")),
    ([_license(3, "33.333")], "10", (["100.00"], "0.00", "110.00", "100.00")),
    # yearly: one twelfth per month, in cents
    ([_license(1, "100", frequency="Yearly")], "0", (["100.00"], "0.00", "8.33", "100.00")),
    (
        [_one_time(1, "7500"), _license(2, "45")],
        "0",
        (["7500.00", "90.00"], "7500.00", "90.00", "7590.00"),
    ),
    ([], "99.999", ([], "0.00", "100.00", "0.00")),
]


@pytest.mark.parametrize(("purchases", "current", "expected"), SUMMARY_TABLE)
def test_given_purchases_when_summarized_then_amounts_and_totals_in_cents(
    purchases, current, expected
):
    amounts, now, recurring, order = expected

    summary = summarize(purchases, license_counts={}, current_recurring=D(current))

    assert [str(line.amount) for line in summary.lines] == amounts
    assert str(summary.purchasing_now) == now
    assert str(summary.grand_total_recurring) == recurring
    assert str(summary.order_total) == order
    assert all(isinstance(line.amount, Decimal) for line in summary.lines)


def test_given_licenses_added_when_summarized_then_current_and_new_counts_per_product():
    purchases = [_license(5, "95", product="a"), _minutes(1000), _license(2, "30", product="b")]

    summary = summarize(purchases, license_counts={"a": D("12.0000")}, current_recurring=D("0"))

    assert [(c.product_name, c.current, c.new) for c in summary.new_licenses] == [
        ("License a", D(12), D(17)),
        ("License b", D(0), D(2)),
    ]


QUANTITIES = [
    ("5", 1, 5),
    (" 12 ", 1, 12),
    ("1,000", 1000, 1000),
    ("25000", 1000, 25000),
]


@pytest.mark.parametrize(("raw", "pack", "expected"), QUANTITIES)
def test_given_a_whole_quantity_when_parsed_then_its_value(raw, pack, expected):
    assert parse_quantity(raw, label="Quantity", maximum=1_000_000, pack_size=pack) == expected


BAD_QUANTITIES = [
    ("", 1, "Enter the quantity"),
    ("0", 1, "at least 1"),
    ("-5", 1, "not a whole number"),
    ("2.5", 1, "not a whole number"),
    ("1e3", 1, "not a whole number"),
    ("abc", 1, "not a whole number"),
    ("\u0665", 1, "not a whole number"),  # an Arabic-Indic digit
    ("1001", 1, "at most 1,000"),
    ("1,00", 1, "not a whole number"),
    ("1500", 1000, "packs of 1,000"),
]


@pytest.mark.parametrize(("raw", "pack", "message"), BAD_QUANTITIES)
def test_given_a_bad_quantity_when_parsed_then_refused_with_a_clear_message(raw, pack, message):
    maximum = 1_000 if pack == 1 else 1_000_000
    with pytest.raises(ValueProblem, match=message):
        parse_quantity(raw, label="Quantity", maximum=maximum, pack_size=pack)


@pytest.mark.parametrize(
    ("value", "text"),
    [("95", "$95.00"), ("0.012", "$0.012"), ("1234.5", "$1,234.50"), ("0.01000", "$0.01")],
)
def test_given_a_price_when_written_then_cents_or_its_own_digits(value, text):
    assert money_text(D(value)) == text


def test_given_halves_when_rounded_then_away_from_zero():
    assert cents(D("0.005")) == D("0.01") and cents(D("2.675")) == D("2.68")


def _staged(n: int, kind: ChangeKind, product: str, qty: int, price: str, ptype: str) -> Staged:
    payload = {
        "product": product,
        "name": "Dialer Minutes" if kind is ChangeKind.ADD_MINUTES else "Agent License",
        "family": "Dialer Minutes" if kind is ChangeKind.ADD_MINUTES else "License",
        "quantity": qty,
        "unit_price": price,
        "price_item": f"a0I00000000000{n}AAA",
        "price_type": ptype,
        "frequency": "Monthly" if ptype == "Recurring" else None,
        "charge_type": "Usage Fee" if ptype == "Usage" else "Subscription Fee",
    }
    return Staged(n, kind, product, payload, describe_purchase(kind.value, payload))


def test_given_two_purchases_when_planned_then_price_checks_one_order_and_lines_naming_it():
    targets = WriteTargets.from_mappings(load_mappings(default_mappings_dir(None), MIRRORED_SHAPES))
    staged = [
        _staged(1, ChangeKind.ADD_LICENSES, "01t000000000001AAA", 5, "95.00000", "Recurring"),
        _staged(2, ChangeKind.ADD_MINUTES, "01t000000000002AAA", 1000, "0.01200", "Usage"),
    ]
    inp = PlanInput("001000000000001AAA", "abc123", targets, today=dt.date(2026, 11, 30))

    items = plan_items(inp, staged)

    assert [i.operation for i in items] == [Operation.CHECK] * 4 + [Operation.CREATE] * 3
    order, *lines = items[4:]
    assert order.sobject == "Apttus_Config2__Order__c" and order.external_key == "bs-abc123-5"
    assert order.new_value["Apttus_Config2__Status__c"] == "Pending"
    assert order.new_value["Apttus_Config2__OrderAmount__c"] == 487.0
    assert order.new_value["Apttus_Config2__OrderDate__c"] == "2026-11-30"
    assert order.new_value["Apttus_Config2__SoldToAccountId__c"] == "001000000000001AAA"
    assert [line.new_value["Apttus_Config2__OrderId__c"] for line in lines] == ["@{create5.id}"] * 2
    assert [line.new_value["Apttus_Config2__NetPrice__c"] for line in lines] == [475.0, 12.0]
    assert [line.external_key for line in lines] == ["bs-abc123-6", "bs-abc123-7"]
    assert items[0].old_value == "95.00000" and items[0].field == "Apttus_Config2__ListPrice__c"


def test_given_no_order_mappings_when_a_purchase_is_planned_then_refused():
    full = WriteTargets.from_mappings(load_mappings(default_mappings_dir(None), MIRRORED_SHAPES))
    targets = WriteTargets(full.accounts, full.payment_methods, full.authorizations)
    staged = [_staged(1, ChangeKind.ADD_LICENSES, "01t000000000001AAA", 5, "95", "Recurring")]

    with pytest.raises(PlanError, match="Purchases need"):
        plan_items(PlanInput("001000000000001AAA", "k", targets), staged)
