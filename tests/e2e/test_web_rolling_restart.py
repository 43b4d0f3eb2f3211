"""A rolling restart of the web process's workers under load loses no request.

The deployment's web service is one ``billing-sync run`` with a broker, serving the portal
from ``BILLING_SYNC_WEB_CONCURRENCY`` worker processes on one listening socket. That is
the shape under test: two workers, 20 clients signed in to the portal requesting its
pages without pause, and meanwhile one worker is stopped with SIGTERM (its supervisor
starts a replacement), then SIGHUP replaces every worker one at a time. Every request
must be answered with 200.

Each client request opens its own connection, as a reverse proxy or load balancer does
towards its upstream by default, and nothing is retried. (A client that keeps an idle
connection open may see it closed by a stopping worker: HTTP lets the server do that, and
RFC 9112 section 9.3.1 has such a client retry an idempotent request.)
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from sync.commands.launcher import billing_sync_command
from sync.db.engine import make_engine
from tests.support.portal_data import SECRET, build_world, link_path
from tests.support.workers import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.redis]

CLIENTS = 20
PAGES = ("/portal/orders", "/portal/invoices", "/portal/")


def _env(database_url: str, broker_url: str, prefix: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BILLING_SYNC_", "SALESFORCE_", "CELERY"))
    }
    env.update(
        BILLING_SYNC_DATABASE_URL=database_url,
        BILLING_SYNC_BROKER_URL=broker_url,
        BILLING_SYNC_REDIS_PREFIX=prefix,
        BILLING_SYNC_PORTAL_SECRET=SECRET,
        BILLING_SYNC_WEB_CONCURRENCY="2",
        PYTHONUNBUFFERED="1",
    )
    return env


def worker_pids(parent: int) -> set[int]:
    """The PIDs of the portal's worker processes under ``parent``."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    pids = set()
    for child in children:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in cmdline:
            pids.add(int(child))
    return pids


class Clients:
    """``CLIENTS`` threads signed in to the portal, requesting pages until stopped."""

    def __init__(self, base_url: str, contact: str) -> None:
        where = urlsplit(base_url)
        self.host = where.hostname or "127.0.0.1"
        self.port = where.port or 80
        self.contact = contact
        self.answered = 0
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(CLIENTS)
        ]

    def _request(self, path: str, cookie: str = "") -> http.client.HTTPResponse:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        headers = {"Cookie": cookie} if cookie else {}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        connection.close()
        return response

    def _run(self, index: int) -> None:
        cookie = ""
        n = index
        while not self._stop.is_set():
            path = PAGES[n % len(PAGES)] if cookie else link_path(self.contact)
            n += 1
            try:
                response = self._request(path, cookie)
            except (OSError, http.client.HTTPException) as exc:
                self._fail(f"{path}: {exc!r}")
                continue
            if not cookie:
                # the portal link signs the client in and sends it on with its cookie
                set_cookie = response.getheader("Set-Cookie") or ""
                if response.status != 303 or not set_cookie:
                    self._fail(f"{path}: {response.status} without a session")
                    return
                cookie = set_cookie.split(";", 1)[0]
            elif response.status != 200:
                self._fail(f"{path}: {response.status}")
                continue
            with self._lock:
                self.answered += 1

    def _fail(self, what: str) -> None:
        with self._lock:
            self.failures.append(what)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def answered_since(self, count: int, more: int, timeout: float = 60) -> bool:
        return wait_until(lambda: self.answered >= count + more, timeout=timeout)


@pytest.fixture
def web(pg_migrated_url: str, redis_url: str, prefix: str, tmp_path: Path) -> Iterator[tuple]:
    """The web process on a database holding the portal's standard accounts."""
    engine = make_engine(pg_migrated_url)
    try:
        world = build_world(engine)
    finally:
        engine.dispose()
    log = tmp_path / "web.log"
    with log.open("wb") as handle:
        popen = subprocess.Popen(
            [*billing_sync_command(), "run", "--port", "0"],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=_env(pg_migrated_url, redis_url, prefix),
            cwd=tmp_path,
            start_new_session=True,
        )
    try:
        yield popen, log, world
    finally:
        if popen.poll() is None:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait(10)


def test_given_20_clients_when_the_web_workers_are_restarted_one_at_a_time_then_none_fails(
    web: tuple,
) -> None:
    popen, log, world = web
    found = wait_until(
        lambda: "portal at" in log.read_text() or popen.poll() is not None, timeout=120
    )
    match = re.search(r"portal at (http://\S+);", log.read_text())
    assert found and match and popen.poll() is None, log.read_text()
    first = worker_pids(popen.pid)
    assert len(first) == 2, first
    clients = Clients(match.group(1), world.admin)
    clients.start()
    try:
        assert clients.answered_since(0, 100), (clients.answered, clients.failures)

        # one worker stopped: the supervisor replaces it, the other serves meanwhile
        stopped = min(first)
        os.kill(stopped, signal.SIGTERM)
        assert wait_until(
            lambda: (p := worker_pids(popen.pid)) and stopped not in p and len(p) == 2,
            timeout=60,
        ), worker_pids(popen.pid)
        assert clients.answered_since(clients.answered, 100), clients.failures

        # SIGHUP: every worker replaced, each replacement serving before its old one stops
        before = worker_pids(popen.pid)
        os.kill(popen.pid, signal.SIGHUP)
        assert wait_until(
            lambda: len(p := worker_pids(popen.pid)) == 2 and not p & before, timeout=120
        ), (before, worker_pids(popen.pid), log.read_text())
        assert clients.answered_since(clients.answered, 100), clients.failures
    finally:
        clients.stop()

    assert clients.failures == [], (len(clients.failures), clients.failures[:10])
    assert clients.answered > 300
    popen.send_signal(signal.SIGTERM)
    assert popen.wait(30) == 0, log.read_text()
    assert "Traceback" not in log.read_text(), log.read_text()
