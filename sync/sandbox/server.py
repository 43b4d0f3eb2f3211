"""Run the sandbox with uvicorn: in a background thread (tests, demo) or in the foreground.

:class:`SandboxServer` binds its socket before the server thread starts, so ``port=0``
gets a free port and :meth:`SandboxServer.start` returns only once requests are answered.
"""

from __future__ import annotations

import uvicorn

from sync.http_server import ThreadedServer, bind
from sync.sandbox.app import Sandbox, create_app
from sync.sandbox.config import SandboxConfig
from sync.sandbox.store import Store

__all__ = ["SandboxConfig", "SandboxServer", "bind", "uvicorn_config"]


def uvicorn_config(sandbox: Sandbox, *, loop: str = "auto") -> uvicorn.Config:
    """The uvicorn settings the sandbox runs with (httptools, no access log)."""
    return uvicorn.Config(
        create_app(sandbox),
        loop=loop,
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=60,
        # Held CometD long polls are answered as the server stops (Server.on_shutdown:
        # CometdServer.release); this only bounds a request that is stuck.
        timeout_graceful_shutdown=3,
        backlog=2048,
    )


class SandboxServer:
    """A sandbox CRM served by uvicorn in a background thread of this process."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.sandbox: Sandbox | None = None
        self.url = ""
        self._http: ThreadedServer | None = None

    @property
    def store(self) -> Store:
        """The sandbox's data (available after :meth:`start`)."""
        if self.sandbox is None:
            raise RuntimeError("the sandbox is not started")
        return self.sandbox.store

    def start(self, timeout: float = 30.0) -> str:
        """Seed if configured, start serving, and return the base URL.

        Raises:
            RuntimeError: the server did not come up within ``timeout`` seconds.
        """
        self.sandbox = Sandbox(self.config)
        self.sandbox.start()
        # asyncio, not uvloop: a thread must not change the process's event loop policy
        self._http = ThreadedServer(
            uvicorn_config(self.sandbox, loop="asyncio"),
            self.config.host,
            self.config.port,
            name="sandbox",
            on_shutdown=self.sandbox.cometd.release,
        )
        self.url = self._http.start(timeout)
        return self.url

    def stop(self) -> None:
        """Stop serving and close the database."""
        if self._http is not None:
            self._http.stop()
            self._http = None
        if self.sandbox is not None:
            self.sandbox.close()
            self.sandbox = None

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
