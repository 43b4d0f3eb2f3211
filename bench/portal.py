"""Benchmark: the portal under concurrent use, on an account with 5,000 orders and invoices.

For SQLite (always) and PostgreSQL (with --postgres URL or BILLING_SYNC_TEST_POSTGRES_URL):
builds a migrated database holding one large account (plus other accounts as noise),
starts the deployment's web process (``billing-sync run`` with a broker: --redis URL or
BILLING_SYNC_TEST_REDIS_URL) with --workers worker processes on 127.0.0.1, signs in a
Billing Admin and measures, from the client's side,

- the orders list filtered by a date range and sorted by amount, on random pages,
- the invoices list (newest first), on random pages,
- an order's and an invoice's detail page,
- ``/healthz`` of the same server: the stack's own limit (HTTP, uvicorn, middleware),

each first one request at a time (p50/p95, and the server's p95 from Server-Timing), then
with 20 concurrent keep-alive clients (p95 and requests per second). Targets: 20-client
p95 under 100 ms for the two lists, and their throughput at least half of ``/healthz``'s.
Prints a table and rewrites the "Portal" section of BENCHMARKS.md.

    .venv/bin/python bench/portal.py [--postgres URL] [--redis URL] [--workers N]
        [--requests 300] [--clients 20]
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from sqlalchemy import Engine, insert, select, text

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
    InvoiceLine,
    Order,
    OrderLine,
    Product,
)
from sync.portal.links import PortalSigner  # noqa: E402

UTC = dt.UTC
SECRET = "benchmark-portal-secret-0123456789"
TARGET_P95_MS = 100.0
TARGET_RATIO = 0.5
_TIMING = re.compile(r"app;dur=([0-9.]+)")


@dataclass
class Result:
    backend: str
    scenario: str
    rows: int
    p50: float
    p95: float
    server_p95: float | None
    load_p95: float
    rps: float
    targeted: bool

    def meets(self, healthz_rps: float | None) -> bool:
        return (
            self.load_p95 < TARGET_P95_MS
            and healthz_rps is not None
            and self.rps >= TARGET_RATIO * healthz_rps
        )


class Ids:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, prefix: str) -> str:
        self.n += 1
        return to_18_char_id(f"{prefix}{self.n:012d}")


def populate(engine: Engine, *, orders: int, invoices: int, noise_accounts: int) -> tuple[str, str]:
    """Insert the big account and the noise accounts; returns (admin contact, big account).

    Every order has 3 lines and every invoice 4, over 5 products.
    """
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
    products = [ids("01t") for _ in range(5)]
    with engine.begin() as conn:
        conn.execute(
            insert(Product),
            [
                {**base, "sfid": p, "name": f"Product {n}", "family": "License"}
                for n, p in enumerate(products)
            ],
        )
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
            order_page = order_rows(account, n_orders)
            invoice_page = invoice_rows(account, n_invoices)
            conn.execute(insert(Order), order_page)
            conn.execute(insert(Invoice), invoice_page)
            conn.execute(
                insert(OrderLine),
                [
                    {
                        **base,
                        "sfid": ids("a0B"),
                        "order_sfid": o["sfid"],
                        "product_sfid": products[k % len(products)],
                        "quantity": Decimal(1 + k),
                        "net_price": Decimal(rng.randrange(1000, 100_000)) / 100,
                        "charge_type": "Standard Price",
                    }
                    for o in order_page
                    for k in range(3)
                ],
            )
            conn.execute(
                insert(InvoiceLine),
                [
                    {
                        **base,
                        "sfid": ids("a0E"),
                        "invoice_sfid": i["sfid"],
                        "description": f"Line {k + 1}",
                        "quantity": Decimal(1 + k),
                        "amount": Decimal(rng.randrange(1000, 100_000)) / 100,
                        "tax_amount": Decimal(rng.randrange(0, 2000)) / 100,
                    }
                    for i in invoice_page
                    for k in range(4)
                ],
            )
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return admin, big


@dataclass
class Sample:
    """One request as the client saw it: wall time and the server's own time."""

    client_ms: float
    server_ms: float | None


class Client:
    """One keep-alive HTTP/1.1 connection, timed from the client's side."""

    def __init__(self, url: str, cookie: str) -> None:
        where = urlsplit(url)
        self.connection = http.client.HTTPConnection(
            where.hostname or "127.0.0.1", where.port or 80, timeout=30
        )
        self.headers = {"Cookie": f"billing_portal={cookie}"} if cookie else {}

    def get(self, path: str) -> tuple[int, str, Sample]:
        started = time.perf_counter()
        self.connection.request("GET", path, headers=self.headers)
        response = self.connection.getresponse()
        body = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status}")
        match = _TIMING.search(response.getheader("server-timing") or "")
        return (
            response.status,
            body.decode(),
            Sample(elapsed, float(match.group(1)) if match else None),
        )

    def close(self) -> None:
        self.connection.close()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def measure(
    url: str, cookie: str, paths: Callable[[random.Random], str], requests: int, clients: int
) -> tuple[float, float, float | None, float, float]:
    """Sequential p50/p95 and server p95, then ``clients`` at once: p95 and requests/s."""
    rng = random.Random(11)
    http = Client(url, cookie)
    try:
        for _ in range(10):  # warm up the connection, the workers' caches and the planner
            http.get(paths(rng))
        sequential = [http.get(paths(rng))[2] for _ in range(requests)]
    finally:
        http.close()

    timings: list[float] = []
    lock = threading.Lock()
    per_client = max(20, requests * 3 // clients)
    errors: list[BaseException] = []
    go = threading.Barrier(clients + 1)

    def worker(seed: int) -> None:
        r = random.Random(seed)
        local: list[float] = []
        client = Client(url, cookie)
        try:
            client.get(paths(r))  # connected before the clock starts
            go.wait()
            for _ in range(per_client):
                local.append(client.get(paths(r))[2].client_ms)
        except Exception as exc:  # noqa: BLE001 - reported after the run
            errors.append(exc)
        finally:
            client.close()
        with lock:
            timings.extend(local)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    go.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} clients failed: {errors[0]!r}")
    client_ms = [s.client_ms for s in sequential]
    server_ms = [s.server_ms for s in sequential if s.server_ms is not None]
    return (
        statistics.median(client_ms),
        _percentile(client_ms, 0.95),
        _percentile(server_ms, 0.95) if server_ms else None,
        _percentile(timings, 0.95),
        len(timings) / elapsed,
    )


_LISTENING = re.compile(r"portal at (http://\S+);")


class WebProcess:
    """``billing-sync run`` with a broker: the deployment's web process and its workers."""

    def __init__(self, database_url: str, broker_url: str, workers: int) -> None:
        self.database_url = database_url
        self.broker_url = broker_url
        self.workers = workers
        self.process: subprocess.Popen[str] | None = None
        self.url: str | None = None
        # closed in __exit__, which the process's lifetime needs first
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115

    def __enter__(self) -> WebProcess:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("BILLING_SYNC_")},
            "BILLING_SYNC_DATABASE_URL": self.database_url,
            "BILLING_SYNC_BROKER_URL": self.broker_url,
            "BILLING_SYNC_REDIS_PREFIX": f"bench-{uuid.uuid4().hex[:8]}",
            "BILLING_SYNC_PORTAL_SECRET": SECRET,
            "BILLING_SYNC_WEB_CONCURRENCY": str(self.workers),
            "PYTHONUNBUFFERED": "1",
        }
        command = [str(Path(sys.executable).parent / "billing-sync"), "run", "--port", "0"]
        self.process = subprocess.Popen(
            command, env=env, stdout=self.log, stderr=subprocess.STDOUT, text=True
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            self.log.seek(0)
            found = _LISTENING.search(self.log.read())
            if found:
                self.url = found.group(1)
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        self.log.seek(0)
        output = self.log.read()
        self.__exit__()
        raise RuntimeError(f"the web process did not start:\n{output}")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
            self.process = None
        self.log.close()


def _paged(path: str, params: dict[str, str], pages: int) -> Callable[[random.Random], str]:
    def pick(r: random.Random) -> str:
        return f"{path}?{urlencode({**params, 'page': str(r.randint(1, pages))})}"

    return pick


def _one_of(paths: list[str]) -> Callable[[random.Random], str]:
    return lambda r: r.choice(paths)


def _rows(text_: str) -> int:
    found = re.search(r"· (\d+) (?:orders|invoices)</span>", text_)
    return int(found.group(1)) if found else 0


def run_backend(
    name: str,
    url: str,
    engine: Engine,
    *,
    broker_url: str,
    workers: int,
    orders: int,
    invoices: int,
    requests: int,
    clients: int,
) -> list[Result]:
    print(f"[{name}] loading {orders} orders and {invoices} invoices ...", flush=True)
    upgrade(engine)
    admin, big = populate(engine, orders=orders, invoices=invoices, noise_accounts=4)
    with engine.connect() as conn:
        order_ids = [
            r[0]
            for r in conn.execute(
                select(Order.sfid).where(Order.account_sfid == big).order_by(Order.sfid).limit(200)
            )
        ]
        invoice_ids = [
            r[0]
            for r in conn.execute(
                select(Invoice.sfid)
                .where(Invoice.account_sfid == big)
                .order_by(Invoice.sfid)
                .limit(200)
            )
        ]
    signer = PortalSigner(SECRET)
    cookie = signer.dump_session(signer.new_session(admin))
    results = []
    with WebProcess(url, broker_url, workers) as server:
        assert server.url
        probe = Client(server.url, cookie)
        order_params = {"from": "2024-07-01", "to": "2025-06-30", "sort": "amount", "dir": "desc"}
        order_rows = _rows(probe.get(f"/portal/orders?{urlencode(order_params)}")[1])
        invoice_rows = _rows(probe.get("/portal/invoices")[1])
        probe.close()
        scenarios: list[tuple[str, int, Callable[[random.Random], str], bool]] = [
            (
                "orders list: date range, by amount",
                order_rows,
                _paged("/portal/orders", order_params, max(1, -(-order_rows // 25))),
                True,
            ),
            (
                "invoices list: all, newest first",
                invoice_rows,
                _paged("/portal/invoices", {}, max(1, -(-invoice_rows // 25))),
                True,
            ),
            ("order detail", 1, _one_of([f"/portal/orders/{i}" for i in order_ids]), False),
            ("invoice detail", 1, _one_of([f"/portal/invoices/{i}" for i in invoice_ids]), False),
            ("/healthz (the stack's own limit)", 0, _one_of(["/healthz"]), False),
        ]
        for label, rows, paths, targeted in scenarios:
            p50, p95, server_p95, load_p95, rps = measure(
                server.url, cookie, paths, requests, clients
            )
            results.append(Result(name, label, rows, p50, p95, server_p95, load_p95, rps, targeted))
            print(f"[{name}] {label}: {clients} clients p95 {load_p95:.1f} ms, {rps:.0f} req/s")
    return results


def table(results: list[Result], clients: int) -> str:
    lines = [
        "| backend | page | rows | p50 ms | p95 ms | server p95 ms "
        f"| {clients} clients: p95 ms | req/s | req/s vs /healthz "
        f"| p95 < {TARGET_P95_MS:g} ms and >= {TARGET_RATIO:g} x /healthz |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    limits = {r.backend: r.rps for r in results if r.scenario.startswith("/healthz")}
    for r in results:
        ratio = r.rps / limits[r.backend] if limits.get(r.backend) else float("nan")
        verdict = ("yes" if r.meets(limits.get(r.backend)) else "NO") if r.targeted else "-"
        server = f"{r.server_p95:.1f}" if r.server_p95 is not None else "-"
        lines.append(
            f"| {r.backend} | {r.scenario} | {r.rows or '-'} | {r.p50:.1f} | {r.p95:.1f} | "
            f"{server} | {r.load_p95:.1f} | {r.rps:.0f} | {ratio:.2f} | {verdict} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--postgres", metavar="URL", default=os.environ.get("BILLING_SYNC_TEST_POSTGRES_URL")
    )
    parser.add_argument(
        "--redis", metavar="URL", default=os.environ.get("BILLING_SYNC_TEST_REDIS_URL")
    )
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="web worker processes"
    )
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--invoices", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=300, help="sequential requests per list")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args()
    if not args.redis:
        parser.error("the web process needs a broker: --redis URL or BILLING_SYNC_TEST_REDIS_URL")
    common = {
        "broker_url": args.redis,
        "workers": args.workers,
        "orders": args.orders,
        "invoices": args.invoices,
        "requests": args.requests,
        "clients": args.clients,
    }

    load_before = os.getloadavg()[0]
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        engine = make_engine(sqlite_url)
        try:
            results += run_backend(
                "SQLite",
                sqlite_url,
                engine,
                **common,
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
                **common,
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
        load = f"load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
        section = (
            "## Portal\n\n"
            f"`bench/portal.py` ({when}, {cpus} CPUs, {load}): the web process (`billing-sync run` "
            f"with a broker) with {args.workers} worker processes on 127.0.0.1, the clients "
            f"in another process; one account with {args.orders:,} orders (3 lines each) and "
            f"{args.invoices:,} invoices (4 lines each), plus 4 other accounts with a fifth "
            "of that. Times are the client's (request sent to body read) unless marked "
            "server (the `Server-Timing` header); sequential: "
            f"{args.requests} requests on one connection; then {args.clients} concurrent "
            "keep-alive clients. `/healthz` of the same server is the stack's own limit. "
            f"Targets: {args.clients}-client p95 under {TARGET_P95_MS:g} ms for the lists "
            f"and their throughput at least {TARGET_RATIO:g} x `/healthz`'s.\n\n"
            f"{rendered}\n"
        )
        print(f"\nwrote {write_section(section)}")
    limits = {r.backend: r.rps for r in results if r.scenario.startswith("/healthz")}
    return 0 if all(r.meets(limits.get(r.backend)) for r in results if r.targeted) else 1


if __name__ == "__main__":
    sys.exit(main())
