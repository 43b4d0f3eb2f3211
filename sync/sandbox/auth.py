"""Logins and sessions: SOAP ``login``, session expiry (OAuth grants: :mod:`.oauth`).

The SOAP answer carries exactly what simple-salesforce reads from it (unprefixed
``sessionId`` and ``serverUrl``), and a failed login is the SOAP fault whose
``sf:exceptionCode`` it turns into ``SalesforceAuthenticationFailed``. Sessions expire
after ``ttl`` seconds without use, like Salesforce's session timeout.
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from html import escape

from defusedxml import ElementTree

from sync.sandbox import ids

ORG_ID = ids.make_id("00D", 1)
USER_ID = ids.make_id("005", 1)
_PARTNER_NS = "{urn:partner.soap.sforce.com}"
_INVALID_LOGIN = "Invalid username, password, security token; or user locked out."
FIRST_VERSION_WITHOUT_SOAP_LOGIN = 65.0
VERSION_NUMBER = re.compile(r"^\d{1,3}\.\d$")
SOAP_LOGIN_GONE = (
    "The SOAP Login operation is not available in the API version specified ({version})"
)
SOAP_LOGIN_DISABLED = (
    "SOAP API login() is disabled by default in this org. An administrator can enable it "
    "under Setup > User Interface > Enable SOAP API login()"
)


@dataclass(frozen=True)
class Credentials:
    """The one user and connected app the sandbox accepts.

    The defaults are the sandbox's published test credentials, not secrets.
    """

    username: str = "admin@sandbox.local"
    password: str = "sandbox"  # noqa: S105
    security_token: str = "sandbox-token"  # noqa: S105
    client_id: str = "billing-sync"
    client_secret: str = "sandbox-secret"  # noqa: S105

    def password_ok(self, username: str | None, password: str | None) -> bool:
        """True for the right username and password followed by the security token."""
        if username is None or password is None:
            return False
        expected = self.password + self.security_token
        return hmac.compare_digest(username.lower(), self.username.lower()) and (
            hmac.compare_digest(password.encode(), expected.encode())
        )

    def client_ok(self, client_id: str | None, client_secret: str | None) -> bool:
        """True for the connected app's consumer key and secret."""
        return (
            client_id is not None
            and client_secret is not None
            and hmac.compare_digest(client_id.encode(), self.client_id.encode())
            and hmac.compare_digest(client_secret.encode(), self.client_secret.encode())
        )


class SessionStore:
    """Issued session ids and their expiry; thread-safe."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._sessions: dict[str, float] = {}

    def issue(self) -> str:
        """A new session id, valid for ``ttl`` seconds of inactivity."""
        token = f"{ORG_ID[:15]}!{secrets.token_urlsafe(48)}"
        now = time.monotonic()
        with self._lock:
            self._sessions = {t: exp for t, exp in self._sessions.items() if exp > now}
            self._sessions[token] = now + self.ttl
        return token

    def check(self, token: str | None) -> bool:
        """True when ``token`` is a live session (its lifetime restarts)."""
        if not token:
            return False
        now = time.monotonic()
        with self._lock:
            expires = self._sessions.get(token)
            if expires is None or expires <= now:
                self._sessions.pop(token, None)
                return False
            self._sessions[token] = now + self.ttl
            return True

    def expire_all(self) -> int:
        """End every session; returns how many there were."""
        with self._lock:
            count = len(self._sessions)
            self._sessions.clear()
            return count


def bearer_token(authorization: str | None) -> str | None:
    """The session id of an ``Authorization: Bearer|OAuth <id>`` header."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() not in ("bearer", "oauth"):
        return None
    return token.strip() or None


def parse_soap_login(body: bytes) -> tuple[str | None, str | None]:
    """(username, password) from a SOAP ``login`` envelope; (None, None) if malformed."""
    try:
        root = ElementTree.fromstring(body)
    except (ElementTree.ParseError, ValueError):
        return None, None
    for element in root.iter():
        if element.tag in (f"{_PARTNER_NS}login", "login"):
            username = element.find(f"{_PARTNER_NS}username")
            password = element.find(f"{_PARTNER_NS}password")
            return (
                None if username is None else (username.text or ""),
                None if password is None else (password.text or ""),
            )
    return None, None


def soap_login_response(session_id: str, base_url: str, version: str, ttl: float) -> str:
    """The ``loginResponse`` envelope of a successful SOAP login."""
    server_url = f"{base_url}/services/Soap/u/{version}/{ORG_ID[:15]}"
    metadata_url = f"{base_url}/services/Soap/m/{version}/{ORG_ID[:15]}"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns="urn:partner.soap.sforce.com" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body><loginResponse><result>"
        f"<metadataServerUrl>{escape(metadata_url)}</metadataServerUrl>"
        "<passwordExpired>false</passwordExpired>"
        "<sandbox>true</sandbox>"
        f"<serverUrl>{escape(server_url)}</serverUrl>"
        f"<sessionId>{escape(session_id)}</sessionId>"
        f"<userId>{USER_ID}</userId>"
        "<userInfo>"
        f"<organizationId>{ORG_ID}</organizationId>"
        "<organizationName>billing-sync sandbox</organizationName>"
        f"<sessionSecondsValid>{int(ttl)}</sessionSecondsValid>"
        f"<userId>{USER_ID}</userId>"
        "</userInfo>"
        "</result></loginResponse></soapenv:Body></soapenv:Envelope>"
    )


def soap_fault(code: str = "INVALID_LOGIN", message: str = _INVALID_LOGIN) -> str:
    """The SOAP fault of a failed login (sent with HTTP 500)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:sf="urn:fault.partner.soap.sforce.com" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body><soapenv:Fault>"
        f"<faultcode>sf:{code}</faultcode>"
        f"<faultstring>{code}: {escape(message)}</faultstring>"
        '<detail><sf:LoginFault xsi:type="sf:LoginFault">'
        f"<sf:exceptionCode>{code}</sf:exceptionCode>"
        f"<sf:exceptionMessage>{escape(message)}</sf:exceptionMessage>"
        "</sf:LoginFault></detail>"
        "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )


def basic_credentials(authorization: str | None) -> tuple[str | None, str | None]:
    """(client_id, client_secret) of an ``Authorization: Basic`` header."""
    if not authorization:
        return None, None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None, None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else (None, None)
