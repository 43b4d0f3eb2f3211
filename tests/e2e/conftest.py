"""Fixtures of the end-to-end tests: the ``billing-sync`` command as a process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest


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
        **os.environ,
        "SALESFORCE_INSTANCE_URL": crm_sandbox,
        "BILLING_SYNC_DATABASE_URL": sqlite_database_url,
    }
    env.pop("SALESFORCE_USERNAME", None)

    def run_cli(*args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*billing_sync(), *args],
            env={**env, **extra_env},
            capture_output=True,
            text=True,
            timeout=300,
        )

    return run_cli
