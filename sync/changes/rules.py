"""Pure rules of the change flow: value checks, the conflict decision, keys, wording.

Nothing here touches the database or the network; tests feed plain values. The stored
words (kinds, states, operations, item outcomes) are those of :mod:`sync.db.states`, re-exported
here.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sync.db.states import FINAL_STATES as FINAL_STATES
from sync.db.states import PENDING_STATES as PENDING_STATES
from sync.db.states import PROBLEM_STATES as PROBLEM_STATES
from sync.db.states import ChangeKind as ChangeKind
from sync.db.states import ChangeState as ChangeState
from sync.db.states import ItemOutcome as ItemOutcome
from sync.db.states import Operation as Operation

PHONE_FORMAT = "5554443333"
_PHONE_PUNCTUATION = re.compile(r"[\s.\-()]")
_TEN_DIGITS = re.compile(r"^[0-9]{10}$")
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$")


class Decision(StrEnum):
    """What the push does with one field, given the CRM's current value."""

    SEND = "send"
    NOTHING = "nothing"
    CONFLICT = "conflict"


class PushOutcome(StrEnum):
    """How one push attempt of a change set ended."""

    APPLIED = "applied"
    CONFLICT = "conflict"
    FAILED = "failed"
    DEFERRED = "deferred"
    """Not finished: the set goes back to ``accepted`` and is tried again later."""

    @property
    def state(self) -> ChangeState | None:
        """The final state the set takes; None when it is tried again."""
        return None if self is PushOutcome.DEFERRED else ChangeState(self.value)


class ValueProblem(ValueError):
    """A value the admin typed cannot be staged; the message says what is expected."""


# -- values --------------------------------------------------------------------------


def normalize_phone(raw: str) -> str:
    """The ten digits the billing system stores, from a phone number as people type it.

    Spaces, dots, dashes, parentheses and a leading ``+1`` (or ``1``) are accepted.

    Raises:
        ValueProblem: anything else; the message shows the expected format.
    """
    text = (raw or "").strip()
    if text.startswith("+"):
        if not text.startswith("+1"):
            raise ValueProblem(_phone_message(raw))
        text = text[2:]
    digits = _PHONE_PUNCTUATION.sub("", text)
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    # ASCII digits only: str.isdigit() also accepts other scripts' digits
    if not _TEN_DIGITS.match(digits):
        raise ValueProblem(_phone_message(raw))
    return digits


def _phone_message(raw: str) -> str:
    return (
        f"Phone {raw.strip()!r} is not a 10-digit phone number. "
        f"Enter it as ten digits, like '{PHONE_FORMAT}'."
    )


def check_email(raw: str) -> str:
    """A stripped email address.

    Raises:
        ValueProblem: not shaped like an address.
    """
    value = (raw or "").strip()
    if len(value) > 254 or not _EMAIL.match(value):
        raise ValueProblem(f"Billing email {value!r} is not an email address, like ap@example.com.")
    return value


def check_length(label: str, value: str, limit: int | None) -> str:
    """``value`` when it fits the CRM field's length.

    Raises:
        ValueProblem: longer than ``limit`` characters.
    """
    if limit is not None and len(value) > limit:
        raise ValueProblem(f"{label} is {len(value)} characters long; at most {limit} fit.")
    return value


# -- the conflict rule -----------------------------------------------------------------


def same_value(a: Any, b: Any) -> bool:
    """CRM equality: empty text and null are the same; numbers compare by value."""
    if a in (None, "") and b in (None, ""):
        return True
    if isinstance(a, bool) or isinstance(b, bool):
        # a checkbox is never null in the CRM; a null mirrored checkbox reads as unchecked
        if not all(v is None or isinstance(v, bool) for v in (a, b)):
            return False
        return bool(a) == bool(b)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return bool(a == b)


def decide(saw: Any, new: Any, current: Any) -> Decision:
    """The per-field conflict rule (never last-writer-wins).

    Args:
        saw: the value the admin saw when staging.
        new: the value the admin asked for.
        current: the value the CRM holds now.

    Returns:
        SEND when the CRM still holds what the admin saw; NOTHING when it already holds
        the new value; CONFLICT when someone changed it to something else meanwhile.
    """
    if same_value(current, new):
        return Decision.NOTHING
    if same_value(current, saw):
        return Decision.SEND
    return Decision.CONFLICT


# -- keys ------------------------------------------------------------------------------

KEY_PREFIX = "bs"


def external_key(set_key: str, position: int | None = None) -> str:
    """The Billing_Sync_Key__c of a record a change set creates (or of the set itself).

    Derived only from the set's key and the item's position, so a resend after a timeout,
    a crash or a redelivered task upserts the same record instead of creating another.
    At most 80 characters (the CRM field's length).
    """
    key = f"{KEY_PREFIX}-{set_key}" if position is None else f"{KEY_PREFIX}-{set_key}-{position}"
    if len(key) > 80:
        raise ValueError(f"external key too long: {key}")
    return key


def terms_version(text: str) -> str:
    """A version of the terms of use: the first 12 hex digits of their SHA-256."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


# -- wording ---------------------------------------------------------------------------


def shown(value: Any) -> str:
    """A value as the portal writes it in a summary."""
    if value is None or value == "":
        return "(empty)"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return str(value)


def field_change_words(label: str, old: Any, new: Any) -> str:
    """e.g. ``Phone: (404) 618-6654 -> 5554443333``."""
    return f"{label}: {shown(old)} -> {shown(new)}"


@dataclass(frozen=True)
class CardWords:
    """What a summary says about a card."""

    brand: str | None
    last_four: str | None
    exp_month: int | None = None
    exp_year: int | None = None

    def __str__(self) -> str:
        label = self.brand or "Card"
        text = f"{label} ending in {self.last_four}" if self.last_four else label
        if self.exp_month and self.exp_year:
            text += f", expires {self.exp_month:02d}/{self.exp_year}"
        return text


def add_card_words(card: CardWords, *, is_default: bool, is_one_time: bool) -> str:
    """e.g. ``Add card: Visa ending in 4242, expires 12/2030 (default, one time)``."""
    flags = [f for f, on in (("default", is_default), ("one time", is_one_time)) if on]
    return f"Add card: {card}" + (f" ({', '.join(flags)})" if flags else "")


def make_default_words(card: CardWords) -> str:
    """e.g. ``Make default: Visa ending in 4242``."""
    return f"Make default: {card}"


def remove_words(card: CardWords) -> str:
    """e.g. ``Remove: Visa ending in 4242``."""
    return f"Remove: {card}"


def summary_text(lines: list[str], *, typed_name: str, terms: str | None = None) -> str:
    """The Billing_Authorization__c summary: who accepted which changes, under which terms."""
    body = "\n".join(f"- {line}" for line in lines)
    text = f"Accepted by {typed_name}:\n{body}"
    return text + (f"\nTerms of use: {terms}" if terms else "")
