"""Run the sandbox with uvicorn: in a background thread (tests, demo) or in the foreground.

:class:`SandboxServer` binds its socket before the server thread starts, so ``port=0``
gets a free port and :meth:`SandboxServer.start` returns only once requests are answered.
"""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from sync.sandbox.app import Sandbox, create_app
from sync.sandbox.config import SandboxConfig
from sync.sandbox.store import Store

__all__ = ["SandboxConfig", "SandboxServer", "bind", "uvicorn_config"]


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio's own loop only turns Nagle's algorithm off
    # (TCP_NODELAY) on sockets whose proto says TCP, and accepted sockets inherit proto 0
    # otherwise (uvloop sets it regardless). With Nagle on, a response's body waits for
    # the client's delayed ACK of its headers: ~40 ms per request on Linux.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


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
        backlog=2048,
    )


class SandboxServer:
    """A sandbox CRM served by uvicorn in a background thread of this process."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.sandbox: Sandbox | None = None
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

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
        sock = self._socket = bind(self.config.host, self.config.port)
        host, port = sock.getsockname()[:2]
        # asyncio, not uvloop: a thread must not change the process's event loop policy
        self._server = uvicorn.Server(uvicorn_config(self.sandbox, loop="asyncio"))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="sandbox", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.01)
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}"
        return self.url

    def stop(self) -> None:
        """Stop serving and close the database."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self.sandbox is not None:
            self.sandbox.close()
            self.sandbox = None
        self._server = None

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
