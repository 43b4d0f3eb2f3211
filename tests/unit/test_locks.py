"""Per-mapping locks: Redis (real server, db 15) and in-process."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from sync.service.locks import LocalLocks, RedisLocks, redis_client

pytestmark = pytest.mark.redis


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis_client(redis_url)
    yield c
    c.close()


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    p = f"test-locks-{uuid.uuid4().hex[:8]}"
    yield p
    for key in client.scan_iter(match=f"{p}:*"):
        client.delete(key)


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_given_lock_held_when_second_worker_tries_then_refused_until_released(client, prefix):
    locks = RedisLocks(client, prefix=prefix, ttl=10)
    first, second = locks.lock("accounts"), locks.lock("accounts")

    assert first.acquire()
    assert not second.acquire()
    assert locks.lock("contacts").acquire()
    assert locks.holder("accounts") == first.token

    first.release()

    assert second.acquire()
    second.release()
    assert locks.holder("accounts") is None


def test_given_holder_died_when_ttl_passes_then_lock_is_free(client, prefix):
    locks = RedisLocks(client, prefix=prefix, ttl=0.4)
    assert client.set(locks.lock_key("accounts"), "dead-worker", nx=True, px=400)

    assert not locks.lock("accounts").acquire()
    assert wait_until(lambda: locks.lock("accounts").acquire(), timeout=3)


def test_given_long_pass_when_renewing_then_lock_outlives_its_ttl(client, prefix):
    locks = RedisLocks(client, prefix=prefix, ttl=0.6)
    holder = locks.lock("accounts")
    assert holder.acquire()

    time.sleep(1.5)

    assert not locks.lock("accounts").acquire()
    assert locks.holder("accounts") == holder.token
    holder.release()
    assert locks.holder("accounts") is None


def test_given_expired_lock_taken_by_other_when_releasing_then_other_lock_kept(client, prefix):
    locks = RedisLocks(client, prefix=prefix, ttl=5)
    stale = locks.lock("accounts")
    assert stale.acquire()
    stale._stop.set()  # renewal stopped, as if the process hung
    client.set(locks.lock_key("accounts"), "other-worker", px=5000)

    stale.release()

    assert locks.holder("accounts") == "other-worker"


def test_given_lock_stolen_when_renewal_runs_then_holder_sees_it_lost(client, prefix):
    locks = RedisLocks(client, prefix=prefix, ttl=0.6)
    holder = locks.lock("accounts")
    assert holder.acquire()

    client.set(locks.lock_key("accounts"), "other-worker", px=5000)

    assert wait_until(lambda: holder.lost, timeout=3)
    holder.release()
    assert locks.holder("accounts") == "other-worker"


def test_given_key_vanished_when_renewal_runs_then_lock_taken_again(client, prefix):
    locks = RedisLocks(client, prefix=prefix, ttl=0.6)
    holder = locks.lock("accounts")
    assert holder.acquire()

    client.delete(locks.lock_key("accounts"))  # Redis restarted without persistence

    assert wait_until(lambda: locks.holder("accounts") == holder.token, timeout=3)
    assert not holder.lost
    holder.release()


def test_given_queued_marker_when_marking_again_then_refused_until_cleared(client, prefix):
    locks = RedisLocks(client, prefix=prefix, ttl=5)

    assert locks.mark_queued("accounts", 10)
    assert not locks.mark_queued("accounts", 10)
    locks.clear_queued("accounts")
    assert locks.mark_queued("accounts", 10)


def test_given_local_locks_when_contended_then_same_rules_as_redis():
    now = [0.0]
    locks = LocalLocks(clock=lambda: now[0])
    first, second = locks.lock("accounts"), locks.lock("accounts")

    assert first.acquire()
    assert not second.acquire()
    assert locks.holder("accounts") is not None
    first.release()
    assert second.acquire()
    second.release()
    assert locks.holder("accounts") is None

    assert locks.mark_queued("accounts", 10)
    assert not locks.mark_queued("accounts", 10)
    now[0] = 11.0
    assert locks.mark_queued("accounts", 10)
