"""Bulk benchmark: a full pull through REST and through Bulk API 2.0, side by side.

Seeds the sandbox (a subprocess) with ``--accounts`` accounts (every object at the
seed's proportions; invoice lines are the largest object) and runs, each in a fresh
child process so that peak RSS is the run's own, a full pull into SQLite:

1. REST only (``bulk_threshold = 0``): queryAll pages of 2,000;
2. Bulk (the default threshold of 10,000): the large mappings through one queryAll job
   each, the small ones through REST;

both without added latency and with ``--latency-ms`` per CRM call. API calls are
counted by the client (each Bulk create, poll, results page and delete is one call).
A second, smaller seed gives the RSS at two sizes.

Prints a table and rewrites the "Bulk" section of BENCHMARKS.md (other sections kept).
Run: ``python bench/bulk.py [--accounts N] [--small-accounts M]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from pull import start_sandbox, stop_sandbox
from report import write_section

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child_pull(url: str, database_url: str, threshold: int, names: str) -> dict[str, Any]:
    from sync.context import SyncContext
    from sync.pull import Outcome, pull_all
    from sync.settings import Settings

    settings = Settings(
        database_url=database_url, salesforce_instance_url=url, bulk_threshold=threshold
    )
    ctx = SyncContext.from_settings(settings)
    start_calls = ctx.crm.api_calls
    started = time.perf_counter()
    results = pull_all(ctx, full=True, names=names.split(",") if names else None)
    seconds = time.perf_counter() - started
    failed = [r.mapping for r in results if r.outcome is not Outcome.OK]
    if failed:
        raise RuntimeError(f"pull failed for {failed}: {[r.error for r in results]}")
    lines = next(r for r in results if r.mapping == "invoice_lines")
    summary = {
        "seconds": seconds,
        "records": sum(r.records for r in results),
        "api_calls": ctx.crm.api_calls - start_calls,
        "lines_records": lines.records,
        "lines_calls": lines.api_calls,
        "bulk_mappings": [r.mapping for r in results if r.load and r.load.job_id],
        "rss_mb": peak_rss_mb(),
    }
    ctx.close()
    return summary


def run_child(*args: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, timeout=7200
    )
    if result.returncode != 0:
        raise RuntimeError(f"child failed:\n{result.stdout}\n{result.stderr}")
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def set_latency(url: str, latency_ms: int) -> None:
    requests.post(f"{url}/_sandbox/faults", json={"latency_ms": latency_ms}, timeout=10)


def pull_pair(url: str, workdir: Path, tag: str, names: str) -> dict[str, dict[str, Any]]:
    out = {}
    for name, threshold in (("rest", 0), ("bulk", 10_000)):
        database = workdir / f"{tag}-{name}.db"
        out[name] = run_child("pull", url, f"sqlite:///{database}", str(threshold), names)
        database.unlink(missing_ok=True)
    return out


def measure(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for size, accounts in (("small", args.small_accounts), ("big", args.accounts)):
            seeded = time.perf_counter()
            process, url, records = start_sandbox(accounts)
            report[f"{size}_seed_seconds"] = time.perf_counter() - seeded
            report[f"{size}_records"] = records
            try:
                report[size] = pull_pair(url, workdir, size, args.mappings)
                if size == "big":
                    set_latency(url, args.latency_ms)
                    report["latency"] = pull_pair(url, workdir, "latency", args.mappings)
                    set_latency(url, 0)
            finally:
                stop_sandbox(process)
    report["latency_ms"] = args.latency_ms
    return report


def render(report: dict[str, Any]) -> str:
    big, slow, small = report["big"], report["latency"], report["small"]

    def row(label: str, run: dict[str, Any]) -> str:
        rate = run["records"] / run["seconds"]
        return (
            f"| {label} | {run['seconds']:.1f} s | {rate:,.0f} | {run['api_calls']} | "
            f"{run['lines_calls']} | {run['rss_mb']:.0f} MB |"
        )

    lines_records = big["rest"]["lines_records"]
    small_lines = small["bulk"]["lines_records"]
    which = (
        f"a full pull of {report['mappings']}"
        if report["mappings"]
        else "a full pull of every mapping"
    )
    command = f"`python bench/bulk.py --accounts {report['accounts']} --small-accounts "
    command += f"{report['small_accounts']}"
    command += f" --mappings {report['mappings']}`" if report["mappings"] else "`"
    calls_ratio = big["rest"]["lines_calls"] / max(big["bulk"]["lines_calls"], 1)
    all_calls_ratio = big["rest"]["api_calls"] / max(big["bulk"]["api_calls"], 1)
    time_ratio = big["bulk"]["seconds"] / big["rest"]["seconds"]
    slow_ratio = slow["bulk"]["seconds"] / slow["rest"]["seconds"]
    rss_small, rss_big = small["bulk"]["rss_mb"], big["bulk"]["rss_mb"]
    out = [
        "## Bulk",
        "",
        f"{command} on {platform.machine()} ({platform.python_version()}, 2 CPUs shared "
        "with other work): "
        f"the sandbox seeded with {report['big_records']:,} records "
        f"({lines_records:,} invoice lines; seeding took {report['big_seed_seconds']:.0f} s), "
        f"{which} into SQLite, each run in a fresh process. REST: "
        "queryAll pages of 2,000. Bulk: mappings of 10,000 records or more through one "
        f"queryAll job each ({', '.join(big['bulk']['bulk_mappings'])}), results pages of "
        "100,000, the others through REST.",
        "",
        "| run | seconds | records/s | API calls (all) | API calls (invoice lines) | peak RSS |",
        "|---|---|---|---|---|---|",
        row("REST", big["rest"]),
        row("Bulk", big["bulk"]),
        row(f"REST, {report['latency_ms']} ms per call", slow["rest"]),
        row(f"Bulk, {report['latency_ms']} ms per call", slow["bulk"]),
        row(f"REST, {small_lines:,} invoice lines", small["rest"]),
        row(f"Bulk, {small_lines:,} invoice lines", small["bulk"]),
        "",
        f"Invoice lines: {calls_ratio:.0f}x fewer API calls through Bulk "
        f"({all_calls_ratio:.1f}x over every mapping). Bulk time / REST time: "
        f"{time_ratio:.2f} (target <= 1.2: {'met' if time_ratio <= 1.2 else 'not met'}); "
        f"with {report['latency_ms']} ms per call: {slow_ratio:.2f} "
        f"({'faster' if slow_ratio < 1 else 'not faster'}). Peak RSS "
        f"{rss_small:.0f} MB at {small_lines:,} invoice lines, {rss_big:.0f} MB at "
        f"{lines_records:,} (target < 250 MB and flat: "
        f"{'met' if rss_big < 250 and rss_big < 1.25 * rss_small else 'not met'}).",
    ]
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--accounts", type=int, default=2550, help="seed of the main runs")
    parser.add_argument("--small-accounts", type=int, default=850, help="seed of the RSS run")
    parser.add_argument("--latency-ms", type=int, default=150)
    parser.add_argument(
        "--mappings", default="", help="pull only these mappings (comma-separated; default all)"
    )
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args()
    if args.child:
        _, url, database_url, threshold, *names = args.child
        print(json.dumps(child_pull(url, database_url, int(threshold), names[0] if names else "")))
        return 0
    report = measure(args)
    report["accounts"], report["small_accounts"] = args.accounts, args.small_accounts
    report["mappings"] = args.mappings
    section = render(report)
    print()
    print(section)
    if not args.no_write:
        write_section(section)
        print("wrote the Bulk section of BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
