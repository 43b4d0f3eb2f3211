"""The payment gateway interface and the local test gateway.

A card number and CVC exist only inside :class:`CardDetails`, for the duration of the
request that tokenizes them: its ``repr`` masks both, nothing here logs them, and what
comes back (:class:`CardToken`) holds the token, the brand, the last four digits and the
expiry only.
"""

from __future__ import annotations

import datetime as dt
import importlib
import re
import secrets
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from sync.settings import SettingsError

_DIGITS = re.compile(r"^[0-9]{12,19}$")
_SEPARATORS = re.compile(r"[\s-]")

# Brand by number prefix, as the card networks assign them (the CRM's picklist values).
_BRANDS: tuple[tuple[str, tuple[str, ...], tuple[int, ...]], ...] = (
    ("American Express", ("34", "37"), (15,)),
    ("Visa", ("4",), (13, 16, 19)),
    ("MasterCard", ("51", "52", "53", "54", "55"), (16,)),
    ("Discover", ("6011", "65", "644", "645", "646", "647", "648", "649"), (16, 19)),
)

# Numbers the test gateway declines, as the well-known test card sets do.
DECLINED_TEST_NUMBERS = {
    "4000000000000002": "Your card was declined.",
    "4000000000009995": "Your card has insufficient funds.",
    "4000000000000069": "Your card has expired.",
}


class CardError(ValueError):
    """The card details cannot be used; the message is meant for the person typing them."""


class CardDeclinedError(CardError):
    """The gateway refused the card."""


@dataclass(frozen=True)
class CardDetails:
    """What a person typed into the card form. Never stored, never logged."""

    number: str = field(repr=False)
    cvc: str = field(repr=False)
    exp_month: int
    exp_year: int
    name_on_card: str

    def __repr__(self) -> str:
        return f"CardDetails(number=****, cvc=***, exp={self.exp_month:02d}/{self.exp_year})"


@dataclass(frozen=True)
class CardToken:
    """What a gateway gives back for a card: safe to store and send to the CRM."""

    token: str
    brand: str
    last_four: str
    exp_month: int
    exp_year: int


@runtime_checkable
class PaymentGateway(Protocol):
    """Exchanges card details for a reusable token.

    Implementations must not log or keep the number or the CVC, and raise
    :class:`CardError` (or :class:`CardDeclinedError`) with a message for the card holder.
    """

    name: str

    def tokenize(self, card: CardDetails, *, today: dt.date) -> CardToken:
        """Tokenize ``card``.

        Raises:
            CardError: the details are invalid or the card was declined.
        """
        ...


def normalize_number(raw: str) -> str:
    """The digits of a card number typed with spaces or dashes.

    Raises:
        CardError: anything but 12 to 19 digits.
    """
    digits = _SEPARATORS.sub("", raw or "")
    if not _DIGITS.match(digits):
        raise CardError("Enter the card number as it is printed on the card (digits only).")
    return digits


def luhn_ok(digits: str) -> bool:
    """True when ``digits`` pass the Luhn checksum every card number carries."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_brand(digits: str) -> str | None:
    """The card's brand from its number's prefix and length, or None when unknown."""
    for brand, prefixes, lengths in _BRANDS:
        if len(digits) in lengths and digits.startswith(prefixes):
            return brand
    if len(digits) == 16 and 2221 <= int(digits[:4]) <= 2720:
        return "MasterCard"
    return None


def check_card(card: CardDetails, *, today: dt.date) -> tuple[str, str]:
    """Checks every gateway makes before asking the network: (digits, brand).

    Raises:
        CardError: the number, CVC or expiry cannot be right; the message says which.
    """
    digits = normalize_number(card.number)
    if not luhn_ok(digits):
        raise CardError("This card number is not valid: check the digits.")
    brand = card_brand(digits)
    if brand is None:
        raise CardError("This card type is not accepted: use Visa, MasterCard, Amex or Discover.")
    cvc_length = 4 if brand == "American Express" else 3
    if not re.fullmatch(f"[0-9]{{{cvc_length}}}", card.cvc):
        raise CardError(f"The CVC is the {cvc_length}-digit code on the card.")
    if not 1 <= card.exp_month <= 12:
        raise CardError("The expiration month must be between 1 and 12.")
    if (card.exp_year, card.exp_month) < (today.year, today.month):
        raise CardError("This card has expired: check the expiration month and year.")
    if card.exp_year > today.year + 25:
        raise CardError("The expiration year is too far in the future.")
    if not card.name_on_card.strip():
        raise CardError("Enter the name as it is printed on the card.")
    return digits, brand


class TestGateway:
    """The embedded gateway: real checks, no network, well-known test numbers.

    Luhn, brand, CVC length and an expiry in the future are checked; the numbers in
    :data:`DECLINED_TEST_NUMBERS` (4000 0000 0000 0002 among them) are declined; every
    other valid number (4242 4242 4242 4242, 5555 5555 5555 4444, ...) gets a random
    token that says nothing about the number.
    """

    name = "test"

    def tokenize(self, card: CardDetails, *, today: dt.date) -> CardToken:
        """Tokenize ``card`` locally.

        Raises:
            CardError: invalid details; CardDeclinedError for the declining test numbers.
        """
        digits, brand = check_card(card, today=today)
        declined = DECLINED_TEST_NUMBERS.get(digits)
        if declined:
            raise CardDeclinedError(declined)
        return CardToken(
            token=f"tok_test_{secrets.token_hex(12)}",
            brand=brand,
            last_four=digits[-4:],
            exp_month=card.exp_month,
            exp_year=card.exp_year,
        )


def load_gateway(spec: str | None) -> PaymentGateway:
    """The gateway named by ``BILLING_SYNC_PAYMENT_GATEWAY`` (``module:factory``).

    ``factory`` is called without arguments (it reads its own credentials from the
    environment) and must return a :class:`PaymentGateway`. Unset: :class:`TestGateway`.

    Raises:
        SettingsError: the spec is malformed, cannot be imported, or is not a gateway.
    """
    if not spec:
        return TestGateway()
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SettingsError(
            f"BILLING_SYNC_PAYMENT_GATEWAY={spec!r} must look like 'package.module:factory'"
        )
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise SettingsError(
            f"BILLING_SYNC_PAYMENT_GATEWAY={spec!r} cannot be loaded: {exc}"
        ) from exc
    try:
        gateway = factory()
    except Exception as exc:
        raise SettingsError(
            f"BILLING_SYNC_PAYMENT_GATEWAY={spec!r} failed to start: {exc}"
        ) from exc
    if not isinstance(gateway, PaymentGateway):
        raise SettingsError(
            f"BILLING_SYNC_PAYMENT_GATEWAY={spec!r} did not give a gateway "
            "(it needs a name and a tokenize(card, today=) method)"
        )
    return gateway
