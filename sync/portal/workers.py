"""The portal served by several worker processes that share one listening socket.

``billing-sync run`` with a broker is the web process of the deployment; its background
work runs on Celery, so nothing ties a request to one process. The parent binds the socket
once, starts ``BILLING_SYNC_WEB_CONCURRENCY`` uvicorn workers (spawned, not forked: each
imports the app afresh) and supervises them with uvicorn's own supervisor: a worker that
dies is replaced, SIGHUP replaces them one at a time (each replacement serves before the
worker it replaces is stopped), and SIGTERM or SIGINT stops them all, each answering the
requests it holds.

Each worker builds everything a request needs after it starts (:class:`PortalFactory`):
its own engine and connection pool, its own task queue client, and its own metrics
flusher, which writes the tallies of that process. Nothing else is per process: sessions
and CSRF tokens are signed with the portal secret, so any worker checks what another
issued.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors.multiprocess import Multiprocess

from sync.changes.plan import PlanError
from sync.db.engine import make_engine
from sync.http_server import base_url, bind
from sync.mapping.spec import MappingError
from sync.portal.app import create_app
from sync.portal.server import portal_config
from sync.service.flush import Flusher
from sync.service.queue import TaskQueueFactory
from sync.settings import Settings, SettingsError
from sync.telemetry import logs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PortalFactory:
    """Builds one worker's portal app, in the worker process (uvicorn's app factory).

    It is pickled into each spawned worker, so it holds only settings and importable
    callables, never an engine or a connection.
    """

    settings: Settings
    task_queue: TaskQueueFactory
    log_level: int = logging.WARNING

    def __call__(self) -> Starlette:
        logs.configure(self.log_level, self.settings.log_format)
        engine = make_engine(self.settings.database_url)
        try:
            queue = self.task_queue(self.settings)
            app = create_app(self.settings, engine, push_trigger=queue.enqueue_push)
        except (SettingsError, MappingError, PlanError, SQLAlchemyError, OSError) as exc:
            # the same failure in every replacement: uvicorn's supervisor stops on this
            # exit code instead of restarting the worker in a loop
            log.error("a portal worker could not start: %s", exc)
            engine.dispose()
            sys.exit(STARTUP_FAILURE)
        flusher = Flusher(engine)

        @asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            flusher.start()
            try:
                yield
            finally:
                # the last flush writes to the database: off the event loop
                await asyncio.to_thread(flusher.stop)
                engine.dispose()

        app.router.lifespan_context = lifespan
        return app


FIRST_REQUEST_GRACE = 0.5
"""Seconds a stopping worker waits for the request of a connection it has just accepted."""


class DrainingHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol that answers the first request of a just-accepted connection.

    A stopping worker closes its listening socket and then every connection without a
    request in progress. The workers share one socket, so a worker may have accepted a
    connection whose request bytes it has not read yet: closing it resets a client that
    did nothing wrong (a proxy in front turns that into a 502). Here such a connection
    gets :data:`FIRST_REQUEST_GRACE` seconds for its request, which is answered with
    ``Connection: close``; a connection that already served requests is closed at once,
    as uvicorn does.
    """

    _requests = 0
    _draining = False

    def on_message_begin(self) -> None:
        self._requests += 1
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self._draining:
            self.cycle.keep_alive = False

    def shutdown(self) -> None:
        if self._requests == 0 and self.cycle is None and not self._draining:
            self._draining = True
            self.loop.call_later(FIRST_REQUEST_GRACE, self._shutdown_now)
            return
        super().shutdown()

    def _shutdown_now(self) -> None:
        if not self.transport.is_closing():
            super().shutdown()


class _Supervisor(Multiprocess):
    """uvicorn's supervisor that reports once every worker answers requests."""

    def __init__(
        self, config: uvicorn.Config, sockets: list[socket.socket], on_ready: Callable[[], None]
    ) -> None:
        super().__init__(config, sockets)
        self.on_ready = on_ready
        self.ready = False

    def init_processes(self) -> None:
        super().init_processes()
        timeout = self.config.timeout_worker_healthcheck
        if all(p.wait_until_ready(timeout, self.should_exit) for p in self.processes):
            self.ready = True
            self.on_ready()

    def failed_to_start(self) -> bool:
        return any(p.exitcode == STARTUP_FAILURE for p in self.processes)


def serve_workers(
    factory: PortalFactory,
    *,
    host: str,
    port: int,
    workers: int,
    on_ready: Callable[[str], None],
    startup_timeout: int = 60,
) -> int:
    """Serve the portal from ``workers`` processes until SIGTERM or SIGINT (main thread).

    Args:
        factory: builds each worker's app.
        host: the address to listen on.
        port: the port (0: any free port).
        workers: how many worker processes.
        on_ready: called with the base URL once every worker answers requests.
        startup_timeout: seconds a worker may take to start serving.

    Returns:
        The exit code: 0 after a clean stop, 1 when the workers could not start.
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("the portal's worker processes are supervised from the main thread")
    sock = bind(host, port)
    url = base_url(sock)
    config = portal_config(
        factory,
        host,
        port,
        workers=workers,
        http=DrainingHttpProtocol,
        timeout_worker_healthcheck=startup_timeout,
    )
    try:
        supervisor = _Supervisor(config, [sock], lambda: on_ready(url))
        supervisor.run()
    finally:
        sock.close()
    return 1 if supervisor.failed_to_start() or not supervisor.ready else 0
