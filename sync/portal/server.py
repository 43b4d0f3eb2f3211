"""Serving the portal on uvicorn: blocking (:func:`serve`) or in a background thread."""

from __future__ import annotations

import os
from typing import Any

import uvicorn
from sqlalchemy import Engine

from sync.http_server import ThreadedServer
from sync.portal.app import create_app
from sync.settings import Settings


def portal_config(app: Any, host: str, port: int, **options: Any) -> uvicorn.Config:
    """The portal's uvicorn configuration; ``options`` go to :class:`uvicorn.Config`.

    ``app`` is the ASGI app, or a picklable callable that builds it (``factory=True``,
    implied when ``workers`` is given).
    """
    if options.get("workers"):
        options.setdefault("factory", True)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        # uvicorn's own records go to the root handler, in BILLING_SYNC_LOG_FORMAT and
        # through the redaction filter, like every other record of the process.
        log_config=None,
        # The access log would write every URL, and a portal link's URL carries its
        # signed token: anyone reading the log could sign in until the link expires.
        access_log=False,
        # Behind a TLS-terminating proxy, X-Forwarded-Proto makes the request https,
        # which turns on Secure cookies and HSTS. Only the listed proxies are believed
        # (uvicorn's FORWARDED_ALLOW_IPS; default: this host).
        proxy_headers=True,
        forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS") or "127.0.0.1",
        server_header=False,
        # On SIGTERM uvicorn stops accepting, closes idle keep-alive connections and lets
        # the requests in flight finish (portal requests take milliseconds); this bounds
        # a stuck one, so a stop stays within the 3 s the service promises.
        timeout_graceful_shutdown=2,
        **options,
    )


def serve(settings: Settings, engine: Engine, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the portal until interrupted (SIGINT/SIGTERM), on uvicorn.

    Raises:
        SettingsError: ``BILLING_SYNC_PORTAL_SECRET`` is unset or too short.
    """
    uvicorn.Server(portal_config(create_app(settings, engine), host, port)).run()


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
        self._http: ThreadedServer | None = None

    def start(self, timeout: float = 15.0) -> str:
        """Start serving; returns the base URL such as ``http://127.0.0.1:PORT``.

        Raises:
            RuntimeError: the server did not come up within ``timeout`` seconds.
        """
        if self._http is not None:
            raise RuntimeError("the portal server is already running")
        self._http = ThreadedServer(
            portal_config(self.app, self.host, self.port),
            self.host,
            self.port,
            name="portal-server",
        )
        try:
            self.url = self._http.start(timeout)
        except RuntimeError:
            self._http = None
            raise
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the server thread to finish."""
        if self._http is not None:
            self._http.stop(timeout)
        self._http = None
        self.url = None

    def __enter__(self) -> PortalServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
