"""`billing-sync demo`: the sandbox CRM with seeded data, and the whole service beside it.

It starts the sandbox CRM (``billing-sync sandbox``, a child process stopped with the
demo) with generated accounts, mirrors it into the
billing database (``BILLING_SYNC_DATABASE_URL``, by default the SQLite file
``billing-sync.db``), then runs what ``billing-sync run`` runs without a broker: the
portal on ``--host``/``--port`` and the periodic change check and pulls on threads. It
prints signed portal links for a Billing Admin and for a contact who is not one. It
needs neither Redis nor PostgreSQL, and never touches a real org. Ctrl-C stops.

It logs in as production does, with the JWT bearer flow: a throwaway key pair is made at
start (removed at the end), the sandbox registers its certificate, and the service signs
its assertions with the key. The sandbox runs as a 2027 org: SOAP login off, the
password flow blocked.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, exists, func, select

from sync.commands.keys import KeyPair, generate_key_pair
from sync.commands.launcher import SandboxProcess, SandboxStartError
from sync.commands.launcher import start_sandbox as launch_sandbox
from sync.commands.pull import EXIT_CONFIG, EXIT_FAILED, summary_line
from sync.commands.run import run_service
from sync.context import SyncContext
from sync.crm.auth import SANDBOX_CONSUMER_KEY, SANDBOX_MY_DOMAIN, SANDBOX_USERNAME
from sync.crm.client import CrmClient
from sync.crm.errors import CrmError
from sync.db.models import Account, AccountContactRole, Contact
from sync.mapping.spec import MappingError
from sync.pull import PassResult, pull_all
from sync.settings import DEFAULT_PUBLIC_URL, Settings, SettingsError, demo_secret

DEMO_ACCOUNTS = 50
DEMO_SEED = 1
DEMO_INTERVAL = 3.0
# The sandbox org's daily API limit: large enough that the budget guard (20 % by
# default) keeps the demo's 3 s change check; a real org's limit is what it is.
DEMO_DAILY_LIMIT = 5_000_000
LINK_TTL = 8 * 3600.0


def _say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def start_sandbox(
    accounts: int = DEMO_ACCOUNTS, seed: int = DEMO_SEED, *, jwt_cert: str | None = None
) -> SandboxProcess:
    """The sandbox CRM, seeded with ``accounts`` accounts, serving on a free local port.

    Args:
        accounts: accounts to generate.
        seed: seed of the generated data.
        jwt_cert: certificate to register for the JWT bearer flow.

    Raises:
        SandboxStartError: it did not start (the message holds its output).
    """
    extra = ("--jwt-cert", jwt_cert) if jwt_cert else ()
    return launch_sandbox(
        "--seed",
        str(accounts),
        "--seed-random",
        str(seed),
        "--daily-limit",
        str(DEMO_DAILY_LIMIT),
        *extra,
        timeout=300.0,
    )


def demo_settings(settings: Settings, sandbox_url: str, keys: KeyPair) -> Settings:
    """``settings`` bent to the demo: the sandbox's CRM by JWT, one process, a secret.

    Whatever ``SALESFORCE_*`` and ``BILLING_SYNC_BROKER_URL`` say, the demo uses the
    sandbox it started, logs in with the demo's key, and runs everything in this process.
    """
    return settings.with_(
        broker_url=None,
        salesforce_auth="jwt",
        salesforce_username=SANDBOX_USERNAME,
        salesforce_password=None,
        salesforce_security_token=None,
        salesforce_consumer_key=SANDBOX_CONSUMER_KEY,
        salesforce_consumer_secret=None,
        salesforce_private_key_file=str(keys.key_file),
        salesforce_domain="login",
        salesforce_my_domain=SANDBOX_MY_DOMAIN,
        salesforce_instance_url=sandbox_url,
        portal_secret=settings.portal_secret or demo_secret(),
        pull_interval=min(settings.pull_interval, DEMO_INTERVAL),
    )


def demo_context(settings: Settings) -> SyncContext:
    """A context on ``settings``' database and CRM (the demo's sandbox, by JWT)."""
    crm = CrmClient.from_settings(settings)
    try:
        return SyncContext.from_settings(settings, crm=crm)
    except BaseException:
        crm.close()
        raise


def initial_pull(ctx: SyncContext) -> list[PassResult]:
    """A full pull plus reconcile (a database left by an earlier demo is realigned)."""
    return pull_all(ctx, full=True, reconcile=True)


def _is_admin(role: str) -> Any:
    return (
        select(AccountContactRole.id)
        .join(Account, Account.sfid == AccountContactRole.account_sfid)
        .where(
            AccountContactRole.contact_sfid == Contact.sfid,
            AccountContactRole.role == role,
            ~AccountContactRole.is_deleted,
            ~Account.is_deleted,
        )
    )


def demo_contacts(engine: Engine, role: str) -> tuple[Any, Any]:
    """A Billing Admin and a contact who is Billing Admin of nothing (either may be None)."""
    columns = (Contact.sfid, Contact.first_name, Contact.last_name, Contact.email)
    order = (Contact.last_name, Contact.first_name, Contact.sfid)
    with engine.connect() as conn:
        admin = conn.execute(
            select(*columns)
            .where(~Contact.is_deleted, exists(_is_admin(role)))
            .order_by(*order)
            .limit(1)
        ).first()
        other = conn.execute(
            select(*columns)
            .where(~Contact.is_deleted, ~exists(_is_admin(role)))
            .order_by(*order)
            .limit(1)
        ).first()
    return admin, other


def describe_mirror(ctx: SyncContext) -> list[str]:
    """A line about the Billing Admins the mirror now holds."""
    role = ctx.settings.billing_admin_role
    with ctx.engine.connect() as conn:
        admin_count = conn.scalar(
            select(func.count(func.distinct(AccountContactRole.contact_sfid))).where(
                AccountContactRole.role == role, ~AccountContactRole.is_deleted
            )
        )
    return [f"{admin_count} contacts are {role} of an account"]


def portal_links(settings: Settings, engine: Engine, base_url: str) -> list[str]:
    """Lines with a signed portal link for a Billing Admin and for a non-admin."""
    if importlib.util.find_spec("sync.portal.links") is None:
        return []
    # The portal is optional in an installation: imported only when there is one.
    from sync.portal.links import PortalSigner

    signer = PortalSigner(settings.require_portal_secret())
    admin, other = demo_contacts(engine, settings.billing_admin_role)
    lines = []
    for label, contact in (
        (f"{settings.billing_admin_role} (sees the portal)", admin),
        ("not a Billing Admin (sees the coming-soon page)", other),
    ):
        if contact is None:
            continue
        name = " ".join(p for p in (contact.first_name, contact.last_name) if p)
        lines.append(f"{label}: {name} <{contact.email or 'no email'}>")
        lines.append("  " + signer.link_url(base_url, contact.sfid, ttl=LINK_TTL))
    return lines


def demo_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run the demo until Ctrl-C (or SIGTERM)."""
    # While it starts, SIGTERM interrupts like Ctrl-C, so the sandbox child (in a process
    # group of its own) is stopped either way; once running, both stop it cleanly.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return _run_demo(args, settings)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_demo(args: argparse.Namespace, settings: Settings) -> int:
    _say(f"starting the sandbox CRM with {DEMO_ACCOUNTS} generated accounts ...")
    key_dir = Path(tempfile.mkdtemp(prefix="billing-sync-demo-"))
    try:
        keys = generate_key_pair(key_dir, days=1)
        try:
            server = start_sandbox(jwt_cert=str(keys.cert_file))
        except SandboxStartError as exc:
            sys.stderr.write(f"billing-sync: {exc}\n")
            return EXIT_FAILED
        try:
            return _demo(args, settings, server, keys)
        finally:
            server.stop()
    finally:
        shutil.rmtree(key_dir, ignore_errors=True)


def _demo(
    args: argparse.Namespace, settings: Settings, server: SandboxProcess, keys: KeyPair
) -> int:
    """The demo on a started sandbox; returns the exit code."""
    demo = demo_settings(settings, server.url, keys)
    try:
        ctx = demo_context(demo)
    except MappingError as exc:
        sys.stderr.write(f"billing-sync: {exc}\n")
        return EXIT_CONFIG
    except CrmError as exc:
        sys.stderr.write(f"billing-sync: the sandbox CRM did not answer: {exc}\n")
        return EXIT_FAILED
    try:
        _say(f"sandbox CRM at {server.url}; billing database {demo.database_url}")
        _say(
            f"logged in with the JWT bearer flow as {SANDBOX_USERNAME} "
            f"(key {keys.key_file}, certificate registered with the sandbox)"
        )
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

        def ready(url: str | None) -> None:
            if url is None:
                _say("this installation has no portal; syncing only")
            else:
                base = url if demo.public_url == DEFAULT_PUBLIC_URL else demo.public_url
                _say(f"portal at {url}")
                for line in portal_links(demo, ctx.engine, base):
                    _say(line)
            _say(
                f"checking the CRM for changes every {demo.pull_interval:g}s; edit data at "
                f"{server.url} (any Salesforce client: client credentials with consumer "
                f"key {SANDBOX_CONSUMER_KEY}, secret sandbox-secret, on "
                f"{SANDBOX_MY_DOMAIN}) and watch it arrive. Ctrl-C stops."
            )

        code = run_service(demo, host=args.host, port=args.port, ctx=ctx, on_ready=ready)
        _say("stopped")
        return code
    except OSError as exc:
        sys.stderr.write(f"billing-sync: cannot listen on {args.host}:{args.port}: {exc}\n")
        return EXIT_FAILED
    except SettingsError as exc:
        sys.stderr.write(f"billing-sync: {exc}\n")
        return EXIT_CONFIG
    finally:
        ctx.close()
