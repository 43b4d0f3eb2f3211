"""Repository of ``service_state``: small JSON documents shared by every process.

Updates are optimistic (a ``version`` column): read, compute, write back only if nobody
wrote in between, else read again. That works the same on PostgreSQL and SQLite and
holds no row lock while the caller computes.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from sync.db.models import ServiceState

T = TypeVar("T")

BUDGET_KEY = "budget"
API_USAGE_KEY = "crm:api_usage"
FIELD_LIMITS_KEY = "crm:field-limits"
HEARTBEAT_PREFIX = "heartbeat:"


class StateConflictError(RuntimeError):
    """An update lost the race to concurrent writers too many times."""


def read(engine: Engine, key: str) -> dict[str, Any] | None:
    """The document stored under ``key``, or None."""
    with engine.connect() as conn:
        raw = conn.execute(select(ServiceState.value).where(ServiceState.key == key)).scalar()
    return None if raw is None else dict(json.loads(raw))


def field_limits(engine: Engine) -> dict[str, dict[str, int]]:
    """The CRM's text field lengths by table and column (empty before the first start).

    The service stores them at start from the CRM's describe answers; the portal reads
    them to refuse a value the CRM would refuse, without calling the CRM.
    """
    doc = read(engine, FIELD_LIMITS_KEY) or {}
    return {str(t): {str(c): int(n) for c, n in cols.items()} for t, cols in doc.items()}


def read_prefix(engine: Engine, prefix: str) -> dict[str, tuple[dict[str, Any], dt.datetime]]:
    """Every document whose key starts with ``prefix``: key to (document, updated_at)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(ServiceState.key, ServiceState.value, ServiceState.updated_at).where(
                ServiceState.key.startswith(prefix, autoescape=True)
            )
        ).all()
    return {row.key: (dict(json.loads(row.value)), row.updated_at) for row in rows}


def write(engine: Engine, key: str, value: dict[str, Any], now: dt.datetime) -> None:
    """Store ``value`` under ``key``, replacing what was there."""

    def replace_all(_: dict[str, Any] | None) -> tuple[dict[str, Any], None]:
        return value, None

    update_document(engine, key, replace_all, now)


def remove(engine: Engine, key: str) -> None:
    """Delete ``key`` (no error when absent)."""
    with engine.begin() as conn:
        conn.execute(delete(ServiceState).where(ServiceState.key == key))


def update_document(
    engine: Engine,
    key: str,
    change: Callable[[dict[str, Any] | None], tuple[dict[str, Any], T]],
    now: dt.datetime,
    *,
    attempts: int = 20,
) -> T:
    """Apply ``change`` to the document under ``key`` atomically.

    Args:
        engine: the billing database.
        key: the document's key.
        change: pure function from the current document (None when absent) to the new
            document and a result for the caller; it may run more than once.
        now: the time recorded as ``updated_at``.
        attempts: how many lost races to tolerate.

    Returns:
        What the successful call of ``change`` returned.

    Raises:
        StateConflictError: every attempt lost the race.
    """
    for _ in range(attempts):
        with engine.connect() as conn:
            row = conn.execute(
                select(ServiceState.value, ServiceState.version).where(ServiceState.key == key)
            ).first()
        current = None if row is None else dict(json.loads(row.value))
        new, result = change(current)
        payload = json.dumps(new, separators=(",", ":"), sort_keys=True)
        if row is None:
            try:
                with engine.begin() as conn:
                    conn.execute(
                        insert(ServiceState).values(
                            key=key, value=payload, version=1, updated_at=now
                        )
                    )
            except IntegrityError:
                continue
            return result
        with engine.begin() as conn:
            written = conn.execute(
                update(ServiceState)
                .where(ServiceState.key == key, ServiceState.version == row.version)
                .values(value=payload, version=row.version + 1, updated_at=now)
            ).rowcount
        if written:
            return result
    raise StateConflictError(f"service_state {key!r}: too many concurrent updates")
