"""The portal's write forms: what changed, and what is refused, before anything is staged."""

from __future__ import annotations

import datetime as dt

from sync.portal.forms import parse_account_form, parse_card_form

SEEN = {
    "seen_phone": "(404) 618-6654",
    "seen_billing_email": "ap@example.com",
    "seen_street": "1 Main St",
    "seen_city": "Provo",
    "seen_state": "UT",
    "seen_postal_code": "84601",
    "seen_country": "USA",
}
UNCHANGED = {k.removeprefix("seen_"): v for k, v in SEEN.items()}


def test_given_untouched_fields_when_parsed_then_nothing_changes():
    edits, problems = parse_account_form({**SEEN, **UNCHANGED}, {})
    assert edits == [] and problems == {}


def test_given_a_typed_phone_when_parsed_then_the_ten_digits_against_the_value_seen():
    edits, problems = parse_account_form({**SEEN, **UNCHANGED, "phone": "+1 555 444 3333"}, {})
    assert problems == {}
    (edit,) = edits
    assert (edit.column, edit.saw, edit.new) == ("phone", "(404) 618-6654", "5554443333")


def test_given_bad_values_when_parsed_then_every_problem_named_and_nothing_kept():
    form = {
        **SEEN,
        **UNCHANGED,
        "phone": "call me",
        "billing_email": "nope",
        "city": "x" * 41,
        "country": "",
    }
    edits, problems = parse_account_form(form, {"billing_city": 40})
    assert "'5554443333'" in problems["phone"]
    assert "not an email address" in problems["billing_email"]
    assert "at most 40 fit" in problems["city"]
    assert "country" not in problems  # an address part may be cleared
    assert [e.column for e in edits] == ["billing_country"]


def test_given_the_crm_limit_when_shorter_than_the_column_then_the_crm_limit_applies():
    form = {**SEEN, **UNCHANGED, "billing_email": "a" * 70 + "@example.com"}
    _, problems = parse_account_form(form, {"billing_email": 80})
    assert "at most 80 fit" in problems["billing_email"]


def test_given_a_card_form_when_parsed_then_details_for_the_gateway_and_no_echo():
    today = dt.date(2026, 11, 30)
    details, safe, problems = parse_card_form(
        {
            "name_on_card": "Ada Admin",
            "card_number": "4242 4242 4242 4242",
            "exp_month": "3",
            "exp_year": "31",
            "cvc": "737",
            "is_default": "1",
        },
        today,
    )
    assert problems == {}
    assert details is not None and (details.exp_month, details.exp_year) == (3, 2031)
    assert safe.is_default and not safe.is_one_time
    assert "4242" not in repr(safe) and "737" not in repr(safe)

    details, _, problems = parse_card_form({"exp_month": "13", "exp_year": "2020"}, today)
    assert details is None
    assert set(problems) == {"name_on_card", "card_number", "cvc", "exp_month", "exp_year"}
