"""The one settings object: every environment variable billing-sync reads, read once."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

DEFAULT_DATABASE_URL = "sqlite:///billing-sync.db"
DEFAULT_API_VERSION = "68.0"  # Winter '27, the current release
AUTH_FLOWS = ("jwt", "client_credentials", "password")
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"


class SettingsError(ValueError):
    """An environment variable holds a value billing-sync cannot use."""


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={raw!r} must be between {low:g} and {high:g}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r} must be on or off")


@dataclass(frozen=True)
class Settings:
    """Configuration of one billing-sync process.

    Build it with :meth:`from_env`; tests build it directly or with :meth:`with_`.
    """

    database_url: str = DEFAULT_DATABASE_URL
    broker_url: str | None = None
    salesforce_username: str | None = None
    salesforce_password: str | None = field(default=None, repr=False)
    salesforce_security_token: str | None = field(default=None, repr=False)
    salesforce_domain: str | None = None
    salesforce_auth: str | None = None
    salesforce_consumer_key: str | None = None
    salesforce_consumer_secret: str | None = field(default=None, repr=False)
    salesforce_private_key_file: str | None = None
    salesforce_my_domain: str | None = None
    salesforce_instance_url: str | None = None
    salesforce_api_version: str = DEFAULT_API_VERSION
    portal_secret: str | None = field(default=None, repr=False)
    public_url: str = DEFAULT_PUBLIC_URL
    pull_interval: float = 10.0
    api_budget: float = 0.2
    billing_admin_role: str = "Billing Admin"
    mappings_dir: str | None = None
    lookback_seconds: float = 60.0
    pull_batch_size: int = 2000
    redis_prefix: str = "billing-sync"
    lock_ttl: float = 60.0
    reconcile_interval: float = 3600.0
    push_interval: float = 10.0
    task_time_limit: float = 1800.0
    # -- accepted changes (the write side)
    terms_file: str | None = None
    payment_gateway: str | None = None
    push_lease: float = 60.0
    # --- monitoring
    ops_token: str | None = field(default=None, repr=False)
    log_format: str = "text"
    # worker processes of the portal in `run` with a broker (the web process)
    web_concurrency: int = field(default_factory=lambda: os.cpu_count() or 1)
    # Bulk API 2.0 loads (sync/bulk/)
    bulk_threshold: int = 10_000
    bulk_page_size: int = 100_000
    bulk_give_up: float = 1800.0
    # Change Data Capture: events trigger the pulls; polling is the safety net.
    events_enabled: bool = True
    safety_interval: float = 300.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``env`` (default: ``os.environ``).

        Raises:
            SettingsError: a variable is present but unusable; the message names it.
        """
        env = os.environ if env is None else env

        def opt(name: str) -> str | None:
            value = env.get(name)
            return value if value else None

        return cls(
            database_url=opt("BILLING_SYNC_DATABASE_URL") or DEFAULT_DATABASE_URL,
            broker_url=opt("BILLING_SYNC_BROKER_URL"),
            salesforce_username=opt("SALESFORCE_USERNAME"),
            salesforce_password=opt("SALESFORCE_PASSWORD"),
            salesforce_security_token=opt("SALESFORCE_SECURITY_TOKEN"),
            salesforce_domain=_domain(opt("SALESFORCE_DOMAIN")),
            salesforce_auth=_auth_flow(opt("SALESFORCE_AUTH")),
            salesforce_consumer_key=opt("SALESFORCE_CONSUMER_KEY"),
            salesforce_consumer_secret=opt("SALESFORCE_CONSUMER_SECRET"),
            salesforce_private_key_file=opt("SALESFORCE_PRIVATE_KEY_FILE"),
            salesforce_my_domain=_my_domain(opt("SALESFORCE_MY_DOMAIN")),
            salesforce_instance_url=(opt("SALESFORCE_INSTANCE_URL") or "").rstrip("/") or None,
            salesforce_api_version=opt("SALESFORCE_API_VERSION") or DEFAULT_API_VERSION,
            portal_secret=opt("BILLING_SYNC_PORTAL_SECRET"),
            public_url=(opt("BILLING_SYNC_PUBLIC_URL") or DEFAULT_PUBLIC_URL).rstrip("/"),
            pull_interval=_float(env, "BILLING_SYNC_PULL_INTERVAL", 10.0, 0.5, 86400.0),
            api_budget=_float(env, "BILLING_SYNC_API_BUDGET", 0.2, 0.001, 1.0),
            billing_admin_role=opt("BILLING_SYNC_ADMIN_ROLE") or "Billing Admin",
            mappings_dir=opt("BILLING_SYNC_MAPPINGS_DIR"),
            lookback_seconds=_float(env, "BILLING_SYNC_LOOKBACK_SECONDS", 60.0, 0.0, 86400.0),
            pull_batch_size=int(_float(env, "BILLING_SYNC_PULL_BATCH_SIZE", 2000, 200, 2000)),
            redis_prefix=opt("BILLING_SYNC_REDIS_PREFIX") or "billing-sync",
            lock_ttl=_float(env, "BILLING_SYNC_LOCK_TTL", 60.0, 3.0, 3600.0),
            reconcile_interval=_float(
                env, "BILLING_SYNC_RECONCILE_INTERVAL", 3600.0, 10.0, 7 * 86400.0
            ),
            push_interval=_float(env, "BILLING_SYNC_PUSH_INTERVAL", 10.0, 0.5, 86400.0),
            task_time_limit=_float(env, "BILLING_SYNC_TASK_TIME_LIMIT", 1800.0, 10.0, 86400.0),
            terms_file=opt("BILLING_SYNC_TERMS_FILE"),
            payment_gateway=opt("BILLING_SYNC_PAYMENT_GATEWAY"),
            push_lease=_float(env, "BILLING_SYNC_PUSH_LEASE", 60.0, 1.0, 3600.0),
            ops_token=_ops_token(opt("BILLING_SYNC_OPS_TOKEN")),
            log_format=_log_format(opt("BILLING_SYNC_LOG_FORMAT")),
            web_concurrency=int(
                _float(env, "BILLING_SYNC_WEB_CONCURRENCY", os.cpu_count() or 1, 1, 256)
            ),
            bulk_threshold=int(_float(env, "BILLING_SYNC_BULK_THRESHOLD", 10_000, 0, 1e12)),
            bulk_page_size=int(_float(env, "BILLING_SYNC_BULK_PAGE_SIZE", 100_000, 1000, 1e6)),
            bulk_give_up=_float(env, "BILLING_SYNC_BULK_TIMEOUT", 1800.0, 5.0, 86400.0),
            events_enabled=_bool(env, "BILLING_SYNC_EVENTS", True),
            safety_interval=_float(env, "BILLING_SYNC_SAFETY_INTERVAL", 300.0, 1.0, 86400.0),
        )

    def with_(self, **changes: Any) -> Settings:
        """Return a copy with ``changes`` applied."""
        return replace(self, **changes)

    @property
    def uses_embedded_crm(self) -> bool:
        """True when no CRM login is configured: the embedded sandbox stands in."""
        return (
            self.salesforce_username is None
            and self.salesforce_consumer_key is None
            and self.salesforce_auth is None
        )

    @property
    def auth_flow(self) -> str | None:
        """The login flow: ``SALESFORCE_AUTH``, or the one the other variables imply.

        A private key means the JWT bearer flow; a consumer secret with a My Domain
        means client credentials; a password means the legacy password flow. None when
        nothing is configured (the sandbox's default login).
        """
        if self.salesforce_auth is not None:
            return self.salesforce_auth
        if self.salesforce_private_key_file:
            return "jwt"
        if self.salesforce_consumer_secret and self.salesforce_my_domain:
            return "client_credentials"
        if self.salesforce_password:
            return "password"
        return None

    def require_portal_secret(self) -> str:
        """The portal's HMAC key.

        Raises:
            SettingsError: ``BILLING_SYNC_PORTAL_SECRET`` is unset or too short.
        """
        if not self.portal_secret:
            raise SettingsError(
                "BILLING_SYNC_PORTAL_SECRET is not set: portal links cannot be signed"
            )
        if len(self.portal_secret) < 16:
            raise SettingsError("BILLING_SYNC_PORTAL_SECRET must be at least 16 characters")
        return self.portal_secret


def _ops_token(raw: str | None) -> str | None:
    if raw is not None and len(raw) < 16:
        raise SettingsError("BILLING_SYNC_OPS_TOKEN must be at least 16 characters")
    return raw


def _auth_flow(raw: str | None) -> str | None:
    if raw is None:
        return None
    value = raw.strip().lower()
    if value not in AUTH_FLOWS:
        raise SettingsError(f"SALESFORCE_AUTH={raw!r} must be one of {', '.join(AUTH_FLOWS)}")
    return value


def _domain(raw: str | None) -> str | None:
    # login/test for the JWT audience; the legacy password flow also took a My Domain
    # prefix (acme.my) here, which the JWT flow refuses when the client is built.
    return None if raw is None else raw.strip().lower()


def _my_domain(raw: str | None) -> str | None:
    """``acme.my.salesforce.com`` from that host, or from an https URL naming it."""
    if raw is None:
        return None
    host = raw.strip().lower().removeprefix("https://").rstrip("/")
    if not host or "/" in host or ":" in host or not host.endswith(".salesforce.com"):
        raise SettingsError(
            f"SALESFORCE_MY_DOMAIN={raw!r} must be the org's My Domain host, "
            "e.g. acme.my.salesforce.com"
        )
    return host


def _log_format(raw: str | None) -> str:
    value = (raw or "text").lower()
    if value not in ("text", "json"):
        raise SettingsError(f"BILLING_SYNC_LOG_FORMAT={raw!r} must be text or json")
    return value


def demo_secret() -> str:
    """A fresh random portal secret, for `billing-sync demo` only."""
    return secrets.token_urlsafe(32)
