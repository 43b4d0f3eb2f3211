"""Parsing the portal's list filters, and how it writes money, quantities and dates."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from sync.portal.filters import Direction, SortKey, parse_list_query
from sync.portal.formatting import day, money, quantity, status_class
from sync.portal.views import PaymentMethodView


def test_given_no_parameters_when_parsed_then_newest_first_page_one():
    query, errors = parse_list_query({})

    assert errors == []
    assert (query.sort, query.direction, query.page) == (SortKey.DATE, Direction.DESC, 1)
    assert not query.is_filtered
    assert query.query_string() == "sort=date&dir=desc"


def test_given_one_date_when_parsed_then_it_is_both_ends_of_the_range():
    query, errors = parse_list_query({"on": "2026-03-05", "from": "2020-01-01"})

    assert errors == []
    assert query.date_from == query.date_to == dt.date(2026, 3, 5)


def test_given_a_reversed_range_when_parsed_then_it_is_dropped_with_a_message():
    query, errors = parse_list_query({"from": "2026-06-01", "to": "2026-01-01"})

    assert errors == ["From must be on or before To."]
    assert query.date_from is None and query.date_to is None


def test_given_amounts_with_symbols_when_parsed_then_they_are_decimals():
    query, errors = parse_list_query({"min": "$1,250.50", "max": "2000"})

    assert errors == []
    assert (query.amount_min, query.amount_max) == (Decimal("1250.50"), Decimal("2000"))


@pytest.mark.parametrize("value", ["NaN", "Infinity", "1e999", "12 OR 1=1", "--"])
def test_given_a_bad_amount_when_parsed_then_it_is_dropped_with_a_message(value):
    query, errors = parse_list_query({"min": value})

    assert query.amount_min is None
    assert errors == ["Minimum amount: enter an amount such as 1250.00."]


def test_given_amounts_on_a_list_without_them_when_parsed_then_they_are_ignored():
    query, errors = parse_list_query({"min": "5"}, amounts=False)

    assert errors == [] and query.amount_min is None and query.value("min") == ""


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"sort": "name"}, "Sort by date or amount."),
        ({"dir": "up"}, "Sort ascending or descending."),
        ({"page": "0"}, "Page must be a page number."),
        ({"page": "-1"}, "Page must be a page number."),
        ({"page": "999999999"}, "Page must be a page number."),
        ({"to": "2026-02-30"}, "To: enter a date as YYYY-MM-DD."),
    ],
)
def test_given_an_invalid_parameter_when_parsed_then_the_default_and_a_message(params, message):
    query, errors = parse_list_query(params)

    assert errors == [message]
    assert query.page == 1 and query.sort is SortKey.DATE


def test_given_a_query_when_linked_to_another_page_then_filters_and_sort_are_kept():
    query, _ = parse_list_query(
        {"from": "2026-01-01", "to": "", "sort": "amount", "dir": "asc", "page": "3"}
    )

    assert query.offset == 50
    assert query.query_string(page=4) == "from=2026-01-01&sort=amount&dir=asc&page=4"
    assert query.query_string(sort="date", page=None) == "from=2026-01-01&sort=date&dir=asc"


def test_given_overlong_values_when_parsed_then_they_are_cut():
    query, _ = parse_list_query({"from": "9" * 10_000})

    assert len(query.value("from")) == 64


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("1234.5"), "$1,234.50"),
        (Decimal("-12"), "-$12.00"),
        (Decimal("0"), "$0.00"),
        (None, "\u2013"),
    ],
)
def test_given_amounts_when_written_then_dollars_and_cents(value, text):
    assert money(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(Decimal("5000.0000"), "5,000"), (Decimal("1.5000"), "1.5"), (None, "\u2013")],
)
def test_given_quantities_when_written_then_no_storage_zeros(value, text):
    assert quantity(value) == text


def test_given_dates_and_datetimes_when_written_then_the_utc_day_is_shown():
    late = dt.datetime(2026, 3, 5, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))

    assert day(dt.date(2026, 3, 5)) == "Mar 5, 2026"
    assert day(late) == "Mar 6, 2026"


def test_given_unknown_statuses_when_styled_then_a_fixed_class_is_used():
    assert status_class("Activated") == "ok"
    assert status_class("Pending") == "warn"
    assert status_class('x" onmouseover="alert(1)') == "muted"


def test_given_a_card_when_masked_then_only_brand_and_last_four_show():
    def card(**kw):
        base = dict(
            sfid="a0F000000000001AAA",
            type="Credit Card",
            card_type="Visa",
            card_last_four="4242",
            card_expiration_month=3,
            card_expiration_year=2029,
            is_default=1,
            is_one_time=None,
            status="Active",
        )
        return PaymentMethodView(**{**base, **kw})

    assert card().masked == "Visa ending in 4242" and card().expiry == "03/2029"
    assert card().is_default is True and card().is_one_time is False
    assert card(card_last_four="4242424242424242").masked == "Visa"
    assert card(card_type=None, card_last_four=None, type="ACH").masked == "ACH"
