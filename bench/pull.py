"""Pull benchmark: billing-sync's full pull against fetch-only and a naive ORM loader.

Seeds the sandbox (a subprocess) with about 100k records and measures, each in a fresh
child process so that peak RSS is the measured work's own:

1. fetch-only: every mapping's pull query paged through (pages of 2,000) and discarded;
2. billing-sync's full pull (`pull_all(full=True)`) into PostgreSQL and into SQLite;
3. the naive approach: simple-salesforce ``query_all`` plus one SQLAlchemy ORM ``merge``
   per row (looked up by sfid first, so reruns update), on a subset, extrapolated;
4. peak RSS of the pull at ~100k and ~300k records;
5. the API calls of an idle pass over every mapping, counted by the sandbox.

Prints a table and rewrites the "Pull" section of BENCHMARKS.md (other sections kept).
Run: ``python bench/pull.py`` (PostgreSQL from BILLING_SYNC_TEST_POSTGRES_URL, default
postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import requests
from report import write_section

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sync.commands import launcher  # noqa: E402
from sync.commands.launcher import SandboxProcess  # noqa: E402

BENCHMARKS = ROOT / "BENCHMARKS.md"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


# -- the sandbox ------------------------------------------------------------------------


def start_sandbox(accounts: int) -> tuple[SandboxProcess, str, int]:
    sandbox = launcher.start_sandbox("--seed", str(accounts), "--seed-random", "1", timeout=1800.0)
    return sandbox, sandbox.url, sandbox.seeded_records


def stop_sandbox(sandbox: SandboxProcess) -> None:
    sandbox.stop()


def sandbox_calls(url: str) -> int:
    answer = requests.get(f"{url}/_sandbox/stats", timeout=10)
    answer.raise_for_status()
    return int(answer.json()["api_calls"])


# -- children: each measurement runs in its own process ---------------------------------


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child_fetch(url: str) -> dict[str, Any]:
    from sync.context import crm_from_settings
    from sync.db.shapes import MIRRORED_SHAPES
    from sync.mapping import load_mappings
    from sync.mapping.loader import PROJECT_MAPPINGS
    from sync.pull import window_soql
    from sync.pull.window import plan_window
    from sync.settings import Settings

    crm = crm_from_settings(Settings(salesforce_instance_url=url))
    crm.login()
    mappings = load_mappings(PROJECT_MAPPINGS, MIRRORED_SHAPES)
    window = plan_window(None, now=dt.datetime.now(dt.UTC), lookback=dt.timedelta(0))
    per_object: dict[str, int] = {}
    started = time.perf_counter()
    for mapping in mappings:
        count = 0
        for page in crm.query_pages(window_soql(mapping, window), include_deleted=True):
            count += len(page.records)
        per_object[mapping.name] = count
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "records": sum(per_object.values()),
        "api_calls": crm.api_calls,
        "per_object": per_object,
        "rss_mb": peak_rss_mb(),
    }


def child_pull(url: str, database_url: str) -> dict[str, Any]:
    from sync.context import SyncContext
    from sync.pull import Outcome, pull_all
    from sync.settings import Settings

    settings = Settings(database_url=database_url, salesforce_instance_url=url)
    ctx = SyncContext.from_settings(settings)
    start_calls = ctx.crm.api_calls
    started = time.perf_counter()
    results = pull_all(ctx, full=True)
    seconds = time.perf_counter() - started
    failed = [r.mapping for r in results if r.outcome is not Outcome.OK]
    if failed:
        raise RuntimeError(f"pull failed for {failed}: {[r.error for r in results]}")
    summary = {
        "seconds": seconds,
        "records": sum(r.records for r in results),
        "api_calls": ctx.crm.api_calls - start_calls,
        "startup_api_calls": start_calls,
        "rss_mb": peak_rss_mb(),
    }
    ctx.close()
    return summary


def child_idle(url: str, database_url: str) -> dict[str, Any]:
    from sync.context import SyncContext
    from sync.pull import pull_all
    from sync.settings import Settings

    ctx = SyncContext.from_settings(
        Settings(database_url=database_url, salesforce_instance_url=url)
    )
    before = sandbox_calls(url)
    results = pull_all(ctx)
    calls = sandbox_calls(url) - before
    ctx.close()
    return {
        "api_calls": calls,
        "mappings": len(results),
        "unchanged": sum(r.outcome.value == "unchanged" for r in results),
    }


def child_naive(url: str, database_url: str, limit: int) -> dict[str, Any]:
    from simple_salesforce import Salesforce
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from sync.crm.session import make_session
    from sync.db.engine import make_engine, upgrade
    from sync.db.models import MIRRORED_MODELS
    from sync.db.shapes import MIRRORED_SHAPES
    from sync.mapping import load_mappings, record_to_row
    from sync.mapping.loader import PROJECT_MAPPINGS

    sf = Salesforce(
        consumer_key="billing-sync",
        consumer_secret="sandbox-secret",
        domain="sandbox.my",
        session=make_session(url),
        version="59.0",
    )
    engine = make_engine(database_url)
    upgrade(engine)
    mappings = load_mappings(PROJECT_MAPPINGS, MIRRORED_SHAPES)
    done = 0
    started = time.perf_counter()
    with Session(engine) as session:
        for mapping in mappings:
            if done >= limit:
                break
            model = MIRRORED_MODELS[mapping.table]
            soql = (
                f"SELECT {', '.join(mapping.crm_fields)} FROM {mapping.crm_object} "
                f"ORDER BY SystemModstamp, Id LIMIT {limit - done}"
            )
            records = sf.query_all(soql, include_deleted=True)["records"]
            now = dt.datetime.now(dt.UTC)
            for record in records:
                row = record_to_row(mapping, record, now)
                existing = session.scalar(select(model.id).where(model.sfid == row["sfid"]))
                session.merge(model(id=existing, **row))
                done += 1
                if done % 2000 == 0:
                    session.commit()
        session.commit()
    seconds = time.perf_counter() - started
    engine.dispose()
    return {"seconds": seconds, "records": done, "rss_mb": peak_rss_mb()}


def run_child(*args: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"child {args[0]} failed:\n{result.stdout}\n{result.stderr}")
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


# -- databases --------------------------------------------------------------------------


class PostgresSchema:
    """A throwaway PostgreSQL schema for one measurement."""

    def __init__(self, base: str) -> None:
        from sqlalchemy import text

        from sync.db.engine import make_engine

        self.base = base
        self.name = f"bench_{uuid.uuid4().hex[:10]}"
        self._text = text
        self._engine = make_engine(base)
        with self._engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{self.name}"'))
        sep = "&" if "?" in base else "?"
        self.url = f"{base}{sep}options=-csearch_path%3D{self.name}"

    def drop(self) -> None:
        with self._engine.begin() as conn:
            conn.execute(self._text(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE'))
        self._engine.dispose()


# -- the run ----------------------------------------------------------------------------


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median time, with every run's seconds and the highest peak RSS."""
    ordered = sorted(runs, key=lambda run: run["seconds"])
    median = dict(ordered[(len(ordered) - 1) // 2])
    median["all_seconds"] = [run["seconds"] for run in runs]
    median["rss_mb"] = max(run["rss_mb"] for run in runs)
    return median


def seconds_list(run: dict[str, Any]) -> str:
    return " / ".join(f"{seconds:.2f}" for seconds in run["all_seconds"]) + " s"


def minimum_calls(per_object: dict[str, int]) -> int:
    return sum(math.ceil(n / 2000) for n in per_object.values())


def measure(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"latency_ms": args.latency_ms}
    workdir = Path(tempfile.mkdtemp(prefix="bench-pull-"))
    process, url, records = start_sandbox(args.accounts)
    try:
        report["records"] = records
        print(f"sandbox: {records:,} records ({args.accounts} accounts) at {url}", flush=True)
        # The three are measured in turn, `repeat` times, and each is reported by its
        # median run: on a shared machine a single run of any of them can be off by a
        # third, which would say more about the machine than about the pull.
        runs: dict[str, list[dict[str, Any]]] = {"fetch": [], "sqlite": [], "postgres": []}
        sqlite_url = ""
        for round_ in range(args.repeat):
            runs["fetch"].append(run_child("fetch", url))
            sqlite_url = f"sqlite:///{workdir / f'pull-{round_}.db'}"
            runs["sqlite"].append(run_child("pull", url, sqlite_url))
            schema = PostgresSchema(args.postgres)
            try:
                runs["postgres"].append(run_child("pull", url, schema.url))
            finally:
                schema.drop()
            print(
                f"round {round_ + 1}: fetch-only {runs['fetch'][-1]['seconds']:.2f}s, "
                f"billing-sync -> SQLite {runs['sqlite'][-1]['seconds']:.2f}s, "
                f"-> PostgreSQL {runs['postgres'][-1]['seconds']:.2f}s",
                flush=True,
            )
        for key, measured in runs.items():
            report[key] = median_run(measured)
        report["idle"] = run_child("idle", url, sqlite_url)
        print(f"idle pass: {report['idle']['api_calls']} API calls", flush=True)

        # A real org answers a page of 2,000 records in a few hundred milliseconds; with
        # that latency the fetch dominates and the pull's work overlaps with it.
        requests.post(f"{url}/_sandbox/faults", json={"latency_ms": args.latency_ms}, timeout=10)
        try:
            report["latency_fetch"] = run_child("fetch", url)
            report["latency_sqlite"] = run_child("pull", url, f"sqlite:///{workdir / 'latency.db'}")
            schema = PostgresSchema(args.postgres)
            try:
                report["latency_postgres"] = run_child("pull", url, schema.url)
            finally:
                schema.drop()
        finally:
            requests.delete(f"{url}/_sandbox/faults", timeout=10)
        print(
            f"with {args.latency_ms} ms per call: fetch-only "
            f"{report['latency_fetch']['seconds']:.2f}s, SQLite "
            f"{report['latency_sqlite']['seconds']:.2f}s, PostgreSQL "
            f"{report['latency_postgres']['seconds']:.2f}s",
            flush=True,
        )

        naive_url = f"sqlite:///{workdir / 'naive.db'}"
        report["naive"] = run_child("naive", url, naive_url, str(args.naive_records))
        print(f"naive (subset): {report['naive']['seconds']:.2f}s", flush=True)
        schema = PostgresSchema(args.postgres)
        try:
            report["naive_pg"] = run_child("naive", url, schema.url, str(args.naive_records))
        finally:
            schema.drop()
        print(f"naive PostgreSQL (subset): {report['naive_pg']['seconds']:.2f}s", flush=True)
    finally:
        stop_sandbox(process)

    process, url, records = start_sandbox(args.big_accounts)
    try:
        report["big_records"] = records
        print(f"sandbox: {records:,} records ({args.big_accounts} accounts)", flush=True)
        schema = PostgresSchema(args.postgres)
        try:
            report["big_postgres"] = run_child("pull", url, schema.url)
        finally:
            schema.drop()
        report["big_sqlite"] = run_child("pull", url, f"sqlite:///{workdir / 'big.db'}")
        print(
            f"300k: PostgreSQL {report['big_postgres']['seconds']:.2f}s, "
            f"SQLite {report['big_sqlite']['seconds']:.2f}s",
            flush=True,
        )
    finally:
        stop_sandbox(process)
    for path in workdir.iterdir():
        path.unlink()
    workdir.rmdir()
    return report


def render(report: dict[str, Any]) -> str:
    fetch = report["fetch"]
    n = fetch["records"]
    fetch_rate = n / fetch["seconds"]
    minimum = minimum_calls(fetch["per_object"])
    naive = report["naive"]
    naive_rate = naive["records"] / naive["seconds"]
    naive_pg = report["naive_pg"]
    naive_pg_rate = naive_pg["records"] / naive_pg["seconds"]
    rows = [
        (
            "fetch-only (pages read and dropped)",
            fetch["seconds"],
            n / fetch["seconds"],
            "1.00x",
            "-",
        ),
    ]
    lines = [
        "## Pull",
        "",
        "`python bench/pull.py`: the sandbox (`billing-sync sandbox --seed N`, a subprocess on "
        "the same machine) seeded with "
        f"{n:,} records over the 11 mapped objects; each measurement in a fresh process. "
        f"Fetch-only and the two pulls ran in turn {len(fetch['all_seconds'])} times; each "
        "row gives the median run (all runs: fetch-only "
        f"{seconds_list(fetch)}, SQLite {seconds_list(report['sqlite'])}, PostgreSQL "
        f"{seconds_list(report['postgres'])}). "
        "billing-sync is `pull_all(full=True)` (queryAll pages of 2,000, the next page fetched "
        "while the previous one is upserted with `INSERT ... ON CONFLICT DO UPDATE`, watermark "
        "in the same transaction). The naive loader is simple-salesforce `query_all` + one "
        "SQLAlchemy ORM `merge` per row (after a lookup by sfid); it was measured on the first "
        f"{naive['records']:,} records and extrapolated to {n:,} at its measured rate.",
        "",
        "| approach | seconds | records/s | vs fetch-only | billing-sync speed-up |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, key in (("SQLite", "sqlite"), ("PostgreSQL", "postgres")):
        run = report[key]
        rows.append(
            (
                f"billing-sync full pull -> {label}",
                run["seconds"],
                run["records"] / run["seconds"],
                f"{run['seconds'] / fetch['seconds']:.2f}x",
                "-",
            )
        )
    sqlite_rate = report["sqlite"]["records"] / report["sqlite"]["seconds"]
    pg_rate = report["postgres"]["records"] / report["postgres"]["seconds"]
    rows.append(
        (
            f"naive ORM merge -> SQLite (extrapolated from {naive['records']:,})",
            n / naive_rate,
            naive_rate,
            f"{(n / naive_rate) / fetch['seconds']:.2f}x",
            f"{sqlite_rate / naive_rate:.1f}x",
        )
    )
    rows.append(
        (
            f"naive ORM merge -> PostgreSQL (extrapolated from {naive_pg['records']:,})",
            n / naive_pg_rate,
            naive_pg_rate,
            f"{(n / naive_pg_rate) / fetch['seconds']:.2f}x",
            f"{pg_rate / naive_pg_rate:.1f}x",
        )
    )
    latency_fetch = report["latency_fetch"]["seconds"]
    rows.append(
        (
            f"fetch-only, CRM answering in {report['latency_ms']} ms per call",
            latency_fetch,
            n / latency_fetch,
            "1.00x",
            "-",
        )
    )
    for label, key in (("SQLite", "latency_sqlite"), ("PostgreSQL", "latency_postgres")):
        run = report[key]
        rows.append(
            (
                f"billing-sync full pull -> {label}, {report['latency_ms']} ms per call",
                run["seconds"],
                run["records"] / run["seconds"],
                f"{run['seconds'] / latency_fetch:.2f}x",
                "-",
            )
        )
    for label, seconds, rate, ratio, speedup in rows:
        lines.append(f"| {label} | {seconds:.2f} | {rate:,.0f} | {ratio} | {speedup} |")
    big_n = report["big_records"]
    slowest = max(report["sqlite"]["seconds"], report["postgres"]["seconds"])
    rss_small = max(report["postgres"]["rss_mb"], report["sqlite"]["rss_mb"])
    rss_big = max(report["big_postgres"]["rss_mb"], report["big_sqlite"]["rss_mb"])
    targets = [
        (">= 10x the naive approach", min(sqlite_rate / naive_rate, pg_rate / naive_pg_rate) >= 10),
        ("<= 1.5x the fetch-only time", slowest <= 1.5 * fetch["seconds"]),
        (
            f"<= 1.5x the fetch-only time with {report['latency_ms']} ms per call",
            max(report["latency_sqlite"]["seconds"], report["latency_postgres"]["seconds"])
            <= 1.5 * latency_fetch,
        ),
        ("API calls = minimum + a constant", report["sqlite"]["api_calls"] - minimum <= 11),
        (
            "peak RSS < 200 MB and flat as records triple",
            rss_big < 200 and rss_big < 1.2 * rss_small,
        ),
        ("idle pass = ceil(M/5) calls", report["idle"]["api_calls"] == 3),
    ]
    lines += [
        "",
        "| measure | value |",
        "|---|---|",
        f"| fetch-only rate | {fetch_rate:,.0f} records/s |",
        f"| API calls, full pull (SQLite / PostgreSQL) | {report['sqlite']['api_calls']} / "
        f"{report['postgres']['api_calls']} (+{report['sqlite']['startup_api_calls']} at start "
        "for the describe of all 11 objects, one /composite call) |",
        f"| minimum: sum of ceil(n/2000) per object | {minimum} (an empty object still costs "
        "its one query) |",
        f"| idle pass over all {report['idle']['mappings']} mappings | "
        f"{report['idle']['api_calls']} API calls, counted by the sandbox (ceil(11/5) = 3: "
        "/composite takes at most 5 queries) |",
        f"| peak RSS, pull of {n:,} records (PostgreSQL / SQLite) | "
        f"{report['postgres']['rss_mb']:.0f} / {report['sqlite']['rss_mb']:.0f} MB |",
        f"| peak RSS, pull of {big_n:,} records (PostgreSQL / SQLite) | "
        f"{report['big_postgres']['rss_mb']:.0f} / {report['big_sqlite']['rss_mb']:.0f} MB |",
        f"| pull of {big_n:,} records (PostgreSQL / SQLite) | "
        f"{report['big_postgres']['seconds']:.1f} / {report['big_sqlite']['seconds']:.1f} s "
        f"= {report['big_postgres']['records'] / report['big_postgres']['seconds']:,.0f} / "
        f"{report['big_sqlite']['records'] / report['big_sqlite']['seconds']:,.0f} records/s |",
        f"| peak RSS, fetch-only of {n:,} records | {fetch['rss_mb']:.0f} MB |",
        "",
        "Targets: "
        + "; ".join(f"{name}: {'met' if ok else 'not met'}" for name, ok in targets)
        + ".",
        "",
        "Where the time goes: fetch-only alternates between the sandbox preparing a page "
        "(another process on the same machine) and this process reading and decoding it. The "
        "pull adds one generated conversion per record, straight into the values the driver "
        "binds (about 1.5 µs per record), and the database's own work: SQLite's inserts into "
        "the table and its indexes (about 4 µs per row when measured alone), PostgreSQL's "
        "COPY into a staging table plus `INSERT ... SELECT ... ON CONFLICT` (about 13 µs per "
        "row, mostly server time spent on heap and index inserts). The next page is fetched "
        "while the current one is written, and each page is converted by whichever of the "
        "two threads is idle. The write of a page can only hide behind the time the sandbox "
        "takes to answer the next one, and the sandbox, the database server and the pull "
        "share 2 CPUs: SQLite's write about fits, PostgreSQL's server work does not (it "
        "needs a CPU while the sandbox needs one too). When the CRM takes "
        f"{report['latency_ms']} ms per call (a real org usually takes longer for a page of "
        "2,000 records), the fetch dominates and the pull's work hides behind it.",
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d} on {os.cpu_count()} CPUs "
        f"({platform.machine()}), Python {platform.python_version()}.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--accounts", type=int, default=850, help="~100k records")
    parser.add_argument("--big-accounts", type=int, default=2550, help="~300k records")
    parser.add_argument("--naive-records", type=int, default=10_000)
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of fetch-only and of each pull (median)"
    )
    parser.add_argument(
        "--latency-ms", type=int, default=150, help="CRM latency per call for the second run"
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("BILLING_SYNC_TEST_POSTGRES_URL", DEFAULT_POSTGRES),
    )
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        handlers = {
            "fetch": lambda: child_fetch(rest[0]),
            "pull": lambda: child_pull(rest[0], rest[1]),
            "idle": lambda: child_idle(rest[0], rest[1]),
            "naive": lambda: child_naive(rest[0], rest[1], int(rest[2])),
        }
        print(json.dumps(handlers[kind]()))
        return 0
    report = measure(args)
    section = render(report)
    print()
    print(section)
    if not args.no_write:
        write_section(section)
        print(f"\nwrote the Pull section of {BENCHMARKS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
