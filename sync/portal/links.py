"""Signed portal links and signed session cookies.

A portal link carries a contact Id, an expiry and a random nonce, signed with
HMAC-SHA256 under a key derived from ``BILLING_SYNC_PORTAL_SECRET``. Opening a valid
link starts a session: a cookie holding the contact Id, the chosen account, issue and
expiry times and a per-session random value (the seed of CSRF tokens for forms), signed
under a second derived key. Neither carries any access decision: the portal re-reads the
mirrored roles on every request.

Both formats are ``<base64url payload>.<base64url signature>``; comparison is constant
time, and every failure raises :class:`InvalidToken` with a reason that is safe to log
(never the secret, never the token).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sync.access import is_crm_id
from sync.clock import utc_now
from sync.settings import Settings

UTC = dt.UTC
LINK_VERSION = 1
SESSION_VERSION = 1
DEFAULT_LINK_TTL = 3600.0
MAX_LINK_TTL = 7 * 86400.0
DEFAULT_SESSION_TTL = 8 * 3600.0
ENTER_PATH = "/portal/enter"
# Tokens larger than this are refused before any decoding work is done.
_MAX_TOKEN_LENGTH = 1024


class InvalidToken(ValueError):
    """A link or cookie is missing, malformed, forged, tampered with or expired."""


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken("not base64url") from None


def _derive(secret: str, purpose: str) -> bytes:
    # Separate keys per purpose, so a link can never be replayed as a cookie or a CSRF
    # token, even though all are derived from the one configured secret.
    return hmac.new(secret.encode("utf-8"), purpose.encode("ascii"), hashlib.sha256).digest()


def _now(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return utc_now()
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now


class _Signer:
    def __init__(self, key: bytes, context: str) -> None:
        self._key = key
        self._context = context.encode("ascii")

    def _mac(self, payload: str) -> bytes:
        return hmac.new(
            self._key, self._context + b"|" + payload.encode("ascii"), hashlib.sha256
        ).digest()

    def sign(self, data: dict[str, Any]) -> str:
        payload = _b64encode(json.dumps(data, separators=(",", ":"), sort_keys=True).encode())
        return f"{payload}.{_b64encode(self._mac(payload))}"

    def unsign(self, token: str) -> dict[str, Any]:
        if not token or len(token) > _MAX_TOKEN_LENGTH:
            raise InvalidToken("missing or oversized")
        payload, sep, signature = token.partition(".")
        if not sep or not payload or not signature or not payload.isascii():
            raise InvalidToken("malformed")
        if not hmac.compare_digest(_b64decode(signature), self._mac(payload)):
            raise InvalidToken("bad signature")
        try:
            data = json.loads(_b64decode(payload))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise InvalidToken("malformed payload") from None
        if not isinstance(data, dict):
            raise InvalidToken("malformed payload")
        return data


def _int_field(data: dict[str, Any], name: str) -> int:
    value = data.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidToken(f"missing {name}")
    return value


def _contact_field(data: dict[str, Any]) -> str:
    contact = data.get("c")
    if not isinstance(contact, str) or not is_crm_id(contact):
        raise InvalidToken("missing contact")
    return contact


@dataclass(frozen=True)
class PortalLink:
    """What a verified link says."""

    contact_sfid: str
    expires_at: dt.datetime
    nonce: str


@dataclass(frozen=True)
class PortalSession:
    """What a verified session cookie says: who signed in, never what they may see."""

    contact_sfid: str
    account_sfid: str | None
    issued_at: dt.datetime
    expires_at: dt.datetime
    csrf_seed: str

    def with_account(self, account_sfid: str | None) -> PortalSession:
        """The same session with another chosen account."""
        return PortalSession(
            self.contact_sfid, account_sfid, self.issued_at, self.expires_at, self.csrf_seed
        )


class PortalSigner:
    """Signs and verifies portal links, session cookies and CSRF tokens.

    Args:
        secret: ``BILLING_SYNC_PORTAL_SECRET`` (16 characters or more).
        session_ttl: lifetime of a session in seconds, counted from sign-in (absolute:
            a session cannot be extended by using it).
    """

    def __init__(self, secret: str, *, session_ttl: float = DEFAULT_SESSION_TTL) -> None:
        if len(secret) < 16:
            raise ValueError("the portal secret must be at least 16 characters")
        if session_ttl <= 0:
            raise ValueError("session_ttl must be positive")
        self.session_ttl = session_ttl
        self._links = _Signer(_derive(secret, "billing-sync portal link"), f"link{LINK_VERSION}")
        self._sessions = _Signer(
            _derive(secret, "billing-sync portal session"), f"session{SESSION_VERSION}"
        )
        self._csrf_key = _derive(secret, "billing-sync portal csrf")

    # --- links ------------------------------------------------------------------------

    def make_link_token(
        self, contact_sfid: str, *, ttl: float = DEFAULT_LINK_TTL, now: dt.datetime | None = None
    ) -> str:
        """A signed link token for ``contact_sfid``, valid for ``ttl`` seconds.

        Raises:
            ValueError: the contact Id is malformed or the ttl is out of range.
        """
        if not is_crm_id(contact_sfid):
            raise ValueError(f"{contact_sfid!r} is not a CRM Id")
        if not 0 < ttl <= MAX_LINK_TTL:
            raise ValueError(f"ttl must be between 0 and {MAX_LINK_TTL:g} seconds")
        expires = int(_now(now).timestamp() + ttl)
        return self._links.sign(
            {"v": LINK_VERSION, "c": contact_sfid, "e": expires, "n": secrets.token_urlsafe(12)}
        )

    def verify_link_token(self, token: str, *, now: dt.datetime | None = None) -> PortalLink:
        """Check a link token's signature and expiry.

        Raises:
            InvalidToken: the token is malformed, forged, tampered with or expired.
        """
        data = self._links.unsign(token)
        if data.get("v") != LINK_VERSION:
            raise InvalidToken("unknown version")
        contact = _contact_field(data)
        expires = _int_field(data, "e")
        nonce = data.get("n")
        if not isinstance(nonce, str) or not nonce:
            raise InvalidToken("missing nonce")
        if _now(now).timestamp() >= expires:
            raise InvalidToken("expired")
        return PortalLink(contact, dt.datetime.fromtimestamp(expires, UTC), nonce)

    def link_url(
        self,
        public_url: str,
        contact_sfid: str,
        *,
        ttl: float = DEFAULT_LINK_TTL,
        now: dt.datetime | None = None,
    ) -> str:
        """The full signed portal URL for ``contact_sfid`` under ``public_url``."""
        token = self.make_link_token(contact_sfid, ttl=ttl, now=now)
        return f"{public_url.rstrip('/')}{ENTER_PATH}?{urlencode({'token': token})}"

    # --- sessions ---------------------------------------------------------------------

    def new_session(self, contact_sfid: str, *, now: dt.datetime | None = None) -> PortalSession:
        """A fresh session for a contact who just opened a valid link."""
        issued = _now(now).replace(microsecond=0)
        return PortalSession(
            contact_sfid=contact_sfid,
            account_sfid=None,
            issued_at=issued,
            expires_at=issued + dt.timedelta(seconds=self.session_ttl),
            csrf_seed=secrets.token_urlsafe(16),
        )

    def dump_session(self, session: PortalSession) -> str:
        """The cookie value of ``session``."""
        return self._sessions.sign(
            {
                "v": SESSION_VERSION,
                "c": session.contact_sfid,
                "a": session.account_sfid,
                "i": int(session.issued_at.timestamp()),
                "e": int(session.expires_at.timestamp()),
                "x": session.csrf_seed,
            }
        )

    def load_session(self, value: str | None, *, now: dt.datetime | None = None) -> PortalSession:
        """Verify a cookie value.

        Raises:
            InvalidToken: the cookie is missing, malformed, forged, tampered with or expired.
        """
        if not value:
            raise InvalidToken("no session")
        data = self._sessions.unsign(value)
        if data.get("v") != SESSION_VERSION:
            raise InvalidToken("unknown version")
        contact = _contact_field(data)
        account = data.get("a")
        if account is not None and (not isinstance(account, str) or not is_crm_id(account)):
            raise InvalidToken("malformed account")
        issued = _int_field(data, "i")
        expires = _int_field(data, "e")
        seed = data.get("x")
        if not isinstance(seed, str) or not seed:
            raise InvalidToken("missing csrf seed")
        current = _now(now).timestamp()
        # The expiry is bounded by this server's lifetime setting too, so shortening the
        # setting also shortens sessions that are already out there.
        if current >= expires or current >= issued + self.session_ttl or issued > current + 300:
            raise InvalidToken("expired")
        return PortalSession(
            contact,
            account,
            dt.datetime.fromtimestamp(issued, UTC),
            dt.datetime.fromtimestamp(expires, UTC),
            seed,
        )

    # --- CSRF -------------------------------------------------------------------------

    def csrf_token(self, session: PortalSession) -> str:
        """The CSRF token that forms of this session must send back."""
        mac = hmac.new(self._csrf_key, session.csrf_seed.encode("ascii"), hashlib.sha256)
        return _b64encode(mac.digest())

    def check_csrf(self, session: PortalSession, token: str | None) -> bool:
        """True when ``token`` is this session's CSRF token."""
        if not token or len(token) > 128:
            return False
        return hmac.compare_digest(
            token.encode("ascii", "replace"), self.csrf_token(session).encode()
        )


def signed_link(settings: Settings, contact_sfid: str, *, ttl: float = DEFAULT_LINK_TTL) -> str:
    """The portal URL for ``contact_sfid`` under ``BILLING_SYNC_PUBLIC_URL``.

    Raises:
        SettingsError: ``BILLING_SYNC_PORTAL_SECRET`` is unset or too short.
        ValueError: the contact Id is malformed or the ttl is out of range.
    """
    signer = PortalSigner(settings.require_portal_secret())
    return signer.link_url(settings.public_url, contact_sfid, ttl=ttl)
