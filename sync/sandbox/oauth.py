"""The sandbox's OAuth 2.0 token endpoint and identity URL, as a 2027 org answers them.

Grants (``POST /services/oauth2/token``, form-encoded):

- ``urn:ietf:params:oauth:grant-type:jwt-bearer``: the assertion's RS256 signature is
  verified against the certificate registered for the consumer key (``--jwt-cert``);
  ``iss`` must be the consumer key, ``aud`` ``https://login.salesforce.com`` (or the
  My Domain URL), ``exp`` in the future and at most three minutes ahead, ``sub`` the
  active, pre-authorized user. No refresh token, as Salesforce.
- ``client_credentials``: only when the request reaches the My Domain host; on
  ``login.salesforce.com`` / ``test.salesforce.com`` it is ``invalid_grant`` "request not
  supported on this domain". The token runs as the app's run-as user. No refresh token.
- ``password``: blocked, as in orgs created since Summer '23, unless the sandbox runs
  with ``--allow-password-flow``.
- ``refresh_token``: for refresh tokens the web server flow would have issued
  (``POST /_sandbox/refresh-token`` stands for that consent).

Which host a request reached: the ``X-Forwarded-Host`` header a rewriting client or proxy
sets (:class:`sync.crm.session.InstanceSession` sends it), else ``Host``. Requests that
name no Salesforce host (a test calling ``http://127.0.0.1:PORT`` directly) reach the
instance itself, which is the My Domain host.

Every success carries ``access_token``, ``instance_url``, ``id`` (the identity URL, which
answers), ``token_type``, ``issued_at`` and ``signature``: base64 of HMAC-SHA256 over
``id + issued_at`` keyed with the consumer secret, as Salesforce documents it.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt import PyJWS
from jwt.exceptions import PyJWTError

from sync.sandbox.auth import ORG_ID, USER_ID, Credentials, SessionStore, basic_credentials
from sync.sandbox.clock import utc_now

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
LOGIN_HOSTS = ("login.salesforce.com", "test.salesforce.com")
MAX_ASSERTION_AHEAD = 180.0
"""Seconds: Salesforce wants the assertion's ``exp`` within three minutes."""
APPROVALS = ("pre_authorized", "self_authorize", "not_admin_approved")

Answer = tuple[int, dict[str, Any]]


def _error(error: str, description: str) -> Answer:
    return 400, {"error": error, "error_description": description}


def load_certificate(path: str) -> RSAPublicKey:
    """The RSA public key of a PEM X.509 certificate file.

    Raises:
        ValueError: the file is no PEM certificate with an RSA key.
    """
    with open(path, "rb") as handle:
        cert = x509.load_pem_x509_certificate(handle.read())
    key = cert.public_key()
    if not isinstance(key, RSAPublicKey):
        raise ValueError(f"{path}: the certificate's key is not RSA")
    return key


@dataclass
class LoginPolicy:
    """How the org lets clients in; the test hook ``/_sandbox/auth`` changes it.

    Attributes:
        my_domain: the org's My Domain host.
        jwt_key: public key of the certificate registered for the JWT bearer flow.
        soap_login: SOAP ``login()`` enabled for versions before 65.0.
        allow_password_flow: the OAuth username-password flow unblocked.
        approval: ``pre_authorized`` (the user's profile is on the app), ``self_authorize``
            (users must approve the app themselves, and this one has not), or
            ``not_admin_approved`` (admin-approved only, and this user is not).
        user_active: the integration user is active.
        run_as_user: the app has a run-as user for client credentials.
        view_all_data: the integration user has View All Data.
    """

    my_domain: str
    jwt_key: RSAPublicKey | None = None
    soap_login: bool = False
    allow_password_flow: bool = False
    approval: str = "pre_authorized"
    user_active: bool = True
    run_as_user: bool = True
    view_all_data: bool = True

    def describe(self) -> dict[str, Any]:
        """The policy as JSON."""
        return {
            "my_domain": self.my_domain,
            "jwt_certificate": self.jwt_key is not None,
            "soap_login": self.soap_login,
            "allow_password_flow": self.allow_password_flow,
            "approval": self.approval,
            "user_active": self.user_active,
            "run_as_user": self.run_as_user,
            "view_all_data": self.view_all_data,
        }

    def configure(self, spec: dict[str, Any]) -> None:
        """Apply a hook body; unknown keys or values are refused.

        Raises:
            ValueError: a key or value the policy does not have.
        """
        for key, value in spec.items():
            if key in (
                "soap_login",
                "allow_password_flow",
                "user_active",
                "run_as_user",
                "view_all_data",
            ):
                if not isinstance(value, bool):
                    raise ValueError(f"{key} must be true or false")
                setattr(self, key, value)
            elif key == "approval":
                if value not in APPROVALS:
                    raise ValueError(f"approval must be one of {', '.join(APPROVALS)}")
                self.approval = value
            else:
                raise ValueError(f"unknown login policy setting {key!r}")


@dataclass
class RefreshTokens:
    """Refresh tokens issued (by the web server flow's stand-in); thread-safe."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _tokens: set[str] = field(default_factory=set)

    def issue(self) -> str:
        """A new refresh token."""
        token = f"5Aep861{secrets.token_urlsafe(40)}"
        with self._lock:
            self._tokens.add(token)
        return token

    def valid(self, token: str | None) -> bool:
        """True for a token this org issued and has not revoked."""
        with self._lock:
            return token is not None and token in self._tokens

    def revoke_all(self) -> None:
        """Forget every refresh token."""
        with self._lock:
            self._tokens.clear()


def requested_host(headers: dict[str, str]) -> str:
    """The host name the client asked for (lower-case names in ``headers``)."""
    raw = headers.get("x-forwarded-host") or headers.get("host") or ""
    return raw.split(",")[0].strip().split(":")[0].lower()


@dataclass
class TokenEndpoint:
    """``/services/oauth2/token`` and the identity URL of one sandbox org."""

    credentials: Credentials
    sessions: SessionStore
    policy: LoginPolicy
    refresh: RefreshTokens = field(default_factory=RefreshTokens)

    def token(self, form: dict[str, str], headers: dict[str, str], base_url: str) -> Answer:
        """Answer one token request.

        Args:
            form: the decoded form body.
            headers: request headers, lower-case names.
            base_url: the sandbox's own URL (the instance when no Salesforce host was named).

        Returns:
            (HTTP status, JSON body).
        """
        host = requested_host(headers)
        grant = form.get("grant_type")
        if grant == JWT_GRANT:
            return self._jwt(form.get("assertion") or "", host, base_url)
        client_id = form.get("client_id")
        client_secret = form.get("client_secret")
        if client_id is None:
            client_id, client_secret = basic_credentials(headers.get("authorization"))
        if grant not in ("password", "client_credentials", "refresh_token"):
            return _error("unsupported_grant_type", "grant type not supported")
        if client_id != self.credentials.client_id:
            return _error("invalid_client_id", "client identifier invalid")
        if grant == "refresh_token":
            # Refresh needs the secret only when the app requires it; this one does.
            if not self.credentials.client_ok(client_id, client_secret):
                return _error("invalid_client", "invalid client credentials")
            if not self.refresh.valid(form.get("refresh_token")):
                return _error("invalid_grant", "expired access/refresh token")
            return 200, self._issue(host, base_url)
        if not self.credentials.client_ok(client_id, client_secret):
            return _error("invalid_client", "invalid client credentials")
        if grant == "client_credentials":
            if host in LOGIN_HOSTS:
                return _error("invalid_grant", "request not supported on this domain")
            if not self.policy.run_as_user:
                return _error("invalid_grant", "no client credentials user enabled")
            return 200, self._issue(host, base_url)
        if not self.policy.allow_password_flow:
            return _error("invalid_grant", "authentication failure")
        if not self.credentials.password_ok(form.get("username"), form.get("password")):
            return _error("invalid_grant", "authentication failure")
        return 200, self._issue(host, base_url)

    def _jwt(self, assertion: str, host: str, base_url: str) -> Answer:
        try:
            unverified = orjson.loads(
                PyJWS().decode(assertion, options={"verify_signature": False})
            )
        except (PyJWTError, orjson.JSONDecodeError, ValueError):
            return _error("invalid_grant", "invalid assertion")
        if not isinstance(unverified, dict):
            return _error("invalid_grant", "invalid assertion")
        if unverified.get("iss") != self.credentials.client_id:
            return _error("invalid_client_id", "client identifier invalid")
        if self.policy.jwt_key is None:
            return _error("invalid_grant", "invalid assertion")
        try:
            PyJWS().decode(assertion, self.policy.jwt_key, algorithms=["RS256"])
        except PyJWTError:
            return _error("invalid_grant", "invalid assertion")
        audiences = {"https://login.salesforce.com", f"https://{self.policy.my_domain}"}
        aud = unverified.get("aud")
        aud_list = aud if isinstance(aud, list) else [aud]
        if not any(isinstance(a, str) and a.rstrip("/") in audiences for a in aud_list):
            return _error("invalid_grant", "audience is invalid")
        try:
            # simple-salesforce sends exp as a string of digits; Salesforce takes both.
            exp = float(unverified["exp"])
        except (KeyError, TypeError, ValueError):
            return _error("invalid_grant", "invalid assertion")
        now = utc_now().timestamp()
        if exp <= now:
            return _error("invalid_grant", "expired access/refresh token")
        if exp > now + MAX_ASSERTION_AHEAD + 5:
            return _error("invalid_grant", "invalid assertion")
        subject = unverified.get("prn") or unverified.get("sub")
        if not isinstance(subject, str) or subject.lower() != self.credentials.username.lower():
            return _error("invalid_grant", "user hasn't approved this consumer")
        if not self.policy.user_active:
            return _error("invalid_grant", "user is locked")
        if self.policy.approval == "self_authorize":
            return _error("invalid_grant", "user hasn't approved this consumer")
        if self.policy.approval == "not_admin_approved":
            return _error("invalid_app_access", "user is not admin approved to access this app")
        return 200, self._issue(host, base_url)

    def _issue(self, host: str, base_url: str) -> dict[str, Any]:
        token = self.sessions.issue()
        issued_at = str(int(time.time() * 1000))
        named = host.endswith(".salesforce.com")
        # A client that named a Salesforce host is sent to the My Domain instance, as a
        # real org sends it; one that called the sandbox directly stays on its address.
        instance_url = f"https://{self.policy.my_domain}" if named else base_url
        login_host = host if named else None
        identity_base = f"https://{login_host}" if login_host else base_url
        identity = f"{identity_base}/id/{ORG_ID}/{USER_ID}"
        signature = base64.b64encode(
            hmac.new(
                self.credentials.client_secret.encode(),
                (identity + issued_at).encode(),
                "sha256",
            ).digest()
        ).decode()
        return {
            "access_token": token,
            "instance_url": instance_url,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
            "signature": signature,
            "scope": "api",
        }

    def identity(self, org_id: str, user_id: str, base_url: str) -> Answer:
        """``GET /id/{org}/{user}``: who the token belongs to."""
        if org_id != ORG_ID or user_id != USER_ID:
            return 404, {"error": "Bad_Id", "error_description": "Bad id"}
        return 200, {
            "id": f"{base_url}/id/{ORG_ID}/{USER_ID}",
            "asserted_user": True,
            "user_id": USER_ID,
            "organization_id": ORG_ID,
            "username": self.credentials.username,
            "nick_name": "integration",
            "display_name": "Integration User",
            "email": self.credentials.username,
            "active": self.policy.user_active,
            "user_type": "STANDARD",
            "language": "en_US",
            "locale": "en_US",
            "utcOffset": 0,
            "urls": {
                "rest": f"https://{self.policy.my_domain}/services/data/v{{version}}/",
                "sobjects": f"https://{self.policy.my_domain}/services/data/v{{version}}/sobjects/",
            },
        }
