"""Signed portal links, session cookies and CSRF tokens."""

from __future__ import annotations

import base64
import datetime as dt
import json
from urllib.parse import parse_qs, urlsplit

import pytest

from sync.portal.links import (
    DEFAULT_SESSION_TTL,
    ENTER_PATH,
    InvalidToken,
    PortalSigner,
)

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
SECRET = "unit-test-secret-0123456789"
CONTACT = "003000000000001AAA"
ACCOUNT = "001000000000001AAA"


@pytest.fixture
def signer() -> PortalSigner:
    return PortalSigner(SECRET)


def _b64(data: dict[str, object]) -> str:
    raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _payload(token: str) -> dict[str, object]:
    part = token.split(".")[0]
    result: dict[str, object] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return result


def test_given_a_fresh_link_when_verified_then_it_names_the_contact_and_expiry(signer):
    token = signer.make_link_token(CONTACT, ttl=600, now=NOW)

    link = signer.verify_link_token(token, now=NOW + dt.timedelta(seconds=599))

    assert link.contact_sfid == CONTACT
    assert link.expires_at == NOW + dt.timedelta(seconds=600)
    assert link.nonce


def test_given_two_links_for_one_contact_when_made_then_their_nonces_differ(signer):
    first = signer.make_link_token(CONTACT, now=NOW)
    second = signer.make_link_token(CONTACT, now=NOW)

    assert first != second
    assert (
        signer.verify_link_token(first, now=NOW).nonce
        != signer.verify_link_token(second, now=NOW).nonce
    )


def test_given_a_link_signed_with_another_secret_when_verified_then_it_is_refused(signer):
    forged = PortalSigner("another-secret-0123456789").make_link_token(CONTACT, now=NOW)

    with pytest.raises(InvalidToken, match="signature"):
        signer.verify_link_token(forged, now=NOW)


def test_given_an_expired_link_when_verified_then_it_is_refused(signer):
    token = signer.make_link_token(CONTACT, ttl=60, now=NOW)

    with pytest.raises(InvalidToken, match="expired"):
        signer.verify_link_token(token, now=NOW + dt.timedelta(seconds=60))


def test_given_a_link_whose_contact_was_swapped_when_verified_then_it_is_refused(signer):
    token = signer.make_link_token(CONTACT, now=NOW)
    data = _payload(token)
    data["c"] = "003000000000002AAA"
    tampered = _b64(data) + "." + token.split(".")[1]

    with pytest.raises(InvalidToken, match="signature"):
        signer.verify_link_token(tampered, now=NOW)


def test_given_a_link_whose_expiry_was_extended_when_verified_then_it_is_refused(signer):
    token = signer.make_link_token(CONTACT, ttl=1, now=NOW)
    data = _payload(token)
    data["e"] = int((NOW + dt.timedelta(days=365)).timestamp())
    tampered = _b64(data) + "." + token.split(".")[1]

    with pytest.raises(InvalidToken):
        signer.verify_link_token(tampered, now=NOW + dt.timedelta(seconds=5))


@pytest.mark.parametrize(
    "garbage",
    ["", ".", "abc", "abc.", ".abc", "a.b.c", "!!!.???", "é.é", "x" * 5000, "e30.e30"],
)
def test_given_garbage_when_verified_as_link_or_session_then_it_is_refused(signer, garbage):
    with pytest.raises(InvalidToken):
        signer.verify_link_token(garbage, now=NOW)
    with pytest.raises(InvalidToken):
        signer.load_session(garbage, now=NOW)


def test_given_a_link_token_when_presented_as_a_session_cookie_then_it_is_refused(signer):
    token = signer.make_link_token(CONTACT, now=NOW)

    with pytest.raises(InvalidToken):
        signer.load_session(token, now=NOW)


def test_given_a_session_when_dumped_and_loaded_then_it_round_trips(signer):
    session = signer.new_session(CONTACT, now=NOW).with_account(ACCOUNT)

    loaded = signer.load_session(signer.dump_session(session), now=NOW)

    assert loaded == session
    assert loaded.expires_at == NOW + dt.timedelta(seconds=DEFAULT_SESSION_TTL)


def test_given_a_session_cookie_with_one_changed_character_when_loaded_then_it_is_refused(
    signer,
):
    cookie = signer.dump_session(signer.new_session(CONTACT, now=NOW))
    position = 10
    flipped = "A" if cookie[position] != "A" else "B"
    tampered = cookie[:position] + flipped + cookie[position + 1 :]

    with pytest.raises(InvalidToken):
        signer.load_session(tampered, now=NOW)


def test_given_a_session_past_its_lifetime_when_loaded_then_it_is_refused(signer):
    cookie = signer.dump_session(signer.new_session(CONTACT, now=NOW))

    with pytest.raises(InvalidToken, match="expired"):
        signer.load_session(cookie, now=NOW + dt.timedelta(seconds=DEFAULT_SESSION_TTL))


def test_given_a_shorter_lifetime_setting_when_an_older_session_loads_then_it_is_refused():
    cookie = PortalSigner(SECRET, session_ttl=3600).dump_session(
        PortalSigner(SECRET, session_ttl=3600).new_session(CONTACT, now=NOW)
    )
    strict = PortalSigner(SECRET, session_ttl=60)

    with pytest.raises(InvalidToken, match="expired"):
        strict.load_session(cookie, now=NOW + dt.timedelta(seconds=61))


def test_given_no_cookie_when_loaded_then_it_is_refused(signer):
    with pytest.raises(InvalidToken):
        signer.load_session(None, now=NOW)


def test_given_a_session_when_its_csrf_token_is_checked_then_only_its_own_token_passes(signer):
    mine = signer.new_session(CONTACT, now=NOW)
    other = signer.new_session(CONTACT, now=NOW)

    assert signer.check_csrf(mine, signer.csrf_token(mine))
    assert not signer.check_csrf(mine, signer.csrf_token(other))
    assert not signer.check_csrf(mine, None)
    assert not signer.check_csrf(mine, "")
    assert not signer.check_csrf(mine, "é" * 10)


def test_given_a_public_url_when_a_link_url_is_made_then_it_opens_the_enter_path(signer):
    url = signer.link_url("https://billing.example.com/", CONTACT, ttl=120, now=NOW)

    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        f"https://billing.example.com{ENTER_PATH}"
    )
    token = parse_qs(parts.query)["token"][0]
    assert signer.verify_link_token(token, now=NOW).contact_sfid == CONTACT


@pytest.mark.parametrize("bad", ["", "not-an-id", "003000000000001AAA' OR 1=1", "003"])
def test_given_a_malformed_contact_id_when_signing_then_it_is_rejected(signer, bad):
    with pytest.raises(ValueError):
        signer.make_link_token(bad, now=NOW)


@pytest.mark.parametrize("ttl", [0, -5, 8 * 86400])
def test_given_a_ttl_out_of_range_when_signing_then_it_is_rejected(signer, ttl):
    with pytest.raises(ValueError):
        signer.make_link_token(CONTACT, ttl=ttl, now=NOW)


def test_given_a_short_secret_when_a_signer_is_made_then_it_is_rejected():
    with pytest.raises(ValueError):
        PortalSigner("short")
