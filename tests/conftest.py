"""Shared fixtures: databases (SQLite always, PostgreSQL when configured) and Redis.

Tests that need PostgreSQL or Redis read ``BILLING_SYNC_TEST_POSTGRES_URL`` /
``BILLING_SYNC_TEST_REDIS_URL``; without them they skip, naming the variable. CI sets
``BILLING_SYNC_TEST_REQUIRE_SERVICES=1`` too, which turns such a skip into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from sync.db.engine import make_engine, upgrade

POSTGRES_URL = os.environ.get("BILLING_SYNC_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("BILLING_SYNC_TEST_REDIS_URL")
REQUIRE_SERVICES = os.environ.get("BILLING_SYNC_TEST_REQUIRE_SERVICES") == "1"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def _missing(variable: str) -> None:
    reason = f"{variable} is not set"
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason}, but BILLING_SYNC_TEST_REQUIRE_SERVICES=1")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL server URL; skips (or fails in CI) when unset."""
    if not POSTGRES_URL:
        _missing("BILLING_SYNC_TEST_POSTGRES_URL")
    assert POSTGRES_URL
    return POSTGRES_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis URL; skips (or fails in CI) when unset."""
    if not REDIS_URL:
        _missing("BILLING_SYNC_TEST_REDIS_URL")
    assert REDIS_URL
    return REDIS_URL


def postgres_schema_url(base: str, schema: str) -> str:
    """``base`` with a search_path that puts every table in ``schema``."""
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture
def pg_database_url(postgres_url: str) -> Iterator[str]:
    """A database URL whose tables live in a fresh PostgreSQL schema, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield postgres_schema_url(postgres_url, schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def sqlite_database_url(tmp_path: Path) -> str:
    """A database URL of a fresh SQLite file."""
    return f"sqlite:///{tmp_path / 'billing.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test that takes this runs on SQLite and on PostgreSQL."""
    name = "sqlite_database_url" if request.param == "sqlite" else "pg_database_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on a migrated, empty billing database (SQLite and PostgreSQL)."""
    eng = make_engine(database_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests keep what a person may want to look at (screenshots, PDFs)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


# -- the CRM sandbox ------------------------------------------------------------------

SANDBOX_SEED_ACCOUNTS = 25
SANDBOX_SEED_RANDOM = 7


@pytest.fixture(scope="session")
def sandbox_url() -> Iterator[str]:
    """Base URL of one ``billing-sync sandbox`` subprocess for the whole run (seeded)."""
    from tests.support.sandbox import running_sandbox

    with running_sandbox(
        "--seed", str(SANDBOX_SEED_ACCOUNTS), "--seed-random", str(SANDBOX_SEED_RANDOM)
    ) as sandbox:
        yield sandbox.url


@pytest.fixture
def crm_sandbox(sandbox_url: str) -> Iterator[str]:
    """The sandbox URL, after resetting it to its seeded state (data, faults, counters).

    Afterwards the test fails if any request made the sandbox answer 500 from an
    unexpected exception: every client mistake must get a Salesforce-shaped 4xx.
    """
    import requests

    requests.post(f"{sandbox_url}/_sandbox/reset", timeout=30).raise_for_status()
    yield sandbox_url
    stats = requests.get(f"{sandbox_url}/_sandbox/stats", timeout=30).json()
    if stats.get("unhandled_errors"):
        pytest.fail(
            "the sandbox answered 500 (unexpected exception): "
            + "; ".join(stats.get("recent_unhandled", []))
        )


@pytest.fixture
def sf(crm_sandbox: str) -> Any:
    """A simple_salesforce.Salesforce logged into the freshly reset sandbox (JWT bearer)."""
    from tests.support.sandbox import simple_salesforce

    return simple_salesforce(crm_sandbox)
