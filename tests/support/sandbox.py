"""The sandbox for end-to-end tests: started by :mod:`sync.commands.launcher`, poked here.

:func:`start_sandbox` / :func:`running_sandbox` are the launcher's (a ``billing-sync
sandbox`` child process on a free port, stopped by its PID); the helpers below read and
steer a running sandbox over its ``/_sandbox`` endpoints.

Clients log in as production does, with the JWT bearer flow: a throwaway key pair is
made once per test run (:func:`jwt_keys`), every sandbox started here registers its
certificate (``--jwt-cert``), and :func:`jwt_env` / :func:`jwt_settings` configure
billing-sync with the key. :func:`simple_salesforce` logs in through simple-salesforce's
own JWT code path; :func:`simple_salesforce_cc` through its client-credentials path
(for sandboxes served in-process without a certificate).
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from simple_salesforce import Salesforce

from sync.commands import launcher
from sync.commands.keys import KeyPair, generate_key_pair
from sync.commands.launcher import SandboxProcess, SandboxStartError
from sync.crm.auth import SANDBOX_CONSUMER_KEY, SANDBOX_CONSUMER_SECRET, SANDBOX_USERNAME
from sync.crm.session import make_session
from sync.settings import Settings

MY_DOMAIN = "sandbox.my.salesforce.com"

__all__ = [
    "MY_DOMAIN",
    "SandboxProcess",
    "SandboxStartError",
    "jwt_env",
    "jwt_keys",
    "jwt_settings",
    "reseed",
    "running_sandbox",
    "sandbox_stats",
    "set_faults",
    "simple_salesforce",
    "simple_salesforce_cc",
    "start_sandbox",
]


@functools.cache
def jwt_keys() -> KeyPair:
    """The run's throwaway RSA key and certificate (removed when the run ends)."""
    directory = tempfile.mkdtemp(prefix="billing-sync-jwt-")
    atexit.register(shutil.rmtree, directory, True)
    return generate_key_pair(Path(directory))


def _with_certificate(args: tuple[str, ...]) -> tuple[str, ...]:
    if "--jwt-cert" in args:
        return args
    return (*args, "--jwt-cert", str(jwt_keys().cert_file))


def start_sandbox(*args: str, **options: Any) -> SandboxProcess:
    """The launcher's ``start_sandbox``, registering the run's JWT certificate unless
    ARGS name one."""
    return launcher.start_sandbox(*_with_certificate(args), **options)


@contextmanager
def running_sandbox(*args: str, **options: Any) -> Iterator[SandboxProcess]:
    """A sandbox child process (with the run's JWT certificate) for the ``with`` block."""
    with launcher.running_sandbox(*_with_certificate(args), **options) as sandbox:
        yield sandbox


def jwt_env() -> dict[str, str]:
    """The ``SALESFORCE_*`` variables of a JWT bearer login to a sandbox started here."""
    return {
        "SALESFORCE_AUTH": "jwt",
        "SALESFORCE_CONSUMER_KEY": SANDBOX_CONSUMER_KEY,
        "SALESFORCE_USERNAME": SANDBOX_USERNAME,
        "SALESFORCE_PRIVATE_KEY_FILE": str(jwt_keys().key_file),
        "SALESFORCE_DOMAIN": "login",
        "SALESFORCE_MY_DOMAIN": MY_DOMAIN,
    }


def jwt_settings(url: str, **settings: Any) -> Settings:
    """Settings logging in to the sandbox at ``url`` with the JWT bearer flow.

    ``settings`` override any field, the login's included.
    """
    fields: dict[str, Any] = {
        "salesforce_auth": "jwt",
        "salesforce_consumer_key": SANDBOX_CONSUMER_KEY,
        "salesforce_username": SANDBOX_USERNAME,
        "salesforce_private_key_file": str(jwt_keys().key_file),
        "salesforce_domain": "login",
        "salesforce_my_domain": MY_DOMAIN,
        "salesforce_instance_url": url,
    }
    fields.update(settings)
    return Settings(**fields)


def simple_salesforce(url: str, version: str = "59.0") -> Salesforce:
    """simple-salesforce logged in to the sandbox at ``url`` by its own JWT code path."""
    return Salesforce(
        username=SANDBOX_USERNAME,
        consumer_key=SANDBOX_CONSUMER_KEY,
        privatekey_file=str(jwt_keys().key_file),
        domain="login",
        instance_url=MY_DOMAIN.removesuffix(".salesforce.com"),
        session=make_session(url),
        version=version,
    )


def simple_salesforce_cc(url: str, version: str = "59.0") -> Salesforce:
    """simple-salesforce logged in by its client-credentials code path (no certificate)."""
    return Salesforce(
        consumer_key=SANDBOX_CONSUMER_KEY,
        consumer_secret=SANDBOX_CONSUMER_SECRET,
        domain=MY_DOMAIN.removesuffix(".salesforce.com"),
        session=make_session(url),
        version=version,
    )


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
