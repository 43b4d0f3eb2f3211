"""The one way to start the sandbox CRM beside billing-sync: a child process.

``billing-sync demo``, the benchmarks under bench/ and the end-to-end tests all start
``billing-sync sandbox --port 0 ...`` through :func:`start_sandbox`: it waits for the
``listening on URL`` line, checks that the sandbox answers, keeps reading its output
(so the child never blocks on a full pipe), and :meth:`SandboxProcess.stop` always
stops the process it started, by its PID. Running the sandbox in its own process keeps
the library free of it (only the sandbox's package imports the sandbox) and makes the
CRM a real peer over real sockets.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import requests

_LISTENING = re.compile(r"listening on (http://\S+)")
_RECORDS = re.compile(r"\(([\d,]+) records\)")
_SEEDED_IN = re.compile(r"^Seeded.* in ([\d.]+) s")


class SandboxStartError(RuntimeError):
    """The sandbox exited or did not answer in time; the message holds its output."""


@dataclass
class SandboxProcess:
    """A running ``billing-sync sandbox`` child process."""

    url: str
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.process.pid

    @property
    def seeded_records(self) -> int:
        """How many records the sandbox seeded at start (0 when it seeded none)."""
        for line in self.output:
            match = _RECORDS.search(line)
            if match:
                return int(match.group(1).replace(",", ""))
        return 0

    @property
    def seed_seconds(self) -> float:
        """How long the seeding took, as the sandbox reported it (0.0 when unseeded)."""
        for line in self.output:
            match = _SEEDED_IN.search(line)
            if match:
                return float(match.group(1))
        return 0.0

    def stop(self, timeout: float = 15.0) -> int:
        """Ask the sandbox to shut down (SIGTERM), kill it if it lingers; its exit code."""
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


def billing_sync_command() -> list[str]:
    """The ``billing-sync`` executable of this interpreter's environment."""
    script = Path(sys.executable).with_name("billing-sync")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "workers.cli"]


def start_sandbox(
    *args: str,
    timeout: float = 60.0,
    log: IO[str] | None = None,
    env: dict[str, str] | None = None,
    host: str = "127.0.0.1",
) -> SandboxProcess:
    """Start ``billing-sync sandbox --host HOST --port 0 ARGS`` and wait until it answers.

    Args:
        *args: more ``billing-sync sandbox`` arguments (``--seed N``, ``--db FILE`` ...).
        timeout: seconds to wait for the sandbox to listen and answer.
        log: where the sandbox's output is copied as it arrives (it is always kept in
            :attr:`SandboxProcess.output` too).
        env: the child's environment (default: this process's).
        host: the address it listens on.

    Raises:
        SandboxStartError: it exited or did not answer within ``timeout`` seconds.
    """
    process = subprocess.Popen(  # noqa: S603 - our own executable, arguments as a list
        [*billing_sync_command(), "sandbox", "--host", host, "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**(env if env is not None else os.environ), "PYTHONUNBUFFERED": "1"},
        # Its own process group: Ctrl-C in a terminal interrupts the caller only, which
        # stops its users of the sandbox first and then the sandbox (stop()).
        process_group=0,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    output: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            if log is not None:
                log.write(line)
                log.flush()
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, name=f"sandbox-{process.pid}", daemon=True)
    reader.start()
    try:
        url = _wait_listening(lines, timeout)
    except BaseException:
        # not started in time, or the caller interrupted (Ctrl-C reaches only the caller)
        SandboxProcess("", process, output, reader).stop()
        raise
    if url is None:
        SandboxProcess("", process, output, reader).stop()
        raise SandboxStartError("the sandbox did not start:\n" + "".join(output))
    sandbox = SandboxProcess(url, process, output, reader)
    try:
        requests.get(f"{url}/_sandbox/stats", timeout=10).raise_for_status()
    except requests.RequestException as exc:
        sandbox.stop()
        raise SandboxStartError(f"the sandbox at {url} did not answer: {exc}") from exc
    return sandbox


def _wait_listening(lines: queue.Queue[str | None], timeout: float) -> str | None:
    """The URL of the ``listening on URL`` line; None when the output ends or time is up."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        try:
            line = lines.get(timeout=max(0.01, remaining))
        except queue.Empty:
            line = ""
        if line is None or remaining <= 0:
            return None
        match = _LISTENING.search(line)
        if match:
            return match.group(1)


@contextmanager
def running_sandbox(
    *args: str,
    timeout: float = 60.0,
    log: IO[str] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[SandboxProcess]:
    """A sandbox child process for the duration of the ``with`` block."""
    sandbox = start_sandbox(*args, timeout=timeout, log=log, env=env)
    try:
        yield sandbox
    finally:
        sandbox.stop()
