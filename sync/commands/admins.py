"""``billing-sync admins QUERY [--json]``: who is (and was) an account's Billing Admin.

QUERY is an account name (or part of it), an account number, an account Id or a
contact's email; the answer is the one ``/ops/accounts`` shows
(:mod:`sync.monitoring.admins`). Exit 0 when an account matched, 1 when none did.
"""

from __future__ import annotations

import argparse
import json

from sqlalchemy.exc import SQLAlchemyError

from sync.commands.pull import EXIT_FAILED, EXIT_OK, _err, _out
from sync.db.engine import make_engine, upgrade
from sync.monitoring import admins
from sync.settings import Settings


def _when(value: object) -> str:
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return text[:19].replace("T", " ") + " UTC"


def _contact(name: str, email: str | None) -> str:
    return f"{name} <{email}>" if email else name


def render(answer: admins.AccountAnswer) -> list[str]:
    """An account's answer as lines for a terminal."""
    title = answer.name or "(no name)"
    number = f", account number {answer.account_number}" if answer.account_number else ""
    deleted = " [deleted in the CRM]" if answer.deleted else ""
    lines = [f"{title} ({answer.sfid}{number}){deleted}"]
    lines.append(f"  CRM: {answer.crm_url}" if answer.crm_url else f"  CRM Id: {answer.sfid}")
    if answer.admins:
        lines.append("  Billing Admins:")
        lines += [
            f"    {_contact(a.name, a.email)} ({a.contact_sfid}) since {_when(a.since)}"
            for a in answer.admins
        ]
    else:
        lines.append("  Billing Admins: none")
    if answer.history:
        lines.append("  History:")
        lines += [
            f"    {_when(e.at)}  {e.change:<7} {_contact(e.name, e.email)} ({e.reason})"
            for e in answer.history
        ]
    if answer.change_sets:
        lines.append("  Recent change sets:")
        lines += [
            f"    #{s.id} {s.state:<9} {_when(s.accepted_at)} authorized by {s.authorized_by}"
            f" ({_contact(s.contact_sfid, s.email)}): {s.summary}"
            for s in answer.change_sets
        ]
    return lines


def admins_command(args: argparse.Namespace, settings: Settings) -> int:
    """`admins QUERY [--json]`."""
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            found = admins.answers(conn, args.query, settings)
    except SQLAlchemyError as exc:
        _err(f"database error: {exc}")
        return EXIT_FAILED
    finally:
        engine.dispose()
    if args.json:
        _out(json.dumps({"query": args.query, "accounts": [a.to_dict() for a in found]}, indent=2))
        return EXIT_OK if found else EXIT_FAILED
    if not found:
        _out(f"no mirrored account matches {args.query!r}")
        return EXIT_FAILED
    for i, answer in enumerate(found):
        if i:
            _out()
        for line in render(answer):
            _out(line)
    return EXIT_OK
