"""Real Celery worker and beat processes (and a private redis-server) for end-to-end tests.

Every process is started in its own session, so that it and its pool children form one
process group: stopping (or SIGKILLing) a worker signals that group by the leader's PID,
and nothing else. Output goes to a log file per process; :meth:`Services.logs` returns
their tails for failure messages.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from simple_salesforce import Salesforce
from sqlalchemy import Engine, text

from sync.db.shapes import MIRRORED_SHAPES
from sync.mapping.loader import default_mappings_dir, load_mappings
from sync.mapping.transform import parse_sf_datetime
from tests.support.sandbox import jwt_env, simple_salesforce_cc

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Proc:
    """One started process group."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole group (the worker and its pool), as a crash would."""
        self.signal_group(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (warm shutdown), then SIGKILL if it lingers."""
        if self.alive():
            self.signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self.popen.wait(timeout=10)
        # pool children may outlive a killed leader for a moment
        self.signal_group(signal.SIGKILL)

    def tail(self, lines: int = 40) -> str:
        try:
            content = self.log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join(content[-lines:])


@dataclass
class Services:
    """Starts and stops the processes of one test; everything is stopped at the end."""

    env: dict[str, str]
    workdir: Path
    procs: list[Proc] = field(default_factory=list)
    counter: int = 0

    def _start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        self.counter += 1
        log = self.workdir / f"{self.counter:02d}-{name}.log"
        handle = log.open("wb")
        popen = subprocess.Popen(
            argv,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env or self.env,
            start_new_session=True,
            cwd=str(self.workdir),
        )
        handle.close()
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def worker(self, name: str = "w", concurrency: int = 2) -> Proc:
        return self._start(
            name,
            [
                str(BIN / "celery"),
                "-A",
                "workers.app",
                "worker",
                "-Q",
                "pull,maintenance,push",
                "-c",
                str(concurrency),
                "-n",
                f"{name}-{self.counter}@%h",
                "--without-gossip",
                "--without-mingle",
                "-l",
                "INFO",
            ],
        )

    def beat(self) -> Proc:
        return self._start(
            "beat",
            [
                str(BIN / "celery"),
                "-A",
                "workers.app",
                "beat",
                "-s",
                str(self.workdir / f"beat-schedule-{self.counter}"),
                "-l",
                "INFO",
            ],
        )

    def redis_server(self, port: int) -> Proc:
        proc = self._start(
            "redis",
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            env=dict(os.environ),
        )
        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
        try:
            assert wait_until(lambda: _pings(client), timeout=10), proc.tail()
        finally:
            client.close()
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()

    def logs(self) -> str:
        return "\n\n".join(f"--- {p.name} (pid {p.pid}) ---\n{p.tail()}" for p in self.procs)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def service_env(
    *,
    database_url: str,
    broker_url: str,
    sandbox_url: str,
    prefix: str,
    **extra: str,
) -> dict[str, str]:
    """The environment of worker and beat processes: only what the test decides."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BILLING_SYNC_", "SALESFORCE_", "CELERY"))
    }
    env.update(
        {
            "BILLING_SYNC_DATABASE_URL": database_url,
            "BILLING_SYNC_BROKER_URL": broker_url,
            "BILLING_SYNC_REDIS_PREFIX": prefix,
            **jwt_env(),
            "SALESFORCE_INSTANCE_URL": sandbox_url,
            "BILLING_SYNC_PULL_INTERVAL": "1",
            "BILLING_SYNC_LOCK_TTL": "3",
            "BILLING_SYNC_RECONCILE_INTERVAL": "3600",
            "BILLING_SYNC_PUSH_INTERVAL": "30",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def salesforce(url: str) -> Salesforce:
    return simple_salesforce_cc(url)


Snapshot = dict[str, set[tuple[str, str, bool]]]


def _stamp(value: dt.datetime) -> str:
    return (
        value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}"
    )


def mapped_objects() -> dict[str, str]:
    """CRM object -> local table, for every default mapping."""
    return {m.crm_object: m.table for m in load_mappings(default_mappings_dir(), MIRRORED_SHAPES)}


def crm_snapshot(sf: Salesforce, objects: Iterable[str] | None = None) -> Snapshot:
    """(Id, SystemModstamp to the millisecond, IsDeleted) of every record, by table."""
    tables = mapped_objects()
    snap: Snapshot = {}
    for obj in objects or tables:
        rows = sf.query_all_iter(
            f"SELECT Id, SystemModstamp, IsDeleted FROM {obj}", include_deleted=True
        )
        snap[tables[obj]] = {
            (r["Id"], _stamp(parse_sf_datetime(r["SystemModstamp"])), bool(r["IsDeleted"]))
            for r in rows
        }
    return snap


def local_snapshot(engine: Engine, tables: Iterable[str] | None = None) -> Snapshot:
    """The same triples from the mirrored tables."""
    snap: Snapshot = {}
    with engine.connect() as conn:
        for table in tables or mapped_objects().values():
            rows = conn.execute(
                text(f"SELECT sfid, system_modstamp, is_deleted FROM {table}")
            ).all()
            snap[table] = {
                (sfid, _stamp(stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)), bool(d))
                for sfid, stamp, d in rows
            }
    return snap


def duplicate_sfids(engine: Engine) -> dict[str, int]:
    """Per table, rows beyond one per sfid (must be all zero)."""
    out = {}
    with engine.connect() as conn:
        for table in mapped_objects().values():
            out[table] = int(
                conn.execute(
                    text(f"SELECT COUNT(*) - COUNT(DISTINCT sfid) FROM {table}")
                ).scalar_one()
            )
    return out


def differences(crm: Snapshot, local: Snapshot) -> dict[str, tuple[int, int]]:
    """Per table with differences: (CRM-only triples, local-only triples)."""
    out = {}
    for table, expected in crm.items():
        have = local.get(table, set())
        if expected != have:
            out[table] = (len(expected - have), len(have - expected))
    return out


def wait_converged(sf: Salesforce, engine: Engine, timeout: float) -> dict[str, tuple[int, int]]:
    """Wait until the mirror equals the CRM; returns the remaining differences."""
    crm = crm_snapshot(sf)
    deadline = time.monotonic() + timeout
    while True:
        diff = differences(crm, local_snapshot(engine))
        if not diff or time.monotonic() >= deadline:
            return diff
        time.sleep(0.5)


@dataclass(frozen=True)
class PassInterval:
    mapping: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    outcome: str


def pass_intervals(engine: Engine) -> list[PassInterval]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT mapping, started_at, finished_at, outcome FROM sync_passes "
                "ORDER BY mapping, started_at, id"
            )
        ).all()
    return [PassInterval(*row) for row in rows]


def overlapping_passes(intervals: list[PassInterval]) -> list[tuple[PassInterval, PassInterval]]:
    """Pairs of passes of the same mapping whose [start, finish] intervals overlap."""
    by_mapping: dict[str, list[PassInterval]] = {}
    for iv in intervals:
        by_mapping.setdefault(iv.mapping, []).append(iv)
    overlaps = []
    for passes in by_mapping.values():
        passes.sort(key=lambda p: p.started_at)
        for before, after in itertools.pairwise(passes):
            end = before.finished_at
            if end is None or after.started_at < end:
                overlaps.append((before, after))
    return overlaps
