"""Start ``billing-sync sandbox`` as a subprocess for end-to-end tests, and stop it.

The sandbox listens on a free port (``--port 0``) and prints its URL once it answers;
:func:`running_sandbox` waits for that line, checks the sandbox responds, and always
stops the process it started, by its PID.

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
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from simple_salesforce import Salesforce

from sync.commands.keys import KeyPair, generate_key_pair
from sync.crm.auth import SANDBOX_CONSUMER_KEY, SANDBOX_CONSUMER_SECRET, SANDBOX_USERNAME
from sync.crm.session import make_session
from sync.settings import Settings

MY_DOMAIN = "sandbox.my.salesforce.com"

_LISTENING = re.compile(r"listening on (http://\S+)")


@dataclass
class SandboxProcess:
    """A running sandbox subprocess."""

    url: str
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def stop(self, timeout: float = 15.0) -> int:
        """Ask the sandbox to shut down (SIGTERM), then kill it if it lingers."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=timeout)
        if self.reader is not None:
            self.reader.join(timeout=timeout)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode


@functools.cache
def jwt_keys() -> KeyPair:
    """The run's throwaway RSA key and certificate (removed when the run ends)."""
    directory = tempfile.mkdtemp(prefix="billing-sync-jwt-")
    atexit.register(shutil.rmtree, directory, True)
    return generate_key_pair(Path(directory))


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


def _command() -> list[str]:
    script = Path(sys.executable).with_name("billing-sync")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "sync.cli"]


def start_sandbox(*args: str, timeout: float = 60.0) -> SandboxProcess:
    """Start ``billing-sync sandbox --port 0 ARGS`` and wait until it answers.

    The run's JWT certificate is registered unless ARGS name one.

    Raises:
        RuntimeError: the sandbox exited or did not answer within ``timeout`` seconds
            (the message holds its output).
    """
    if "--jwt-cert" not in args:
        args = (*args, "--jwt-cert", str(jwt_keys().cert_file))
    process = subprocess.Popen(
        [*_command(), "sandbox", "--host", "127.0.0.1", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: queue.Queue[str | None] = queue.Queue()
    output: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, name=f"sandbox-{process.pid}", daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    url = None
    while url is None:
        remaining = deadline - time.monotonic()
        try:
            line = lines.get(timeout=max(0.01, remaining))
        except queue.Empty:
            line = ""
        if line is None or remaining <= 0:
            SandboxProcess("", process, output, reader).stop()
            raise RuntimeError("the sandbox did not start:\n" + "".join(output))
        match = _LISTENING.search(line)
        if match:
            url = match.group(1)
    sandbox = SandboxProcess(url, process, output, reader)
    try:
        requests.get(f"{url}/_sandbox/stats", timeout=10).raise_for_status()
    except requests.RequestException:
        sandbox.stop()
        raise
    return sandbox


@contextmanager
def running_sandbox(*args: str, timeout: float = 60.0) -> Iterator[SandboxProcess]:
    """A sandbox subprocess for the duration of the ``with`` block."""
    sandbox = start_sandbox(*args, timeout=timeout)
    try:
        yield sandbox
    finally:
        sandbox.stop()


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
