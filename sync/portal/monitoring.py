"""``/metrics`` and the request metrics of the web process.

:class:`Monitor` holds what a scrape needs (settings, engine, the mappings' names and
tables, a Redis client when a broker is configured) and reads the one status read model
(:class:`~sync.service.status.Status`) on each call: ``/metrics``, the ops page and
``/readyz`` render it. :class:`RequestMetricsMiddleware`
counts every request by route template (never the raw path: ids would make a series
each) and status, and times it.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import redis
from sqlalchemy import Engine
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sync.db.shapes import MIRRORED_SHAPES
from sync.mapping.loader import default_mappings_dir, load_mappings
from sync.mapping.spec import MappingSet
from sync.monitoring import metrics
from sync.service.locks import redis_client
from sync.service.status import Status, StatusReader, read_events
from sync.settings import Settings
from sync.telemetry import counters, logs

log = logging.getLogger(__name__)


class Monitor:
    """Reads the deployment's status for ``/metrics``, the ops dashboard and ``/readyz``."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        clock: Callable[[], dt.datetime],
        mappings: MappingSet | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.clock = clock
        self._mappings = mappings
        self._redis: redis.Redis | None = None
        self._reader: StatusReader | None = None
        self._lock = threading.Lock()

    @property
    def mappings(self) -> MappingSet:
        """The deployment's mappings (loaded from the mapping files on first use)."""
        with self._lock:
            if self._mappings is None:
                self._mappings = load_mappings(
                    default_mappings_dir(self.settings.mappings_dir), MIRRORED_SHAPES
                )
            return self._mappings

    def _redis_client(self) -> redis.Redis | None:
        if not self.settings.broker_url:
            return None
        with self._lock:
            if self._redis is None:
                self._redis = redis_client(self.settings.broker_url)
            return self._redis

    def _status_reader(self) -> StatusReader:
        mappings = self.mappings
        with self._lock:
            if self._reader is None:
                self._reader = StatusReader(
                    self.settings, self.engine, mappings, pending=counters.BUFFER
                )
            return self._reader

    def status(self) -> Status:
        """The deployment's status, this process's tallies not flushed yet included."""
        return self._status_reader().read(now=self.clock(), redis_client=self._redis_client())

    def events(self) -> dict[str, Any]:
        """The status model's listener part alone (``/readyz``)."""
        return read_events(self.settings, self.engine, self.clock())

    def close(self) -> None:
        with self._lock:
            if self._redis is not None:
                self._redis.close()
                self._redis = None

    def metrics(self, request: Request) -> Response:
        """``GET /metrics``: the Prometheus text exposition."""
        return Response(metrics.render(self.status), media_type=metrics.CONTENT_TYPE)


def route_template(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """The route a request matched, as its template (``/portal/orders/{sfid}``)."""
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            if isinstance(route, Route):
                return route.path
            if isinstance(route, Mount):
                return route.path or "/"
    return "unmatched"


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class RequestIdMiddleware:
    """Gives every request an id: logged with each record, sent back as ``X-Request-ID``.

    A well-formed ``X-Request-ID`` from the proxy in front is kept, so one id follows
    the request through both logs.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = Headers(scope=scope).get("x-request-id", "")
        request_id = sent if _REQUEST_ID.match(sent) else uuid.uuid4().hex[:16]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        with logs.log_context(request_id=request_id):
            await self.app(scope, receive, send_with_id)


class RequestMetricsMiddleware:
    """Counts and times every HTTP request of the portal, by route template and status."""

    def __init__(self, app: ASGIApp, *, routes: Callable[[], Sequence[BaseRoute]]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        recorded = False

        def record(status: int) -> None:
            nonlocal recorded
            recorded = True
            seconds = time.perf_counter() - started
            route = route_template(self.routes(), scope)
            counters.BUFFER.inc(counters.PORTAL_REQUESTS, {"route": route, "status": str(status)})
            counters.BUFFER.observe(
                counters.PORTAL_DURATION, {"route": route}, seconds, counters.PORTAL_BUCKETS
            )

        async def timed_send(message: Message) -> None:
            # Recorded when the headers leave, before the body: a client that has the
            # whole answer can rely on the request being counted.
            if message["type"] == "http.response.start":
                record(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            if not recorded:
                record(500)
