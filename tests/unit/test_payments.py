"""The payment gateway interface and the local test gateway."""

from __future__ import annotations

import datetime as dt

import pytest

from sync.payments import CardDeclinedError, CardDetails, CardError, TestGateway, load_gateway
from sync.payments.gateway import card_brand, luhn_ok
from sync.settings import SettingsError

TODAY = dt.date(2026, 11, 30)


def card(number: str, cvc: str = "123", month: int = 12, year: int = 2030) -> CardDetails:
    return CardDetails(number=number, cvc=cvc, exp_month=month, exp_year=year, name_on_card="A B")


@pytest.mark.parametrize(
    ("number", "brand", "last_four"),
    [
        ("4242 4242 4242 4242", "Visa", "4242"),
        ("5555-5555-5555-4444", "MasterCard", "4444"),
        ("2223003122003222", "MasterCard", "3222"),
        ("6011111111111117", "Discover", "1117"),
    ],
)
def test_given_a_test_card_when_tokenized_then_token_brand_last_four_expiry(
    number, brand, last_four
):
    token = TestGateway().tokenize(card(number), today=TODAY)

    assert token.brand == brand and token.last_four == last_four
    assert (token.exp_month, token.exp_year) == (12, 2030)
    assert token.token.startswith("tok_test_")
    assert number.replace(" ", "").replace("-", "") not in token.token


def test_given_the_same_card_twice_when_tokenized_then_tokens_say_nothing_about_it():
    gateway = TestGateway()
    assert (
        gateway.tokenize(card("4242424242424242"), today=TODAY).token
        != gateway.tokenize(card("4242424242424242"), today=TODAY).token
    )


def test_given_the_declining_test_number_when_tokenized_then_declined_clearly():
    with pytest.raises(CardDeclinedError, match="declined"):
        TestGateway().tokenize(card("4000 0000 0000 0002"), today=TODAY)


@pytest.mark.parametrize(
    ("details", "message"),
    [
        (card("4242424242424241"), "not valid"),
        (card("4242"), "digits only"),
        (card("4242 4242 4242 424x"), "digits only"),
        (card("4242424242424242", cvc="12"), "3-digit"),
        (card("378282246310005", cvc="123"), "4-digit"),
        (card("4242424242424242", month=10, year=2026), "expired"),
        (card("4242424242424242", month=13), "between 1 and 12"),
        (card("9999999999999995"), "not accepted"),
    ],
)
def test_given_bad_card_details_when_tokenized_then_the_message_names_the_problem(details, message):
    with pytest.raises(CardError, match=message):
        TestGateway().tokenize(details, today=TODAY)


def test_given_card_details_when_printed_then_number_and_cvc_are_masked():
    shown = repr(card("4242424242424242", cvc="987"))
    assert "4242" not in shown and "987" not in shown


def test_given_luhn_and_brands_then_known_answers():
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")
    assert card_brand("371449635398431") == "American Express"
    assert card_brand("1234567812345678") is None


def test_given_gateway_specs_when_loaded_then_test_default_and_clear_errors():
    assert isinstance(load_gateway(None), TestGateway)
    assert load_gateway("sync.payments.gateway:TestGateway").name == "test"
    for spec, message in (
        ("no-colon", "must look like"),
        ("sync.nothing_here:Gateway", "cannot be loaded"),
        ("sync.payments.gateway:luhn_ok", "failed to start"),
        ("builtins:object", "did not give a gateway"),
    ):
        with pytest.raises(SettingsError, match=message):
            load_gateway(spec)
