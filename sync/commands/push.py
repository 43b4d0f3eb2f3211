"""`billing-sync push` and `billing-sync changes`: the outbox from the command line.

``push [--json]`` runs one push pass (what is due now); ``changes`` lists change sets,
``changes retry ID`` sends a conflicted or failed set again, ``changes cancel ID`` makes
sure a set is never pushed. Ops actions are written to the audit log.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json

from sqlalchemy.exc import SQLAlchemyError

from sync.changes import outbox
from sync.changes.rules import ItemOutcome
from sync.clock import utc_now
from sync.commands.pull import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_LIMIT,
    EXIT_OK,
    StartupError,
    _err,
    _out,
    open_context,
)
from sync.crm.errors import CrmError
from sync.db.engine import make_engine, upgrade
from sync.push import push_pending
from sync.settings import Settings


def push_command(args: argparse.Namespace, settings: Settings) -> int:
    """One push pass over the accepted changes; exit 0 unless the pass could not run.

    Exit codes: 0 done (conflicts and failures are outcomes, reported), 1 CRM or database
    trouble, 2 configuration, 75 the push is paused by the org's API limit.
    """
    try:
        with open_context(settings) as ctx:
            report = push_pending(ctx)
    except StartupError as exc:
        _err(str(exc))
        return exc.code
    except (CrmError, SQLAlchemyError) as exc:
        _err(f"push failed: {exc}")
        return EXIT_FAILED
    if args.json:
        _out(json.dumps(report.to_dict()))
    elif not (report.pushed or report.conflicts or report.failed or report.deferred):
        _out(
            "billing-sync push: nothing to push"
            + (f" now; {report.pending} waiting to be retried" if report.pending else "")
        )
    else:
        _out(
            f"billing-sync push: {report.pushed} applied, {report.conflicts} conflicts, "
            f"{report.failed} failed, {report.deferred} to retry, {report.pending} pending "
            f"({report.api_calls} API calls)"
        )
        if report.paused_until:
            _out(f"paused until {report.paused_until.isoformat()}: the org's API limit is spent")
    return EXIT_LIMIT if report.paused_until and report.pushed == 0 else EXIT_OK


def _age(now: dt.datetime, then: dt.datetime | None) -> str:
    if then is None:
        return "-"
    seconds = (now - then).total_seconds()
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def render_set(view: outbox.SetView, now: dt.datetime) -> list[str]:
    """A change set as lines for a terminal."""
    lines = [
        f"#{view.id} {view.state.value:<9} account {view.account_sfid} by {view.typed_name} "
        f"({view.contact_sfid}), accepted {view.accepted_at.isoformat()[:19]} "
        f"({_age(now, view.accepted_at)} ago), attempts {view.attempts}"
    ]
    for item in view.items:
        extra = ""
        if item.outcome is ItemOutcome.CONFLICT:
            extra = f"  [conflict: CRM has {item.crm_value!r}]"
        elif item.outcome:
            extra = f"  [{item.outcome.value}]"
        lines.append(f"    {item.label}{extra}")
    if view.message:
        lines.append(f"    {view.message}")
    return lines


def changes_command(args: argparse.Namespace, settings: Settings) -> int:
    """`changes [--state S] [--account A] [--json]`, `changes retry ID`, `changes cancel ID`."""
    engine = make_engine(settings.database_url)
    now = utc_now()
    try:
        upgrade(engine)
        if args.action in ("retry", "cancel"):
            if args.id is None:
                _err(f"changes {args.action} needs the change set's ID")
                return EXIT_CONFIG
            actor = f"ops:{getpass.getuser()}"
            try:
                with engine.begin() as conn:
                    move = outbox.retry if args.action == "retry" else outbox.cancel
                    move(conn, args.id, actor, now)
            except outbox.OutboxError as exc:
                _err(str(exc))
                return EXIT_FAILED
            verb = "queued again" if args.action == "retry" else "cancelled"
            _out(f"change set {args.id} {verb}")
            return EXIT_OK
        with engine.connect() as conn:
            sets = outbox.list_sets(
                conn, state=args.state, account_sfid=args.account, limit=args.limit
            )
    except SQLAlchemyError as exc:
        _err(f"database error: {exc}")
        return EXIT_FAILED
    finally:
        engine.dispose()
    if args.json:
        _out(json.dumps([s.to_dict() for s in sets], indent=2))
        return EXIT_OK
    if not sets:
        _out("no change sets" + (f" in state {args.state}" if args.state else ""))
    for view in sets:
        for line in render_set(view, now):
            _out(line)
    return EXIT_OK
