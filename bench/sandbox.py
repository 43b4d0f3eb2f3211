"""Benchmark of the CRM sandbox: seed 1000 accounts, then page every record out of it.

Starts ``billing-sync sandbox --seed 1000`` as a subprocess, pages through every object
with simple-salesforce (query + nextRecordsUrl pages of 2000), first with one client and
then with four clients at once, and samples the server's resident memory throughout.
Prints a table and writes the "Sandbox" section of BENCHMARKS.md (other sections are
kept). Target: at least 20,000 records/s.

    .venv/bin/python bench/sandbox.py [--accounts 1000]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import psutil
import requests
from simple_salesforce import Salesforce

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from report import write_section  # noqa: E402

from sync.commands import launcher  # noqa: E402
from sync.commands.launcher import SandboxProcess  # noqa: E402
from sync.crm.session import make_session  # noqa: E402
from sync.sandbox.schema import load_schema  # noqa: E402

TARGET = 20_000
BENCHMARKS = ROOT / "BENCHMARKS.md"


def start(accounts: int) -> tuple[SandboxProcess, str, float]:
    started = time.perf_counter()
    sandbox = launcher.start_sandbox("--seed", str(accounts), "--seed-random", "1", timeout=1800.0)
    return sandbox, sandbox.url, sandbox.seed_seconds or time.perf_counter() - started


def client(url: str) -> Salesforce:
    return Salesforce(
        consumer_key="billing-sync",
        consumer_secret="sandbox-secret",
        domain="sandbox.my",
        session=make_session(url),
        version="59.0",
    )


def page_object(url: str, name: str, fields: list[str]) -> tuple[int, int]:
    sf = client(url)
    soql = f"SELECT {', '.join(fields)} FROM {name}"
    page = sf.query(soql)
    records, calls = len(page["records"]), 1
    while not page["done"]:
        page = sf.query_more(page["nextRecordsUrl"], identifier_is_url=True)
        records += len(page["records"])
        calls += 1
    return records, calls


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.02)

    def high_water(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status")
        if status.exists():
            match = re.search(r"VmHWM:\s+(\d+) kB", status.read_text())
            if match:
                return max(self.peak, int(match.group(1)) * 1024)
        return self.peak


def run(accounts: int) -> dict[str, float]:
    schema = load_schema()
    objects = [(o.name, o.field_names) for o in schema.objects.values()]
    process, url, seed_seconds = start(accounts)
    sampler = RssSampler(process.pid)
    sampler.start()
    try:
        stats = requests.get(f"{url}/_sandbox/stats", timeout=10).json()
        assert stats["api_calls"] == 0
        started = time.perf_counter()
        total = calls = 0
        for name, fields in objects:
            records, used = page_object(url, name, fields)
            total += records
            calls += used
        sequential = time.perf_counter() - started

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(lambda o: page_object(url, *o), objects))
        concurrent = time.perf_counter() - started
        assert sum(r for r, _ in results) == total
        peak = sampler.high_water()
    finally:
        sampler.done.set()
        process.stop(timeout=30)
    return {
        "accounts": accounts,
        "records": total,
        "calls": calls,
        "seed_s": seed_seconds,
        "sequential_s": sequential,
        "sequential_rps": total / sequential,
        "concurrent_s": concurrent,
        "concurrent_rps": total / concurrent,
        "peak_rss_mb": peak / 1024 / 1024,
    }


def table(r: dict[str, float]) -> str:
    verdict = "met" if r["sequential_rps"] >= TARGET else "NOT met"
    rows = [
        ("seeded accounts", f"{r['accounts']:,.0f}"),
        ("records (all 11 objects)", f"{r['records']:,.0f}"),
        ("seed time", f"{r['seed_s']:.1f} s"),
        ("query + locator calls", f"{r['calls']:,.0f}"),
        ("paging, 1 client", f"{r['sequential_s']:.2f} s = {r['sequential_rps']:,.0f} records/s"),
        ("paging, 4 clients", f"{r['concurrent_s']:.2f} s = {r['concurrent_rps']:,.0f} records/s"),
        ("server peak RSS", f"{r['peak_rss_mb']:.0f} MB"),
        (f"target >= {TARGET:,} records/s", verdict),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"| {'measure'.ljust(width)} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {k.ljust(width)} | {v} |" for k, v in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = parser.parse_args()
    result = run(args.accounts)
    rendered = table(result)
    print(rendered)
    if not args.no_write:
        cpu = platform.processor() or platform.machine()
        body = (
            "`python bench/sandbox.py`: `billing-sync sandbox --seed 1000` in a subprocess, "
            "every record of every object paged out with simple-salesforce 1.12 "
            "(`query` + `nextRecordsUrl`, pages of 2000), then the same with 4 clients at "
            "once; peak RSS of the server process.\n\n"
            f"{rendered}\n\n"
            f"Measured {datetime.now(UTC):%Y-%m-%d} on {os.cpu_count()} CPUs ({cpu}), "
            f"Python {platform.python_version()}."
        )
        write_section(f"## Sandbox\n\n{body}")
    return 0 if result["sequential_rps"] >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
