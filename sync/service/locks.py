"""Per-mapping locks: two workers never pull the same mapping at once.

With Celery, the lock is a Redis key ``{prefix}:lock:{mapping}`` set with ``NX`` and an
expiry, holding a random token. While a pass runs, a renewal thread extends the expiry
(every third of it), so a long pass keeps its lock and a worker that dies (SIGKILL, lost
machine) loses it within one expiry. Release and renewal compare the token in a Lua
script, so a worker never deletes or extends a lock that expired and was taken by
another worker meanwhile. If Redis loses the key (a restart without persistence), the
renewal takes it again when nobody else holds it.

In one process (``billing-sync run`` without a broker) the same interface is served by
:class:`LocalLocks`, with threading locks.

Both providers also keep the "already queued" markers that stop the poller from queueing
a second pull of a mapping whose pull is waiting in the queue.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import redis

log = logging.getLogger(__name__)

# KEYS[1] lock key; ARGV[1] token; ARGV[2] expiry in ms.
# 1: extended; 2: the key was gone (Redis restarted or it expired) and is ours again;
# 0: someone else holds it.
_RENEW = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def owner_token() -> str:
    """A token naming this process (host and pid) plus a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class MappingLock(Protocol):
    """One mapping's lock, acquired without waiting."""

    name: str

    def acquire(self) -> bool:
        """Take the lock if it is free; True when taken."""
        ...

    def release(self) -> None:
        """Give the lock back (no-op when not held)."""
        ...

    @property
    def lost(self) -> bool:
        """True when the lock was taken by another owner while this one held it."""
        ...


class LockProvider(Protocol):
    """Makes locks and keeps queue markers, per mapping."""

    def lock(self, name: str) -> MappingLock:
        """A (not yet acquired) lock of mapping ``name``."""
        ...

    def holder(self, name: str) -> str | None:
        """Who holds mapping ``name``'s lock now, or None."""
        ...

    def mark_queued(self, name: str, ttl: float) -> bool:
        """Note that a pull of ``name`` is queued; False when one already was."""
        ...

    def clear_queued(self, name: str) -> None:
        """Forget the queue marker of ``name`` (its pull starts now)."""
        ...


class RedisLock:
    """A Redis lock with expiry, token-checked release and a renewal thread."""

    def __init__(
        self,
        client: redis.Redis,
        name: str,
        key: str,
        *,
        ttl: float,
        renew_every: float | None = None,
        token: str | None = None,
        scripts: tuple[Any, Any] | None = None,
    ) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.name = name
        self.key = key
        self.ttl = ttl
        self.renew_every = renew_every if renew_every is not None else ttl / 3
        self.token = token or owner_token()
        self._client = client
        renew, release = scripts or (
            client.register_script(_RENEW),
            client.register_script(_RELEASE),
        )
        self._renew_script = renew
        self._release_script = release
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._thread: threading.Thread | None = None
        self._held = False

    @property
    def ttl_ms(self) -> int:
        return max(1, int(self.ttl * 1000))

    @property
    def held(self) -> bool:
        """True between a successful :meth:`acquire` and :meth:`release`."""
        return self._held

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def acquire(self) -> bool:
        """Take the lock if free and start renewing it; True when taken.

        Raises:
            redis.RedisError: Redis cannot be reached.
        """
        if self._held:
            return True
        if not self._client.set(self.key, self.token, nx=True, px=self.ttl_ms):
            return False
        self._held = True
        self._stop.clear()
        self._lost.clear()
        self._thread = threading.Thread(
            target=self._renew_loop, name=f"lock-renew-{self.name}", daemon=True
        )
        self._thread.start()
        return True

    def renew(self) -> bool:
        """Extend the expiry once; False when another owner holds the lock.

        Raises:
            redis.RedisError: Redis cannot be reached.
        """
        result = int(self._renew_script(keys=[self.key], args=[self.token, self.ttl_ms]))
        if result == 2:
            log.warning("lock %s had vanished from Redis; taken again", self.key)
        return result != 0

    def _renew_loop(self) -> None:
        wait = self.renew_every
        while not self._stop.wait(wait):
            try:
                if not self.renew():
                    log.error("lock %s was taken by another worker", self.key)
                    self._lost.set()
                    return
                wait = self.renew_every
            except redis.RedisError as exc:
                # Keep trying, often: when Redis is back, renewing (or re-taking) the key
                # quickly is what keeps a second worker from starting the same mapping.
                log.warning("renewing lock %s failed: %s", self.key, exc)
                wait = min(0.5, self.renew_every)

    def release(self) -> None:
        """Stop renewing and delete the key if it still holds this owner's token."""
        if not self._held:
            return
        self._held = False
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        try:
            self._release_script(keys=[self.key], args=[self.token])
        except redis.RedisError as exc:
            # The key expires by itself within the ttl.
            log.warning("releasing lock %s failed: %s", self.key, exc)

    def __enter__(self) -> RedisLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class RedisLocks:
    """:class:`LockProvider` on Redis, keys under ``{prefix}:``."""

    def __init__(self, client: redis.Redis, *, prefix: str, ttl: float) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl = ttl
        self._scripts = (client.register_script(_RENEW), client.register_script(_RELEASE))

    def lock_key(self, name: str) -> str:
        return f"{self.prefix}:lock:{name}"

    def queued_key(self, name: str) -> str:
        return f"{self.prefix}:queued:{name}"

    def lock(self, name: str) -> RedisLock:
        return RedisLock(
            self.client, name, self.lock_key(name), ttl=self.ttl, scripts=self._scripts
        )

    def holder(self, name: str) -> str | None:
        value = self.client.get(self.lock_key(name))
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    def mark_queued(self, name: str, ttl: float) -> bool:
        return bool(self.client.set(self.queued_key(name), "1", nx=True, px=int(ttl * 1000)))

    def clear_queued(self, name: str) -> None:
        self.client.delete(self.queued_key(name))


class LocalLock:
    """A threading lock with the :class:`MappingLock` interface."""

    def __init__(self, name: str, owner: LocalLocks) -> None:
        self.name = name
        self._owner = owner
        self._held = False

    @property
    def lost(self) -> bool:
        return False

    def acquire(self) -> bool:
        if self._held:
            return True
        self._held = self._owner._take(self.name)
        return self._held

    def release(self) -> None:
        if self._held:
            self._owner._give(self.name)
            self._held = False

    def __enter__(self) -> LocalLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class LocalLocks:
    """:class:`LockProvider` inside one process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._mutex = threading.Lock()
        self._held: dict[str, str] = {}
        self._queued: dict[str, float] = {}
        self._clock = clock
        self._token = f"{socket.gethostname()}:{os.getpid()}"

    def _take(self, name: str) -> bool:
        with self._mutex:
            if name in self._held:
                return False
            self._held[name] = f"{self._token}:{threading.current_thread().name}"
            return True

    def _give(self, name: str) -> None:
        with self._mutex:
            self._held.pop(name, None)

    def lock(self, name: str) -> LocalLock:
        return LocalLock(name, self)

    def holder(self, name: str) -> str | None:
        with self._mutex:
            return self._held.get(name)

    def mark_queued(self, name: str, ttl: float) -> bool:
        now = self._clock()
        with self._mutex:
            until = self._queued.get(name)
            if until is not None and until > now:
                return False
            self._queued[name] = now + ttl
            return True

    def clear_queued(self, name: str) -> None:
        with self._mutex:
            self._queued.pop(name, None)


def redis_client(url: str) -> redis.Redis:
    """A Redis client for locks and heartbeats, with timeouts so an outage fails fast."""
    return redis.Redis.from_url(
        url,
        socket_timeout=5,
        socket_connect_timeout=3,
        health_check_interval=15,
        retry_on_timeout=True,
    )
