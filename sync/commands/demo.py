"""`billing-sync demo`: the embedded sandbox CRM, seeded, mirrored into the embedded DB.

It starts the sandbox in this process with generated accounts, runs a full pull into the
billing database (``BILLING_SYNC_DATABASE_URL``, by default the SQLite file
``billing-sync.db``), prints what it mirrored, and then pulls again every few seconds,
printing each change it mirrors, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

from sqlalchemy import func, select

from sync.commands.pull import EXIT_CONFIG, EXIT_FAILED, summary_line
from sync.context import SyncContext
from sync.crm.client import CrmClient
from sync.crm.errors import CrmError
from sync.db.models import AccountContactRole, Contact
from sync.mapping.spec import MappingError
from sync.pull import Outcome, PassResult, pull_all
from sync.sandbox.server import SandboxConfig, SandboxServer
from sync.settings import Settings

DEMO_ACCOUNTS = 50
DEMO_SEED = 1
DEMO_INTERVAL = 3.0


def _say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def start_sandbox(accounts: int = DEMO_ACCOUNTS, seed: int = DEMO_SEED) -> SandboxServer:
    """The sandbox CRM, seeded with ``accounts`` accounts, serving on a free local port."""
    server = SandboxServer(SandboxConfig(port=0, seed=accounts, seed_random=seed))
    server.start()
    return server


def demo_context(settings: Settings, sandbox_url: str) -> SyncContext:
    """A context on ``settings``' database and the sandbox at ``sandbox_url``.

    The sandbox's own login is used whatever ``SALESFORCE_*`` says: the demo never
    touches a real org.
    """
    settings = settings.with_(salesforce_instance_url=sandbox_url)
    crm = CrmClient.from_settings(settings, sandbox_url=sandbox_url)
    try:
        return SyncContext.from_settings(settings, crm=crm)
    except BaseException:
        crm.close()
        raise


def initial_pull(ctx: SyncContext) -> list[PassResult]:
    """A full pull plus reconcile (a database left by an earlier demo is realigned)."""
    return pull_all(ctx, full=True, reconcile=True)


def describe_mirror(ctx: SyncContext) -> list[str]:
    """A few lines about what the mirror now holds."""
    role = ctx.settings.billing_admin_role
    with ctx.engine.connect() as conn:
        admins = conn.execute(
            select(Contact.first_name, Contact.last_name, Contact.email)
            .join(AccountContactRole, AccountContactRole.contact_sfid == Contact.sfid)
            .where(AccountContactRole.role == role, ~AccountContactRole.is_deleted)
            .order_by(Contact.last_name, Contact.first_name)
            .limit(3)
        ).all()
        admin_count = conn.scalar(
            select(func.count(func.distinct(AccountContactRole.contact_sfid))).where(
                AccountContactRole.role == role, ~AccountContactRole.is_deleted
            )
        )
    lines = [f"{admin_count} contacts are {role} of an account, for example:"]
    lines += [
        f"  {first or ''} {last or ''} <{email or 'no email'}>" for first, last, email in admins
    ]
    return lines


def pull_every(
    ctx: SyncContext, interval: float, stop: threading.Event, *, quiet_unchanged: bool = True
) -> None:
    """Incremental passes every ``interval`` seconds until ``stop`` is set."""
    while not stop.wait(interval):
        for result in pull_all(ctx):
            if quiet_unchanged and result.outcome is Outcome.UNCHANGED:
                continue
            _say(time.strftime("%H:%M:%S ") + summary_line(result))


def demo_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run the demo until Ctrl-C."""
    _say(f"starting the sandbox CRM with {DEMO_ACCOUNTS} generated accounts ...")
    server = start_sandbox()
    try:
        try:
            ctx = demo_context(settings, server.url)
        except MappingError as exc:
            sys.stderr.write(f"billing-sync: {exc}\n")
            return EXIT_CONFIG
        except CrmError as exc:
            sys.stderr.write(f"billing-sync: the sandbox CRM did not answer: {exc}\n")
            return EXIT_FAILED
        try:
            _say(f"sandbox CRM at {server.url}; billing database {settings.database_url}")
            _say("full pull:")
            started = time.monotonic()
            results = initial_pull(ctx)
            for result in results:
                _say(summary_line(result))
            records = sum(r.records for r in results)
            _say(
                f"mirrored {records:,} records of {len(results)} objects in "
                f"{time.monotonic() - started:.1f}s"
            )
            for line in describe_mirror(ctx):
                _say(line)
            interval = min(settings.pull_interval, DEMO_INTERVAL)
            _say(
                f"pulling every {interval:g}s; edit data at {server.url} (any Salesforce "
                "client, login admin@sandbox.local / sandbox / sandbox-token). Ctrl-C stops."
            )
            try:
                pull_every(ctx, interval, threading.Event())
            except KeyboardInterrupt:
                _say("stopped")
            return 0
        finally:
            ctx.close()
    finally:
        server.stop()
