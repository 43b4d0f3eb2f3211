"""``billing-sync sandbox``: serve the local Salesforce-compatible CRM until stopped."""

from __future__ import annotations

import argparse
import socket
import sys
import time

import uvicorn

from sync.sandbox.app import Sandbox
from sync.sandbox.config import SandboxConfig
from sync.sandbox.server import bind, uvicorn_config
from sync.settings import Settings


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
    )


def main(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the sandbox in the foreground; returns the exit code.

    Prints one line ``Sandbox CRM listening on http://HOST:PORT`` once it accepts
    requests (with ``--port 0`` that is how callers learn the port).
    """
    config = config_from_args(args)
    if config.seed < 0:
        sys.stderr.write("billing-sync sandbox: --seed must not be negative\n")
        return 2
    sandbox = Sandbox(config)
    try:
        started = time.perf_counter()
        counts = sandbox.start()
        if counts:
            sys.stdout.write(
                f"Seeded {config.seed} accounts ({sum(counts.values())} records) in "
                f"{time.perf_counter() - started:.1f} s\n"
            )
        try:
            sock = bind(config.host, config.port)
        except OSError as exc:
            sys.stderr.write(
                f"billing-sync sandbox: cannot listen on {config.host}:{config.port}: {exc}\n"
            )
            return 1
        host, port = sock.getsockname()[:2]
        server = uvicorn.Server(uvicorn_config(sandbox))
        original_startup = server.startup

        async def startup(sockets: list[socket.socket] | None = None) -> None:
            await original_startup(sockets=sockets)
            shown = f"[{host}]" if ":" in host else host
            sys.stdout.write(f"Sandbox CRM listening on http://{shown}:{port}\n")
            sys.stdout.flush()

        server.startup = startup  # type: ignore[method-assign]
        server.run(sockets=[sock])
    finally:
        sandbox.close()
    return 0
