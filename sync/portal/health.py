"""``/healthz`` (the process is alive) and ``/readyz`` (the database is ready)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sync.db.engine import schema_is_current
from sync.service.listener_status import summary

log = logging.getLogger("sync.portal")


class Health:
    """The probes of the web process; no session, no billing data."""

    def __init__(self, engine: Engine, events: Callable[[], dict[str, Any]]) -> None:
        """Probe ``engine``; ``events`` reads the status model's listener part."""
        self.engine = engine
        self.events = events

    def healthz(self, request: Request) -> Response:
        """The process is alive."""
        return JSONResponse({"status": "ok"})

    def readyz(self, request: Request) -> Response:
        """The database answers and its schema is the newest migration."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            current = schema_is_current(self.engine)
        except Exception as exc:  # noqa: BLE001 - any database failure means "not ready"
            log.warning("readyz: database unreachable: %s", type(exc).__name__)
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
        if not current:
            return JSONResponse({"status": "unavailable", "database": "schema outdated"}, 503)
        # The listener's state is detail, not readiness: without it the mirror is kept
        # fresh by polling at the configured interval.
        try:
            events = summary(self.events())
        except Exception as exc:  # noqa: BLE001 - detail only: readiness was decided above
            log.warning("readyz: status unreadable: %s", type(exc).__name__)
            events = None
        return JSONResponse({"status": "ready", "database": "ok", "events": events})
