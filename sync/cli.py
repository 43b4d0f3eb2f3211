"""The one command-line entry point: ``billing-sync``.

Each command's arguments are declared here (they are a stable interface); its work lives
in the module named in ``_HANDLERS``, imported only when that command runs, so that
``billing-sync sandbox`` does not pay for Celery and ``billing-sync status`` does not
pay for the web server.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

from sync.db.states import ChangeState
from sync.service.queue import TaskQueueFactory
from sync.settings import Settings, SettingsError
from sync.telemetry import logs

Handler = Callable[..., int]
"""``(args, settings)``; the commands in :data:`_QUEUEING` also take ``task_queue=``."""

_HANDLERS: dict[str, str] = {
    "sandbox": "sync.sandbox.cli:main",
    "sync": "sync.commands.pull:sync_command",
    "status": "sync.commands.pull:status_command",
    "db": "sync.commands.pull:db_command",
    "mappings": "sync.commands.pull:mappings_command",
    "demo": "sync.commands.demo:demo_command",
    "push": "sync.commands.push:push_command",
    "changes": "sync.commands.push:changes_command",
    "run": "sync.commands.run:run_command",
    "pause": "sync.commands.run:pause_command",
    "resume": "sync.commands.run:resume_command",
    "portal-link": "sync.portal.cli:portal_link_command",
    "listen": "sync.commands.listen:listen_command",
    "keys": "sync.commands.keys:keys_command",
    "connect": "sync.commands.connect:connect_command",
    "admins": "sync.commands.admins:admins_command",
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="billing-sync",
        description="Mirror a Salesforce org's billing data, serve the Billing Portal, "
        "push accepted changes back.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("sandbox", help="serve the local Salesforce-compatible CRM")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8700)
    p.add_argument("--db", metavar="FILE", help="persist to this SQLite file")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed N accounts")
    p.add_argument("--seed-random", type=int, default=1, metavar="S", help="seed of the data")
    p.add_argument("--username", default="admin@sandbox.local")
    p.add_argument("--password", default="sandbox")
    p.add_argument("--security-token", default="sandbox-token")
    p.add_argument("--session-ttl", type=float, default=7200.0, metavar="SECONDS")
    p.add_argument("--daily-limit", type=int, default=100_000, metavar="CALLS")
    p.add_argument(
        "--retention",
        type=float,
        default=15 * 86400.0,
        metavar="SECONDS",
        help="how long deleted records stay in queryAll before purge",
    )
    p.add_argument(
        "--cometd-timeout",
        type=float,
        default=110.0,
        metavar="SECONDS",
        help="how long a CometD connect is held without events",
    )
    p.add_argument(
        "--event-retention",
        type=float,
        default=72 * 3600.0,
        metavar="SECONDS",
        help="how long change events stay available for replay",
    )
    p.add_argument(
        "--event-delivery-limit",
        type=int,
        default=50_000,
        metavar="EVENTS",
        help="change events delivered per rolling 24 hours (DailyDeliveredPlatformEvents)",
    )
    p.add_argument(
        "--cdc-entities",
        metavar="OBJECTS",
        help="comma-separated objects selected for Change Data Capture (default: all)",
    )
    p.add_argument(
        "--jwt-cert",
        metavar="FILE",
        help="PEM certificate of the app's JWT bearer flow (from `billing-sync keys generate`)",
    )
    p.add_argument(
        "--soap-login",
        choices=["on", "off"],
        default="off",
        help="SOAP login() for API versions before 65.0 (default off, as in a new org)",
    )
    p.add_argument(
        "--allow-password-flow",
        action="store_true",
        help="unblock the OAuth username-password flow (blocked, as in a new org)",
    )
    p.add_argument(
        "--my-domain",
        metavar="HOST",
        default="sandbox.my.salesforce.com",
        help="the org's My Domain host (client credentials work only there)",
    )

    p = sub.add_parser("sync", help="one pull pass over all (or one) mappings")
    p.add_argument("--mapping", metavar="NAME")
    p.add_argument("--full", action="store_true", help="reload instead of incremental")
    p.add_argument(
        "--reconcile",
        action="store_true",
        help="also tombstone rows whose CRM record was purged or hard-deleted",
    )
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("status", help="state of every mapping, outbox and API usage")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("db", help="database maintenance")
    p.add_argument("action", choices=["upgrade"])

    p = sub.add_parser("mappings", help="mapping maintenance")
    p.add_argument("action", choices=["check"])

    p = sub.add_parser("push", help="one pass over accepted changes")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("changes", help="list accepted change sets; retry or cancel one")
    p.add_argument("action", nargs="?", choices=["list", "retry", "cancel"], default="list")
    p.add_argument("id", nargs="?", type=int, metavar="ID")
    p.add_argument(
        "--state",
        choices=[s.value for s in ChangeState],
    )
    p.add_argument("--account", metavar="ACCOUNT_ID")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")

    for name, text in (
        ("run", "the whole service in one process"),
        ("demo", "sandbox with seeded data plus run, on embedded defaults"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=8000)

    for name, text in (("pause", "stop polling a mapping"), ("resume", "restart it")):
        p = sub.add_parser(name, help=text)
        p.add_argument("name", metavar="NAME")

    sub.add_parser("listen", help="the Change Data Capture listener alone (queues pulls on Celery)")

    p = sub.add_parser("keys", help="make the JWT bearer flow's key pair")
    p.add_argument("action", choices=["generate"])
    p.add_argument("--dir", default=".", metavar="DIR", help="where to write (default: .)")
    p.add_argument("--days", type=int, default=730, help="certificate validity (default 730)")
    p.add_argument("--force", action="store_true", help="replace existing files")

    p = sub.add_parser("connect", help="check the CRM connection, step by step")
    p.add_argument("action", choices=["check"])
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("admins", help="who is (and was) an account's Billing Admin")
    p.add_argument(
        "query",
        metavar="QUERY",
        help="account name (or part of it), account number, account Id or a contact's email",
    )
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("portal-link", help="print a signed portal URL for a contact")
    p.add_argument("contact", metavar="CONTACT", help="contact Id or email")
    p.add_argument("--ttl", type=float, default=3600.0, metavar="SECONDS")
    return parser


def _load(target: str) -> Handler:
    module, _, attr = target.partition(":")
    handler: Handler = getattr(importlib.import_module(module), attr)
    return handler


# Commands that hand work to the broker when one is configured: they receive the task
# queue factory that the entry point binds (workers/cli.py binds Celery).
_QUEUEING = frozenset({"run", "listen"})


def main(argv: Sequence[str] | None = None, *, task_queue: TaskQueueFactory | None = None) -> int:
    """Run ``billing-sync``; returns the process exit code.

    Args:
        argv: the arguments (default: the process's).
        task_queue: builds the broker's task queue for ``run`` and ``listen`` when
            ``BILLING_SYNC_BROKER_URL`` is set; without it those commands refuse a broker.
    """
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose > 1 else logging.INFO if args.verbose else logging.WARNING
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"billing-sync: {exc}", file=sys.stderr)
        return 2
    logs.configure(level, settings.log_format)
    handler = _load(_HANDLERS[args.command])
    try:
        if args.command in _QUEUEING:
            return handler(args, settings, task_queue=task_queue)
        return handler(args, settings)
    except KeyboardInterrupt:
        return 130
    finally:
        if args.command in _FLUSHED_COMMANDS:
            _flush_metrics(settings)


# One-shot commands that call the CRM: their call and error tallies go to the database
# before the process ends (`run` and the Celery workers flush on their own).
_FLUSHED_COMMANDS = frozenset({"sync", "push"})


def _flush_metrics(settings: Settings) -> None:
    # The database and the flusher only for the commands that flush.
    from sync.db.engine import make_engine
    from sync.service.flush import flush
    from sync.telemetry.counters import BUFFER

    if not BUFFER.pending():
        return
    engine = make_engine(settings.database_url)
    try:
        flush(engine)
    finally:
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
