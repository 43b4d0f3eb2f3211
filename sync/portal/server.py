"""Serving the portal on uvicorn: blocking (:func:`serve`) or in a background thread."""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

import uvicorn
from sqlalchemy import Engine

from sync.portal.app import create_app
from sync.settings import Settings


def _config(app: Any, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        # The access log would write every URL, and a portal link's URL carries its
        # signed token: anyone reading the log could sign in until the link expires.
        access_log=False,
        # Behind a TLS-terminating proxy, X-Forwarded-Proto makes the request https,
        # which turns on Secure cookies and HSTS. Only the listed proxies are believed
        # (uvicorn's FORWARDED_ALLOW_IPS; default: this host).
        proxy_headers=True,
        forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS") or "127.0.0.1",
        server_header=False,
    )


def serve(settings: Settings, engine: Engine, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the portal until interrupted (SIGINT/SIGTERM), on uvicorn.

    Raises:
        SettingsError: ``BILLING_SYNC_PORTAL_SECRET`` is unset or too short.
    """
    uvicorn.Server(_config(create_app(settings, engine), host, port)).run()


class PortalServer:
    """The portal on uvicorn in a background thread of this process.

    ``start()`` returns the base URL once the server accepts connections (with
    ``port=0`` the operating system picks a free port); ``stop()`` shuts it down and
    waits for the thread. Usable as a context manager.
    """

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        app: Any = None,
        **app_options: Any,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.host = host
        self.port = port
        self.app = app if app is not None else create_app(settings, engine, **app_options)
        self.url: str | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    def start(self, timeout: float = 15.0) -> str:
        """Start serving; returns the base URL such as ``http://127.0.0.1:PORT``.

        Raises:
            RuntimeError: the server did not come up within ``timeout`` seconds.
        """
        if self._thread is not None:
            raise RuntimeError("the portal server is already running")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        sock.set_inheritable(True)
        self._socket = sock
        port = sock.getsockname()[1]
        server = uvicorn.Server(_config(self.app, self.host, port))
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="portal-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the portal server did not start")
            time.sleep(0.02)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{host}:{port}"
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the server thread to finish."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._server = None
        self._thread = None
        self._socket = None
        self.url = None

    def __enter__(self) -> PortalServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
