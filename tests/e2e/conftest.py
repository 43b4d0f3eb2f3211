"""Fixtures shared by the end-to-end tests: the CLI, the portal scenario, worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import Engine
from starlette.exceptions import StarletteDeprecationWarning
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from sync.portal.app import create_app
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
    """An HTTP client of the portal app on the test's database (redirects not followed).

    The app runs in this process, without a server: requests go straight to it through
    the ASGI interface, as uvicorn would pass them, with uvicorn's proxy-header handling
    in front (as :class:`PortalServer` configures it) and 127.0.0.1 as the peer. The tests
    that need a real listening server (and the browser tests) start a PortalServer.
    """
    with in_process_client(create_app(portal_settings(), engine)) as http:
        yield http


def in_process_client(app: Any) -> Any:
    """A ``TestClient`` of ``app`` that behaves like the portal's uvicorn server."""
    with warnings.catch_warnings():
        # Starlette asks for httpx2 and still supports httpx, which the project uses.
        warnings.simplefilter("ignore", StarletteDeprecationWarning)
        from starlette.testclient import TestClient

    trusted = os.environ.get("FORWARDED_ALLOW_IPS") or "127.0.0.1"
    return TestClient(
        ProxyHeadersMiddleware(app, trusted_hosts=trusted),
        base_url="http://127.0.0.1",
        # A real server answers 500 to an unhandled exception; it does not re-raise it.
        raise_server_exceptions=False,
        follow_redirects=False,
        client=("127.0.0.1", 50000),
    )


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
