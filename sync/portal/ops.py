"""The ops dashboard: ``/ops/``, behind ``BILLING_SYNC_OPS_TOKEN``.

Access is by the ``Authorization`` header only: HTTP Basic (any user name, which is
logged as who acted; the token as password) or ``Bearer <token>``. A portal session
cookie is never looked at. Without the setting the routes do not exist (404).

Every action is a POST carrying a CSRF token (an HMAC of the user name under the ops
token: a browser sends Basic credentials to any form that posts here, so the
credentials alone do not prove the page made the request), and is logged with who did
it.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import logging
import re
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from sync.db import repo
from sync.db.repo import monitoring as monitoring_repo
from sync.monitoring import admins, charts, outbox
from sync.portal.monitoring import Monitor
from sync.portal.rendering import Templates

log = logging.getLogger("sync.ops")

REALM = "billing-sync ops"
_WHO = re.compile(r"[^A-Za-z0-9._@+-]")
RECENT_ERRORS = 20
_SFID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
_QUERY_MAX = 255


class OpsDenied(Exception):
    """The request carries no valid ops credentials."""


def _who(name: str) -> str:
    cleaned = _WHO.sub("", name)[:60]
    return cleaned or "ops"


def check_credentials(header: str | None, token: str) -> str:
    """Who is asking, from an ``Authorization`` header carrying the ops token.

    Returns:
        The Basic user name (cleaned) or ``token`` for a bearer token.

    Raises:
        OpsDenied: no header, another scheme, or the wrong token.
    """
    if not header:
        raise OpsDenied
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        if hmac.compare_digest(value.encode(), token.encode()):
            return "token"
        raise OpsDenied
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise OpsDenied from None
        user, sep, password = decoded.partition(":")
        if sep and hmac.compare_digest(password.encode(), token.encode()):
            return _who(user)
    raise OpsDenied


def _unauthorized() -> Response:
    return PlainTextResponse(
        "The ops dashboard needs the ops token (HTTP Basic password or bearer token).\n",
        401,
        headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
    )


class OpsPages:
    """The ops dashboard's handlers.

    They share the web process's :class:`~sync.portal.rendering.Templates` with the
    portal, and nothing else of it: no portal session, no portal access check.
    """

    def __init__(self, token: str, monitor: Monitor, templates: Templates) -> None:
        self.token = token
        self.monitor = monitor
        self.templates = templates

    def csrf_token(self, who: str) -> str:
        """The CSRF token of forms shown to ``who``."""
        digest = hmac.new(self.token.encode(), f"ops-csrf:{who}".encode(), hashlib.sha256)
        return digest.hexdigest()

    def _authorize(self, request: Request) -> str:
        return check_credentials(request.headers.get("authorization"), self.token)

    async def _check_post(self, request: Request) -> tuple[str, bool]:
        who = self._authorize(request)
        form = await request.form()
        sent = form.get("csrf_token")
        ok = isinstance(sent, str) and hmac.compare_digest(sent, self.csrf_token(who))
        return who, ok

    # --- pages -------------------------------------------------------------------------

    def index(self, request: Request) -> Response:
        """``GET /ops/``: the dashboard."""
        try:
            who = self._authorize(request)
        except OpsDenied:
            return _unauthorized()
        snap = self.monitor.status()
        now = snap.now
        with self.monitor.engine.connect() as conn:
            problems = monitoring_repo.problem_change_sets(conn)
            errors = repo.record_errors(conn, limit=RECENT_ERRORS)
            calls = monitoring_repo.api_calls_by_hour(conn, now - dt.timedelta(hours=24))
        lag_chart = charts.bar_chart(
            [(m.name, m.lag_seconds) for m in snap.mappings],
            title="Lag per mapping (now minus the newest change mirrored)",
            warn_above=300.0,
        )
        calls_chart = charts.hourly_columns(
            calls, now=now, title="CRM API calls of pull passes per hour, last 24 hours"
        )
        return self.templates.response(
            "ops.html",
            who=who,
            csrf_token=self.csrf_token(who),
            snap=snap,
            now=now,
            problems=problems,
            errors=errors,
            lag_chart=lag_chart,
            calls_chart=calls_chart,
            calls_24h=sum(calls.values()),
            notice=request.query_params.get("done", "")[:200],
        )

    def accounts(self, request: Request) -> Response:
        """``GET /ops/accounts?q=``: find an account by name, number, Id or contact email.

        One match goes straight to its page.
        """
        try:
            who = self._authorize(request)
        except OpsDenied:
            return _unauthorized()
        query = request.query_params.get("q", "").strip()[:_QUERY_MAX]
        found = []
        if query:
            with self.monitor.engine.connect() as conn:
                found = admins.search(conn, query)
            if len(found) == 1:
                return RedirectResponse(f"/ops/accounts/{found[0].sfid}", 303)
        return self.templates.response(
            "ops_accounts.html", who=who, query=query, accounts=found, limit=admins.SEARCH_LIMIT
        )

    def account(self, request: Request) -> Response:
        """``GET /ops/accounts/{sfid}``: the account's Billing Admins, now and before."""
        try:
            who = self._authorize(request)
        except OpsDenied:
            return _unauthorized()
        sfid = request.path_params["sfid"]
        answer = None
        if _SFID.fullmatch(sfid):
            with self.monitor.engine.connect() as conn:
                answer = admins.account_answer(conn, sfid, self.monitor.settings)
        if answer is None:
            return PlainTextResponse("No such account in the mirror.\n", 404)
        return self.templates.response("ops_account.html", who=who, answer=answer)

    # --- actions -----------------------------------------------------------------------

    async def pause(self, request: Request) -> Response:
        """``POST /ops/mappings/{name}/pause``."""
        return await self._set_paused(request, True)

    async def resume(self, request: Request) -> Response:
        """``POST /ops/mappings/{name}/resume``."""
        return await self._set_paused(request, False)

    async def _set_paused(self, request: Request, paused: bool) -> Response:
        try:
            who, ok = await self._check_post(request)
        except OpsDenied:
            return _unauthorized()
        if not ok:
            return PlainTextResponse("The form is stale: reload the page and retry.\n", 403)
        name = request.path_params["name"]
        if name not in self.monitor.mappings:
            return PlainTextResponse("No such mapping.\n", 404)
        repo.set_paused(self.monitor.engine, name, paused, now=self.monitor.clock())
        verb = "paused" if paused else "resumed"
        log.info("ops: %s %s mapping %s", who, verb, name, extra={"mapping": name, "actor": who})
        return _back(f"{name} {verb}")

    async def retry(self, request: Request) -> Response:
        """``POST /ops/change-sets/{id}/retry``."""
        return await self._change_set(request, "retry")

    async def cancel(self, request: Request) -> Response:
        """``POST /ops/change-sets/{id}/cancel``."""
        return await self._change_set(request, "cancel")

    async def _change_set(self, request: Request, action: str) -> Response:
        try:
            who, ok = await self._check_post(request)
        except OpsDenied:
            return _unauthorized()
        if not ok:
            return PlainTextResponse("The form is stale: reload the page and retry.\n", 403)
        change_set_id = int(request.path_params["id"])
        do = outbox.retry if action == "retry" else outbox.cancel
        moved = do(self.monitor.engine, change_set_id, who=who, now=self.monitor.clock())
        extra: dict[str, Any] = {"change_set_id": change_set_id, "actor": who}
        if not moved:
            log.info("ops: %s could not %s change set %s", who, action, change_set_id, extra=extra)
            return _back(f"change set {change_set_id} is no longer in a state to {action}")
        log.info("ops: %s %s change set %s", who, _past(action), change_set_id, extra=extra)
        return _back(f"change set {change_set_id} {_past(action)}")

    def routes(self) -> list[Route]:
        """The dashboard's routes."""
        return [
            Route("/ops", _to_index, methods=["GET"]),
            Route("/ops/", self.index, methods=["GET"]),
            Route("/ops/accounts", self.accounts, methods=["GET"]),
            Route("/ops/accounts/{sfid}", self.account, methods=["GET"]),
            Route("/ops/mappings/{name}/pause", self.pause, methods=["POST"]),
            Route("/ops/mappings/{name}/resume", self.resume, methods=["POST"]),
            Route("/ops/change-sets/{id:int}/retry", self.retry, methods=["POST"]),
            Route("/ops/change-sets/{id:int}/cancel", self.cancel, methods=["POST"]),
        ]


def _to_index(request: Request) -> Response:
    return RedirectResponse("/ops/", 307)


def _past(action: str) -> str:
    return {"retry": "sent again", "cancel": "cancelled"}[action]


def _back(notice: str) -> Response:
    return RedirectResponse("/ops/?done=" + quote(notice), 303)
