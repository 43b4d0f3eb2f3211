"""The sandbox for end-to-end tests: started by :mod:`sync.commands.launcher`, poked here.

:func:`start_sandbox` / :func:`running_sandbox` are the launcher's (a ``billing-sync
sandbox`` child process on a free port, stopped by its PID); the helpers below read and
steer a running sandbox over its ``/_sandbox`` endpoints.
"""

from __future__ import annotations

from typing import Any

import requests

from sync.commands.launcher import (
    SandboxProcess,
    SandboxStartError,
    running_sandbox,
    start_sandbox,
)

__all__ = [
    "SandboxProcess",
    "SandboxStartError",
    "reseed",
    "running_sandbox",
    "sandbox_stats",
    "set_faults",
    "start_sandbox",
]


def sandbox_stats(url: str) -> dict[str, Any]:
    """``GET /_sandbox/stats``."""
    response = requests.get(f"{url}/_sandbox/stats", timeout=10)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def set_faults(url: str, **spec: Any) -> dict[str, Any]:
    """``POST /_sandbox/faults`` with ``spec``."""
    response = requests.post(f"{url}/_sandbox/faults", json=spec, timeout=10)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def reseed(url: str, accounts: int, random_seed: int = 1) -> dict[str, Any]:
    """``POST /_sandbox/seed``: replace the sandbox's data with a fresh seed."""
    response = requests.post(
        f"{url}/_sandbox/seed", json={"accounts": accounts, "random": random_seed}, timeout=120
    )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body
