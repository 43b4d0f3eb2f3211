"""How a sandbox is set up: address, storage, seed, credentials and limits."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SandboxConfig:
    """Settings of one sandbox CRM.

    Attributes:
        host: interface to listen on.
        port: TCP port; 0 picks a free one.
        db_path: SQLite file to persist to; None keeps the data in memory.
        seed: accounts to generate at startup (only into an empty database).
        seed_random: seed of the generated data (same value, same data).
        username: the one user's login.
        password: its password.
        security_token: appended to the password at login, as Salesforce requires.
        session_ttl: seconds a session lives without use.
        daily_limit: API requests allowed over a rolling 24 hours.
        retention: seconds a deleted record stays in queryAll before it is purged.
        client_id: OAuth consumer key of the connected app.
        client_secret: OAuth consumer secret of the connected app.
        cometd_timeout: seconds a CometD ``/meta/connect`` is held without events.
        cometd_idle_timeout: seconds a CometD client may stay silent after an answer.
        event_delivery_limit: change events delivered per rolling 24 hours
            (``DailyDeliveredPlatformEvents``).
        event_retention: seconds change events stay available for replay.
        cdc_entities: objects selected for Change Data Capture (None: every object).
        jwt_cert: PEM certificate registered for the JWT bearer flow (None: no JWT).
        soap_login: SOAP ``login()`` enabled for API versions before 65.0 (off, as in
            orgs created since Winter '26).
        allow_password_flow: the OAuth username-password flow unblocked (blocked, as in
            orgs created since Summer '23).
        my_domain: the org's My Domain host; client credentials work only there.
    """

    host: str = "127.0.0.1"
    port: int = 0
    db_path: str | None = None
    seed: int = 0
    seed_random: int = 1
    username: str = "admin@sandbox.local"
    password: str = "sandbox"  # noqa: S105 - the sandbox's published test login
    security_token: str = "sandbox-token"  # noqa: S105
    session_ttl: float = 7200.0
    daily_limit: int = 100_000
    retention: float = 15 * 86400.0
    client_id: str = "billing-sync"
    client_secret: str = "sandbox-secret"  # noqa: S105
    cometd_timeout: float = 110.0
    cometd_idle_timeout: float = 40.0
    event_delivery_limit: int = 50_000
    event_retention: float = 72 * 3600.0
    cdc_entities: list[str] | None = None
    jwt_cert: str | None = None
    soap_login: bool = False
    allow_password_flow: bool = False
    my_domain: str = "sandbox.my.salesforce.com"
