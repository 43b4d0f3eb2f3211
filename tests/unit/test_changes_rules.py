"""Pure rules of the change flow: phone format, conflict decision, keys, wording."""

from __future__ import annotations

import pytest

from sync.changes.rules import (
    CardWords,
    Decision,
    ValueProblem,
    add_card_words,
    check_email,
    check_length,
    decide,
    external_key,
    field_change_words,
    make_default_words,
    normalize_phone,
    remove_words,
    summary_text,
    terms_version,
)


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("5554443333", "5554443333"),
        ("555 444 3333", "5554443333"),
        ("555.444.3333", "5554443333"),
        ("555-444-3333", "5554443333"),
        ("(555) 444-3333", "5554443333"),
        ("+1 (555) 444-3333", "5554443333"),
        ("+15554443333", "5554443333"),
        ("1-555-444-3333", "5554443333"),
        ("  (404) 618-6654 ", "4046186654"),
    ],
)
def test_given_ten_digits_typed_with_punctuation_when_normalized_then_the_digits(typed, stored):
    assert normalize_phone(typed) == stored


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "555444333",  # nine digits
        "55544433334",  # eleven digits not starting with 1
        "+44 20 7946 0958",  # another country
        "555-444-3333 ext 12",
        "555/444/3333",
        "phone",
        "+1 555 444 333",
        "555\uff14443333",  # a full-width digit 4
    ],
)
def test_given_anything_else_when_normalized_then_refused_showing_the_format(typed):
    with pytest.raises(ValueProblem, match="'5554443333'"):
        normalize_phone(typed)


@pytest.mark.parametrize(
    ("saw", "new", "current", "decision"),
    [
        ("(404) 618-6654", "5554443333", "(404) 618-6654", Decision.SEND),
        ("(404) 618-6654", "5554443333", "5554443333", Decision.NOTHING),
        ("(404) 618-6654", "5554443333", "(212) 555-0100", Decision.CONFLICT),
        (None, "Springfield", None, Decision.SEND),
        (None, "Springfield", "", Decision.SEND),  # empty text is null in the CRM
        ("Columbus", None, "", Decision.NOTHING),
        (True, False, True, Decision.SEND),
        (True, False, False, Decision.NOTHING),
        (False, True, None, Decision.SEND),  # an unset checkbox reads as unchecked
        ("Active", "Inactive", "Expired", Decision.CONFLICT),
        (12, 11, 12.0, Decision.SEND),
    ],
)
def test_given_saw_new_and_current_when_decided_then_never_last_writer_wins(
    saw, new, current, decision
):
    assert decide(saw, new, current) is decision


def test_given_a_set_key_when_keys_are_derived_then_stable_distinct_and_short():
    assert external_key("0a1b2c3d4e5f60718293") == "bs-0a1b2c3d4e5f60718293"
    assert external_key("0a1b2c3d4e5f60718293", 3) == "bs-0a1b2c3d4e5f60718293-3"
    assert external_key("k", 1) == external_key("k", 1)
    assert len({external_key("k", n) for n in range(1, 30)}) == 29
    with pytest.raises(ValueError, match="too long"):
        external_key("x" * 80, 1)


def test_given_changes_when_worded_then_people_can_read_them():
    card = CardWords("Visa", "4242", 3, 2031)
    assert field_change_words("Phone", "(404) 618-6654", "5554443333") == (
        "Phone: (404) 618-6654 -> 5554443333"
    )
    assert field_change_words("City", None, "Springfield") == "City: (empty) -> Springfield"
    assert add_card_words(card, is_default=True, is_one_time=False) == (
        "Add card: Visa ending in 4242, expires 03/2031 (default)"
    )
    assert add_card_words(card, is_default=True, is_one_time=True).endswith("(default, one time)")
    assert make_default_words(CardWords("MasterCard", "5454")) == (
        "Make default: MasterCard ending in 5454"
    )
    assert remove_words(CardWords(None, None)) == "Remove: Card"
    assert summary_text(["Phone: a -> b", "City: c -> d"], typed_name="Ada Admin") == (
        "Accepted by Ada Admin:\n- Phone: a -> b\n- City: c -> d"
    )
    assert summary_text(["x"], typed_name="A B", terms="sha256:0123").endswith(
        "\n- x\nTerms of use: sha256:0123"
    )


def test_given_emails_and_lengths_when_checked_then_clear_messages():
    assert check_email(" ap@example.com ") == "ap@example.com"
    for bad in ("ap@", "ap example.com", "@example.com", "ap@example"):
        with pytest.raises(ValueProblem, match="not an email address"):
            check_email(bad)
    assert check_length("City", "Provo", 40) == "Provo"
    with pytest.raises(ValueProblem, match="City is 41 characters long; at most 40 fit"):
        check_length("City", "x" * 41, 40)


def test_given_terms_when_versioned_then_the_version_follows_the_text():
    assert terms_version("a") == terms_version("a")
    assert terms_version("a") != terms_version("b")
    assert terms_version("a").startswith("sha256:")
