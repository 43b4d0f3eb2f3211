"""Benchmark: the portal's list pages on an account with 5,000 orders and 5,000 invoices.

For SQLite (always) and PostgreSQL (with --postgres URL or BILLING_SYNC_TEST_POSTGRES_URL):
builds a migrated database holding one large account (plus other accounts as noise),
serves the portal on uvicorn in this process on 127.0.0.1, signs in a Billing Admin and
measures

- the orders list filtered by a date range and sorted by amount, on random pages,
- the invoices list (newest first), on random pages,

first one request at a time (server time from the Server-Timing header: p50/p95/max),
then with 20 concurrent clients (requests per second, server p95 under load).
Prints a table and rewrites the "Portal" section of BENCHMARKS.md.

    .venv/bin/python bench/portal.py [--postgres URL] [--requests 300] [--clients 20]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
from sqlalchemy import Engine, insert, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from report import write_section  # noqa: E402

from sync.access import to_18_char_id  # noqa: E402
from sync.db.engine import make_engine, upgrade  # noqa: E402
from sync.db.models import (  # noqa: E402
    Account,
    AccountContactRole,
    Contact,
    Invoice,
    Order,
)
from sync.portal.links import PortalSigner  # noqa: E402
from sync.portal.server import PortalServer  # noqa: E402
from sync.settings import Settings  # noqa: E402

UTC = dt.UTC
SECRET = "benchmark-portal-secret-0123456789"
TARGET_P95_MS = 50.0
_TIMING = re.compile(r"app;dur=([0-9.]+)")


@dataclass
class Result:
    backend: str
    scenario: str
    rows: int
    p50: float
    p95: float
    worst: float
    rps: float
    load_p95: float


class Ids:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, prefix: str) -> str:
        self.n += 1
        return to_18_char_id(f"{prefix}{self.n:012d}")


def populate(engine: Engine, *, orders: int, invoices: int, noise_accounts: int) -> str:
    """Insert the big account (returns its admin contact's Id) and the noise accounts."""
    rng = random.Random(7)
    ids = Ids()
    now = dt.datetime.now(UTC)
    start = dt.date(2024, 1, 1)
    base = {"system_modstamp": now, "synced_at": now, "is_deleted": False}
    statuses = ["Activated", "Activated", "Activated", "Pending", "Cancelled"]

    def order_rows(account: str, count: int) -> list[dict[str, object]]:
        return [
            {
                **base,
                "sfid": ids("a0A"),
                "name": f"O-{i:06d}",
                "account_sfid": account,
                "order_date": start + dt.timedelta(days=rng.randrange(730)),
                "status": rng.choice(statuses),
                "amount": Decimal(rng.randrange(1000, 5_000_000)) / 100,
            }
            for i in range(count)
        ]

    def invoice_rows(account: str, count: int) -> list[dict[str, object]]:
        rows = []
        for i in range(count):
            when = dt.datetime.combine(
                start + dt.timedelta(days=rng.randrange(730)), dt.time(12), UTC
            )
            amount = Decimal(rng.randrange(1000, 5_000_000)) / 100
            rows.append(
                {
                    **base,
                    "sfid": ids("a0D"),
                    "name": f"INV-{i:06d}",
                    "account_sfid": account,
                    "invoice_date": when,
                    "due_date": (when + dt.timedelta(days=30)).date(),
                    "total_amount": amount,
                    "total_due": amount if i % 3 else Decimal(0),
                    "status": "Approved",
                    "payment_status": "Paid" if i % 3 == 0 else "Not Paid",
                    "has_attachment": i % 5 != 0,
                }
            )
        return rows

    big = ids("001")
    admin = ids("003")
    with engine.begin() as conn:
        accounts = [{**base, "sfid": big, "name": "Big Account"}]
        noise = [ids("001") for _ in range(noise_accounts)]
        accounts += [{**base, "sfid": a, "name": f"Noise {i}"} for i, a in enumerate(noise)]
        conn.execute(insert(Account), accounts)
        conn.execute(
            insert(Contact),
            [{**base, "sfid": admin, "account_sfid": big, "first_name": "B", "last_name": "A"}],
        )
        conn.execute(
            insert(AccountContactRole),
            [
                {
                    **base,
                    "sfid": ids("02Z"),
                    "account_sfid": big,
                    "contact_sfid": admin,
                    "role": "Billing Admin",
                }
            ],
        )
        for account, n_orders, n_invoices in [
            (big, orders, invoices),
            *((a, orders // 5, invoices // 5) for a in noise),
        ]:
            conn.execute(insert(Order), order_rows(account, n_orders))
            conn.execute(insert(Invoice), invoice_rows(account, n_invoices))
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return admin


def _server_ms(response: httpx.Response) -> float:
    response.raise_for_status()
    match = _TIMING.search(response.headers.get("server-timing", ""))
    if match is None:
        raise RuntimeError("no Server-Timing header")
    return float(match.group(1))


def _client(url: str, cookie: str) -> httpx.Client:
    return httpx.Client(base_url=url, cookies={"billing_portal": cookie}, timeout=30)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def measure(
    url: str,
    cookie: str,
    path: str,
    params: dict[str, str],
    pages: int,
    requests: int,
    clients: int,
) -> tuple[float, float, float, float, float]:
    rng = random.Random(11)

    def params_for(r: random.Random) -> dict[str, str]:
        return {**params, "page": str(r.randint(1, pages))}

    with _client(url, cookie) as http:
        for _ in range(10):  # warm up connections, caches and the query planner
            _server_ms(http.get(path, params=params_for(rng)))
        sequential = [_server_ms(http.get(path, params=params_for(rng))) for _ in range(requests)]

    timings: list[float] = []
    lock = threading.Lock()
    per_client = max(1, requests * 3 // clients)
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        r = random.Random(seed)
        local: list[float] = []
        try:
            with _client(url, cookie) as http:
                for _ in range(per_client):
                    local.append(_server_ms(http.get(path, params=params_for(r))))
        except Exception as exc:  # noqa: BLE001 - reported after the run
            errors.append(exc)
        with lock:
            timings.extend(local)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} clients failed: {errors[0]!r}")
    return (
        statistics.median(sequential),
        _percentile(sequential, 0.95),
        max(sequential),
        len(timings) / elapsed,
        _percentile(timings, 0.95),
    )


_SERVE = (
    "import sys; from sync.db.engine import make_engine; from sync.portal.server import serve; "
    "from sync.settings import Settings; s = Settings.from_env(); "
    "serve(s, make_engine(s.database_url), '127.0.0.1', int(sys.argv[1]))"
)


class SubprocessPortal:
    """The portal served by `sync.portal.server.serve` in its own process (its own GIL)."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.process: subprocess.Popen[bytes] | None = None
        self.url: str | None = None

    def __enter__(self) -> SubprocessPortal:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {
            **os.environ,
            "BILLING_SYNC_DATABASE_URL": self.database_url,
            "BILLING_SYNC_PORTAL_SECRET": SECRET,
            "PYTHONPATH": str(ROOT),
        }
        self.process = subprocess.Popen([sys.executable, "-c", _SERVE, str(port)], env=env)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("the portal process exited")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.__exit__()
        raise RuntimeError("the portal process did not start")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
            self.process = None


def run_backend(
    name: str,
    url: str,
    engine: Engine,
    *,
    orders: int,
    invoices: int,
    requests: int,
    clients: int,
    in_process: bool,
) -> list[Result]:
    print(f"[{name}] loading {orders} orders and {invoices} invoices ...", flush=True)
    upgrade(engine)
    admin = populate(engine, orders=orders, invoices=invoices, noise_accounts=4)
    settings = Settings(portal_secret=SECRET, database_url=url)
    signer = PortalSigner(SECRET)
    cookie = signer.dump_session(signer.new_session(admin))
    results = []
    server_cm = PortalServer(settings, engine) if in_process else SubprocessPortal(url)
    with server_cm as server:
        assert server.url
        scenarios = [
            (
                "orders: date range, by amount",
                "/portal/orders",
                {"from": "2024-07-01", "to": "2025-06-30", "sort": "amount", "dir": "desc"},
            ),
            ("invoices: all, newest first", "/portal/invoices", {}),
        ]
        for label, path, params in scenarios:
            with _client(server.url, cookie) as http:
                first = http.get(path, params=params)
                first.raise_for_status()
            found = re.search(r"· (\d+) (?:orders|invoices)</span>", first.text)
            rows = int(found.group(1)) if found else 0
            pages = max(1, -(-rows // 25))
            p50, p95, worst, rps, load_p95 = measure(
                server.url, cookie, path, params, pages, requests, clients
            )
            results.append(Result(name, label, rows, p50, p95, worst, rps, load_p95))
            print(f"[{name}] {label}: p95 {p95:.1f} ms, {rps:.0f} req/s", flush=True)
    return results


def table(results: list[Result], clients: int) -> str:
    lines = [
        "| backend | list | matching rows | server p50 ms | server p95 ms | server max ms "
        f"| req/s ({clients} clients) | server p95 ms under load | p95 < {TARGET_P95_MS:g} ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        ok = "yes" if r.p95 < TARGET_P95_MS else "NO"
        lines.append(
            f"| {r.backend} | {r.scenario} | {r.rows} | {r.p50:.1f} | {r.p95:.1f} | "
            f"{r.worst:.1f} | {r.rps:.0f} | {r.load_p95:.1f} | {ok} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--postgres", metavar="URL", default=os.environ.get("BILLING_SYNC_TEST_POSTGRES_URL")
    )
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--invoices", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=300, help="sequential requests per list")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="serve from a thread of this process (shares the GIL with the clients)",
    )
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args()

    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        engine = make_engine(sqlite_url)
        try:
            results += run_backend(
                "SQLite",
                sqlite_url,
                engine,
                orders=args.orders,
                invoices=args.invoices,
                requests=args.requests,
                clients=args.clients,
                in_process=args.in_process,
            )
        finally:
            engine.dispose()
    if args.postgres:
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        admin = make_engine(args.postgres)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in args.postgres else "?"
        pg_url = f"{args.postgres}{sep}options=-csearch_path%3D{schema}"
        engine = make_engine(pg_url)
        try:
            results += run_backend(
                "PostgreSQL",
                pg_url,
                engine,
                orders=args.orders,
                invoices=args.invoices,
                requests=args.requests,
                clients=args.clients,
                in_process=args.in_process,
            )
        finally:
            engine.dispose()
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            admin.dispose()

    rendered = table(results, args.clients)
    print()
    print(rendered)
    if not args.no_write:
        when = dt.datetime.now(UTC).strftime("%Y-%m-%d")
        cpus = os.cpu_count()
        section = (
            "## Portal\n\n"
            f"`bench/portal.py` ({when}, {cpus} CPUs, one uvicorn process on 127.0.0.1, the "
            "clients in another): one "
            f"account with {args.orders:,} orders and {args.invoices:,} invoices (plus 4 other "
            "accounts with a fifth of that each). Server time is the `Server-Timing` header "
            f"(request in to response headers out); sequential: {args.requests} requests per "
            f"list on random pages; load: {args.clients} concurrent clients. Target: server "
            f"p95 under {TARGET_P95_MS:g} ms. Under load one process serves all clients, so "
            "server time there includes the wait for a free worker thread.\n\n"
            f"{rendered}\n"
        )
        print(f"\nwrote {write_section(section)}")
    return 0 if all(r.p95 < TARGET_P95_MS for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
