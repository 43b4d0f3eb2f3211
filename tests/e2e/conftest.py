"""Fixtures shared by the end-to-end tests: the CLI, the portal scenario, worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import Engine

from sync.portal.server import PortalServer
from tests.support.portal_data import World, build_world, portal_settings
from tests.support.sandbox import jwt_env
from tests.support.workers import Services


def billing_sync() -> list[str]:
    """The ``billing-sync`` entry point of this virtual environment."""
    script = Path(sys.executable).with_name("billing-sync")
    return [str(script)] if script.exists() else [sys.executable, "-m", "sync.cli"]


@pytest.fixture
def run(
    crm_sandbox: str, sqlite_database_url: str
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``billing-sync ARGS`` on the sandbox and a fresh SQLite database."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SALESFORCE_")},
        **jwt_env(),
        "SALESFORCE_INSTANCE_URL": crm_sandbox,
        "BILLING_SYNC_DATABASE_URL": sqlite_database_url,
    }

    def run_cli(*args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*billing_sync(), *args],
            env={**env, **extra_env},
            capture_output=True,
            text=True,
            timeout=300,
        )

    return run_cli


@pytest.fixture
def world(engine: Engine) -> World:
    """The standard portal scenario (accounts, admins, records) in the test's database."""
    return build_world(engine)


@pytest.fixture
def client(engine: Engine) -> Iterator[httpx.Client]:
    """An HTTP client of a portal served from the test's database (redirects not followed)."""
    with (
        PortalServer(portal_settings(), engine) as server,
        httpx.Client(base_url=server.url or "", follow_redirects=False) as http,
    ):
        yield http


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A fresh Redis key prefix for one test; its keys are deleted afterwards."""
    value = f"bs-test-{uuid.uuid4().hex[:10]}"
    yield value
    client = redis.Redis.from_url(redis_url)
    try:
        for key in client.scan_iter(match=f"{value}:*", count=500):
            client.delete(key)
    finally:
        client.close()


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    """Celery worker and beat processes of one test, all stopped at the end."""
    stack = Services(env={}, workdir=tmp_path)
    yield stack
    stack.stop_all()
