"""``billing-sync sandbox``: serve the local Salesforce-compatible CRM until stopped."""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import Iterator

from sync.http_server import Server
from sync.sandbox.app import Sandbox
from sync.sandbox.config import SandboxConfig
from sync.sandbox.server import bind, uvicorn_config
from sync.settings import Settings

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    """The sandbox settings of the command line."""
    return SandboxConfig(
        host=args.host,
        port=args.port,
        db_path=args.db,
        seed=args.seed,
        seed_random=args.seed_random,
        username=args.username,
        password=args.password,
        security_token=args.security_token,
        session_ttl=args.session_ttl,
        daily_limit=args.daily_limit,
        retention=args.retention,
        cometd_timeout=getattr(args, "cometd_timeout", 110.0),
        event_retention=getattr(args, "event_retention", 72 * 3600.0),
        event_delivery_limit=getattr(args, "event_delivery_limit", 50_000),
        cdc_entities=_entities(getattr(args, "cdc_entities", None)),
        jwt_cert=getattr(args, "jwt_cert", None),
        soap_login=getattr(args, "soap_login", "off") == "on",
        allow_password_flow=getattr(args, "allow_password_flow", False),
        my_domain=getattr(args, "my_domain", None) or "sandbox.my.salesforce.com",
    )


def _entities(raw: str | None) -> list[str] | None:
    """``--cdc-entities Account,Contact`` -> the list; unset or ``all`` -> None (all)."""
    if raw is None or raw.strip().lower() in ("", "all"):
        return None
    return [name.strip() for name in raw.split(",") if name.strip()]


class _ForegroundServer(Server):
    """uvicorn in the main thread: announces itself once it accepts connections.

    On SIGTERM or SIGINT it answers the held CometD connects, shuts down gracefully and
    returns, so the database is closed and the process exits with status 0 (uvicorn
    would re-raise the signal instead).
    """

    def __init__(self, sandbox: Sandbox, banner: str) -> None:
        super().__init__(uvicorn_config(sandbox), on_shutdown=sandbox.cometd.release)
        self.banner = banner

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        sys.stdout.write(self.banner)
        sys.stdout.flush()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        originals = {sig: signal.signal(sig, self.handle_exit) for sig in _SIGNALS}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)


def main(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the sandbox in the foreground; returns the exit code.

    Prints one line ``Sandbox CRM listening on http://HOST:PORT`` once it accepts
    requests (with ``--port 0`` that is how callers learn the port).
    """
    config = config_from_args(args)
    if config.seed < 0:
        sys.stderr.write("billing-sync sandbox: --seed must not be negative\n")
        return 2
    try:
        sandbox = Sandbox(config)
    except sqlite3.Error as exc:
        sys.stderr.write(f"billing-sync sandbox: cannot open {config.db_path}: {exc}\n")
        return 1
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"billing-sync sandbox: --jwt-cert {config.jwt_cert}: {exc}\n")
        return 2
    try:
        started = time.perf_counter()
        counts = sandbox.start()
        if counts:
            sys.stdout.write(
                f"Seeded {config.seed} accounts ({sum(counts.values())} records) in "
                f"{time.perf_counter() - started:.1f} s\n"
            )
        elif config.seed:
            sys.stdout.write(f"{config.db_path} already holds data: not seeding\n")
        try:
            sock = bind(config.host, config.port)
        except OSError as exc:
            sys.stderr.write(
                f"billing-sync sandbox: cannot listen on {config.host}:{config.port}: {exc}\n"
            )
            return 1
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        server = _ForegroundServer(sandbox, f"Sandbox CRM listening on http://{shown}:{port}\n")
        server.run(sockets=[sock])
    finally:
        sandbox.close()
    return 0
