"""`billing-sync sync`, `status`, `db upgrade` and `mappings check`.

Exit codes: 0 success; 1 a pass failed (the message says why); 2 configuration or
mapping error; 75 (EX_TEMPFAIL) the CRM's API request limit is spent: try again later.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from sync.clock import utc_now
from sync.context import (
    SyncContext,
    check_filters,
    crm_from_settings,
    describe_objects,
)
from sync.crm.errors import CrmConfigurationError, CrmError, RequestLimitExceededError
from sync.db import service_state
from sync.db.engine import current_revision, head_revision, make_engine, upgrade
from sync.db.shapes import MIRRORED_SHAPES
from sync.mapping.loader import default_mappings_dir, load_mappings
from sync.mapping.spec import MappingError
from sync.mapping.validate import validate_mappings
from sync.pull import Outcome, PassResult, Progress, pull_all
from sync.pull.window import eta
from sync.service import status as service_status
from sync.service.locks import redis_client
from sync.service.status import StatusReader
from sync.settings import Settings, SettingsError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_LIMIT = 75  # EX_TEMPFAIL: the org's API allowance is spent; retry later

API_USAGE_KEY = "crm:api_usage"


def _err(text: str) -> None:
    sys.stderr.write(f"billing-sync: {text}\n")
    sys.stderr.flush()


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


class StartupError(Exception):
    """The service cannot start; carries the exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@contextmanager
def open_context(settings: Settings) -> Iterator[SyncContext]:
    """A started :class:`SyncContext` (schema upgraded, mappings validated), then closed.

    Raises:
        StartupError: with the exit code and one clear message.
    """
    try:
        ctx = SyncContext.from_settings(settings)
    except MappingError as exc:
        raise StartupError(str(exc), EXIT_CONFIG) from None
    except (CrmConfigurationError, SettingsError) as exc:
        raise StartupError(str(exc), EXIT_CONFIG) from None
    except RequestLimitExceededError as exc:
        raise StartupError(f"the CRM's API request limit is spent: {exc}", EXIT_LIMIT) from None
    except CrmError as exc:
        raise StartupError(f"cannot reach the CRM: {exc}", EXIT_FAILED) from None
    except SQLAlchemyError as exc:
        raise StartupError(f"database error: {exc}", EXIT_FAILED) from None
    try:
        yield ctx
    finally:
        ctx.close()


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m{seconds % 60:02.0f}s"
    if seconds < 86400:
        return f"{seconds / 3600:.0f}h{(seconds % 3600) / 60:02.0f}m"
    return f"{seconds / 86400:.1f}d"


class ProgressLine:
    """A one-line progress display on a terminal: records, rate and ETA."""

    def __init__(self, stream: TextIO, *, min_interval: float = 0.2) -> None:
        self.stream = stream
        self.min_interval = min_interval
        self._last = 0.0
        self._shown = False

    def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        if now - self._last < self.min_interval:
            return
        self._last = now
        rate = progress.records / progress.elapsed if progress.elapsed > 0 else 0.0
        total = f"/{progress.total:,}" if progress.total else ""
        left = eta(progress.records, progress.total or 0, progress.elapsed)
        text = (
            f"  {progress.mapping}: {progress.records:,}{total} records, "
            f"{rate:,.0f}/s, ETA {_duration(left)}"
        )
        self.stream.write("\r\x1b[2K" + text)
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        """Erase the line (before a summary line is printed)."""
        if self._shown:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._shown = False


def summary_line(result: PassResult) -> str:
    """One line per mapping: outcome, records, API calls, duration, and any error."""
    calls = f"{result.api_calls} API call{'' if result.api_calls == 1 else 's'}"
    line = (
        f"{result.mapping:<24} {result.outcome.value:<15} {result.records:>9,} records "
        f"{calls:>13} {result.seconds:>7.2f}s"
    )
    if result.record_errors:
        line += f"  {result.record_errors} record error(s)"
    if result.load is not None and result.load.job_id:
        line += f"  bulk job {result.load.job_id}"
    if result.reconciled is not None:
        rec = result.reconciled
        line += f"  reconcile: {rec.outcome.value}, {rec.tombstoned} tombstoned"
        if rec.error:
            line += f" ({rec.error})"
    if result.error:
        line += f"\n    {result.error}"
    return line


def exit_code(results: list[PassResult]) -> int:
    """75 when the API limit stopped the run, 1 when a pass failed, else 0."""
    outcomes = {r.outcome for r in results}
    reconciles = {r.reconciled.outcome for r in results if r.reconciled is not None}
    if Outcome.LIMIT_EXCEEDED in outcomes | reconciles:
        return EXIT_LIMIT
    if Outcome.FAILED in outcomes | reconciles:
        return EXIT_FAILED
    return EXIT_OK


def _save_api_usage(ctx: SyncContext) -> None:
    usage = ctx.crm.api_usage
    if usage is None:
        return
    now = ctx.now()
    service_state.write(
        ctx.engine,
        API_USAGE_KEY,
        {"used": usage.used, "max": usage.max, "seen_at": now.isoformat()},
        now,
    )


def run_sync(
    ctx: SyncContext,
    *,
    names: list[str] | None,
    full: bool,
    reconcile: bool,
    as_json: bool,
    progress: Callable[[Progress], None] | None = None,
) -> int:
    """One pass, printed; returns the exit code."""
    started = time.monotonic()
    calls = ctx.crm.api_calls
    line = ProgressLine(sys.stderr) if progress is None and sys.stderr.isatty() else None

    def on_result(result: PassResult) -> None:
        if as_json:
            return
        if line is not None:
            line.clear()
        _out(summary_line(result))
        sys.stdout.flush()

    results = pull_all(
        ctx,
        names=names,
        full=full,
        reconcile=reconcile,
        progress=progress or (line if not as_json else None),
        on_result=None if reconcile else on_result,
    )
    if reconcile and not as_json:
        for result in results:
            _out(summary_line(result))
    if line is not None:
        line.clear()
    with contextlib.suppress(SQLAlchemyError):  # shown by status only; the pass is stored
        _save_api_usage(ctx)
    code = exit_code(results)
    api_calls = ctx.crm.api_calls - calls
    usage = ctx.crm.api_usage
    if as_json:
        document = {
            "ok": code == EXIT_OK,
            "exit_code": code,
            "api_calls": api_calls,
            "api_usage": {"used": usage.used, "max": usage.max} if usage else None,
            "seconds": round(time.monotonic() - started, 3),
            "mappings": [r.to_json() for r in results],
        }
        _out(json.dumps(document, indent=2))
    else:
        counts: dict[str, int] = {}
        for result in results:
            counts[result.outcome.value] = counts.get(result.outcome.value, 0) + 1
        parts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
        records = sum(r.records for r in results)
        _out(
            f"sync: {len(results)} mapping{'s' if len(results) != 1 else ''} ({parts}), "
            f"{records:,} records, {api_calls} API call{'s' if api_calls != 1 else ''} in "
            f"{time.monotonic() - started:.1f}s"
            + (f"; org API usage {usage.used:,}/{usage.max:,}" if usage else "")
        )
        if code == EXIT_LIMIT:
            _err(
                "stopped: the CRM's daily API request limit is spent "
                "(REQUEST_LIMIT_EXCEEDED); the next pass resumes from the stored watermarks"
            )
        elif code == EXIT_FAILED:
            failed = [r.mapping for r in results if r.outcome is Outcome.FAILED]
            _err(f"failed: {', '.join(failed) or 'reconcile'} (details above)")
    return code


def sync_command(args: argparse.Namespace, settings: Settings) -> int:
    """``billing-sync sync [--mapping NAME] [--full] [--reconcile] [--json]``."""
    try:
        with open_context(settings) as ctx:
            names = None
            if args.mapping:
                if args.mapping not in ctx.mappings:
                    _err(
                        f"no mapping called {args.mapping!r} "
                        f"(known: {', '.join(ctx.mappings.names)})"
                    )
                    return EXIT_CONFIG
                names = [args.mapping]
            return run_sync(
                ctx,
                names=names,
                full=args.full,
                reconcile=args.reconcile,
                as_json=args.json,
            )
    except StartupError as exc:
        _err(str(exc))
        if args.json:
            _out(json.dumps({"ok": False, "exit_code": exc.code, "error": str(exc)}))
        return exc.code


# --- status -----------------------------------------------------------------------------


def collect_status(engine: Engine, settings: Settings, now: dt.datetime) -> dict[str, Any]:
    """Everything ``billing-sync status`` shows, as a JSON-ready dict.

    It is the one status read model (:class:`sync.service.status.Status`) that ``/readyz``,
    the ops page and ``/metrics`` render too.

    Raises:
        MappingError: the mapping files are unusable.
    """
    mappings = load_mappings(default_mappings_dir(settings.mappings_dir), MIRRORED_SHAPES)
    client = redis_client(settings.broker_url) if settings.broker_url else None
    try:
        status = StatusReader(settings, engine, mappings).read(now=now, redis_client=client)
    finally:
        if client is not None:
            client.close()
    return status.to_dict()


def render_status(status: dict[str, Any]) -> list[str]:
    """The status as lines for a terminal."""
    lines = [*service_status.render(status["service"]), ""] if "service" in status else []
    lines += [
        f"{'mapping':<24} {'state':<18} {'records':>9} {'deleted':>8} {'errors':>6} "
        f"{'lag':>7}  {'last pass':<20} watermark"
    ]
    for item in status["mappings"]:
        last = (item["last_pass_finished_at"] or "-")[:19].replace("T", " ")
        mark = (item["watermark"] or "-")[:23].replace("T", " ")
        lines.append(
            f"{item['mapping']:<24} {item['state']:<18} {item['records']:>9,} "
            f"{item['tombstones']:>8,} {item['record_errors']:>6} "
            f"{_duration(item['lag_seconds']):>7}  {last:<20} {mark}"
        )
        load = item.get("last_load")
        if load and load.get("method") == "bulk":
            lines.append(
                f"    last load: bulk job {load.get('job_id')}, {load.get('api_calls')} API calls"
            )
        elif load and load.get("fallback"):
            lines.append(f"    last load: REST (bulk not possible: {load['fallback']})")
        if item["last_error"] and item["state"] == "failing":
            lines.append(f"    {item['last_outcome']}: {item['last_error']}")
    usage = status.get("api_usage")
    if usage:
        lines.append(
            f"org API usage: {usage['used']:,}/{usage['max']:,} (seen {usage['seen_at'][:19]})"
        )
    else:
        lines.append("org API usage: not seen yet")
    box = status.get("outbox")
    if box:
        counts = ", ".join(f"{n} {state}" for state, n in box["counts"].items() if n) or "empty"
        oldest = box["oldest_pending_seconds"]
        lines.append(
            f"outbox: {counts}"
            + (f"; oldest pending {_duration(oldest)}" if oldest is not None else "")
            + (f"; push paused until {box['paused_until'][:19]}" if box["paused_until"] else "")
        )
    errors = status.get("recent_record_errors") or []
    if errors:
        lines.append("recent record errors:")
        lines.extend(
            f"  {e['mapping']} {e['sfid']}: {e['reason']} (attempts {e['attempts']})"
            for e in errors
        )
    return lines


def status_command(args: argparse.Namespace, settings: Settings) -> int:
    """``billing-sync status [--json]``: reads the billing database only."""
    engine = make_engine(settings.database_url)
    try:
        revision = current_revision(engine)
        if revision is None:
            _err(
                "the billing database has no schema yet: run `billing-sync db upgrade` "
                "(or `billing-sync sync`, which upgrades it)"
            )
            return EXIT_FAILED
        status = collect_status(engine, settings, utc_now())
        if revision != head_revision():
            status["schema_warning"] = (
                f"database schema {revision} is behind {head_revision()}: run "
                "`billing-sync db upgrade`"
            )
    except MappingError as exc:
        _err(str(exc))
        return EXIT_CONFIG
    except SQLAlchemyError as exc:
        _err(f"database error: {exc}")
        return EXIT_FAILED
    finally:
        engine.dispose()
    if args.json:
        _out(json.dumps(status, indent=2))
    else:
        for text in render_status(status):
            _out(text)
        if "schema_warning" in status:
            _err(status["schema_warning"])
    return EXIT_OK


# --- db upgrade, mappings check ---------------------------------------------------------


def db_command(args: argparse.Namespace, settings: Settings) -> int:
    """``billing-sync db upgrade``: bring the schema to the newest migration."""
    engine = make_engine(settings.database_url)
    try:
        before = current_revision(engine)
        upgrade(engine)
        after = current_revision(engine)
    except SQLAlchemyError as exc:
        _err(f"database error: {exc}")
        return EXIT_FAILED
    finally:
        engine.dispose()
    if before == after:
        _out(f"database schema is current ({after})")
    else:
        _out(f"database schema upgraded from {before or 'empty'} to {after}")
    return EXIT_OK


def mappings_command(args: argparse.Namespace, settings: Settings) -> int:
    """``billing-sync mappings check``: load mappings/*.yaml, validate against the CRM."""
    folder = default_mappings_dir(settings.mappings_dir)
    try:
        mappings = load_mappings(folder, MIRRORED_SHAPES)
    except MappingError as exc:
        _err(str(exc))
        return EXIT_CONFIG
    try:
        with crm_from_settings(settings) as crm:
            report = validate_mappings(mappings, describe_objects(crm, mappings))
            check_filters(crm, report.mappings)
            calls = crm.api_calls
    except MappingError as exc:
        _err(str(exc))
        return EXIT_CONFIG
    except (CrmConfigurationError, SettingsError) as exc:
        _err(str(exc))
        return EXIT_CONFIG
    except RequestLimitExceededError as exc:
        _err(f"the CRM's API request limit is spent: {exc}")
        return EXIT_LIMIT
    except CrmError as exc:
        _err(f"cannot reach the CRM: {exc}")
        return EXIT_FAILED
    for mapping in report.mappings:
        _out(
            f"{mapping.name:<24} {mapping.crm_object} -> {mapping.table} "
            f"({len(mapping.fields)} fields, {mapping.direction.value})"
            + (f" where {mapping.filter}" if mapping.filter else "")
        )
    for warning in report.warnings:
        _out(f"warning: {warning}")
    _out(
        f"{len(report.mappings)} mappings in {folder} match the CRM "
        f"({calls} API call{'s' if calls != 1 else ''})"
    )
    return EXIT_OK
