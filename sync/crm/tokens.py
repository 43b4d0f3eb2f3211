"""One access token per deployment: where it is kept, and who renews it.

Every process of a deployment (web, workers, beat, the listener) sends with the same
access token. With a broker configured the token lives in Redis under
``{prefix}:crm-token:{login}``; without one, in the process. When a request answers 401
``INVALID_SESSION_ID``, the process that noticed renews the token under a lock
(``{prefix}:crm-token-lock:{login}``, ``SET NX PX``), and every other process that
noticed meanwhile waits for the lock and then takes the token the first one stored,
instead of logging in too: one login per expiry, however many workers.

A renewal compares the stale token it was handed with the stored one: if they differ,
somebody already renewed and the stored one is returned without a login.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import orjson
import redis

from sync.crm.auth import Authentication

logger = logging.getLogger("sync.crm")

TOKEN_TTL = 12 * 3600.0
"""Seconds a stored token is kept at most; the org's session timeout ends it sooner."""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class TokenStore(Protocol):
    """Where the deployment's access token is kept."""

    def current(self) -> Authentication | None:
        """The stored token, if any."""

    def renew(
        self, stale: Authentication | None, login: Callable[[], Authentication]
    ) -> Authentication:
        """A token other than ``stale``: the stored one, or a new login's.

        ``stale`` None means "no token yet": a stored one is taken as is.
        """


class LocalTokens:
    """The token of one process (no broker): a threading lock orders the renewals."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._auth: Authentication | None = None

    def current(self) -> Authentication | None:
        """The token, if logged in."""
        return self._auth

    def renew(
        self, stale: Authentication | None, login: Callable[[], Authentication]
    ) -> Authentication:
        """Log in unless another thread already replaced ``stale``."""
        with self._lock:
            if self._auth is None or (stale is not None and self._auth == stale):
                self._auth = login()
            return self._auth


def _encode(auth: Authentication) -> bytes:
    return orjson.dumps(
        {
            "session_id": auth.session_id,
            "instance": auth.instance,
            "flow": auth.flow,
            "identity_url": auth.identity_url,
            "issued_at": auth.issued_at,
        }
    )


def _decode(raw: Any) -> Authentication | None:
    if not isinstance(raw, bytes | str):
        return None
    try:
        data = orjson.loads(raw)
        return Authentication(**{k: str(data[k]) for k in data})
    except (orjson.JSONDecodeError, TypeError, KeyError):
        return None  # a value this version does not read: logging in again replaces it


class RedisTokens:
    """The token of every process of a deployment, in Redis.

    Args:
        client: the Redis connection (the broker's).
        prefix: key prefix of the deployment (``BILLING_SYNC_REDIS_PREFIX``).
        login_key: what identifies the login (flow, host, app, user; no secret).
        lock_ttl: seconds a renewal may hold the lock (a crashed renewer's lock expires).
        wait: seconds a process waits for another's renewal before giving up.
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        login_key: str,
        *,
        lock_ttl: float = 60.0,
        wait: float = 90.0,
    ) -> None:
        digest = hashlib.sha256(login_key.encode()).hexdigest()[:16]
        self.client = client
        self.key = f"{prefix}:crm-token:{digest}"
        self.lock_key = f"{prefix}:crm-token-lock:{digest}"
        self.lock_ttl = lock_ttl
        self.wait = wait
        self._local = threading.Lock()
        self._release = client.register_script(_RELEASE)

    def current(self) -> Authentication | None:
        """The stored token, if any."""
        return _decode(self.client.get(self.key))

    def renew(
        self, stale: Authentication | None, login: Callable[[], Authentication]
    ) -> Authentication:
        """Take the stored token if it is not ``stale``; else log in under the lock.

        Raises:
            TimeoutError: another process held the lock for longer than ``wait``.
            CrmError: the login failed (the lock is released).
        """
        # Threads of one process queue here, so only one of them talks to Redis's lock.
        with self._local:
            stored = self.current()
            if stored is not None and (stale is None or stored != stale):
                return stored
            token = uuid.uuid4().hex
            deadline = time.monotonic() + self.wait
            while not self.client.set(self.lock_key, token, nx=True, px=int(self.lock_ttl * 1000)):
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"another process has been renewing the CRM token for {self.wait:.0f} s"
                    )
                time.sleep(0.05)
                stored = self.current()
                if stored is not None and (stale is None or stored != stale):
                    return stored
            try:
                stored = self.current()
                if stored is not None and (stale is None or stored != stale):
                    return stored
                fresh = login()
                self.client.set(self.key, _encode(fresh), px=int(TOKEN_TTL * 1000))
                return fresh
            finally:
                self._release(keys=[self.lock_key], args=[token])
