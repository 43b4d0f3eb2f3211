"""The Billing Portal web app (Starlette), served from the mirrored billing database.

:func:`create_app` wires the pages of :mod:`sync.portal.pages` to their routes, behind
the security-header, timing and error-page middleware.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from sync.portal.base import HERE, Clock, Denied, utc_now
from sync.portal.links import DEFAULT_SESSION_TTL
from sync.portal.middleware import (
    ErrorPageMiddleware,
    SecurityHeadersMiddleware,
    ServerTimingMiddleware,
)
from sync.portal.monitoring import Monitor, RequestIdMiddleware, RequestMetricsMiddleware
from sync.portal.ops import OpsPages
from sync.portal.pages import Portal
from sync.settings import Settings


def _to_portal(request: Request) -> Response:
    return RedirectResponse("/portal/", 307)


def _guard(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
    """Turn :class:`Denied` into its response, for sync and async handlers alike."""
    if inspect.iscoroutinefunction(handler):

        async def async_endpoint(request: Request) -> Response:
            try:
                response: Response = await handler(request)
            except Denied as denied:
                return denied.response
            return response

        return async_endpoint

    def endpoint(request: Request) -> Response:
        try:
            response: Response = handler(request)
        except Denied as denied:
            return denied.response
        return response

    return endpoint


def create_app(
    settings: Settings,
    engine: Engine,
    *,
    session_ttl: float = DEFAULT_SESSION_TTL,
    clock: Clock = utc_now,
    push_trigger: Callable[[], None] | None = None,
    monitor: Monitor | None = None,
) -> Starlette:
    """The portal as an ASGI app, with ``/metrics`` and (with an ops token) ``/ops/``.

    Args:
        settings: needs ``portal_secret`` (16+ characters); ``billing_admin_role`` and
            ``public_url`` are used too.
        engine: the billing database (migrated).
        session_ttl: lifetime of a portal session in seconds.
        clock: the current time (tests pass a frozen or moving clock).
        push_trigger: starts a push at once after an Accept (a Celery task, or the
            in-process scheduler); None leaves accepted changes to the periodic push.
        monitor: what ``/metrics`` and ``/ops/`` read (default: one over ``engine``
            and the mapping files of ``settings``).

    Raises:
        SettingsError: ``BILLING_SYNC_PORTAL_SECRET`` is unset or too short.
    """
    portal = Portal(
        settings, engine, session_ttl=session_ttl, clock=clock, push_trigger=push_trigger
    )

    def route(path: str, handler: Callable[[Request], Any], methods: list[str]) -> Route:
        return Route(path, _guard(handler), methods=methods)

    routes = [
        Route("/healthz", portal.healthz, methods=["GET"]),
        Route("/readyz", portal.readyz, methods=["GET"]),
        Route("/", _to_portal, methods=["GET"]),
        route("/portal/enter", portal.enter, ["GET"]),
        route("/portal/sign-out", portal.sign_out, ["POST"]),
        route("/portal/accounts", portal.choose_account_page, ["GET"]),
        route("/portal/accounts", portal.choose_account, ["POST"]),
        route("/portal/", portal.products, ["GET"]),
        route("/portal/products/{sfid}", portal.asset, ["GET"]),
        route("/portal/purchases/licenses", portal.add_licenses, ["POST"]),
        route("/portal/purchases/credit", portal.add_credit, ["POST"]),
        route("/portal/orders", portal.orders, ["GET"]),
        route("/portal/orders/{sfid}", portal.order, ["GET"]),
        route("/portal/account", portal.account, ["GET"]),
        route("/portal/account/payment-methods/{sfid}", portal.payment_method, ["GET"]),
        route("/portal/account/details", portal.update_account, ["POST"]),
        route("/portal/account/cards", portal.add_card, ["POST"]),
        route("/portal/account/payment-methods/{sfid}/default", portal.make_default, ["POST"]),
        route("/portal/account/payment-methods/{sfid}/remove", portal.remove_method, ["POST"]),
        route("/portal/changes/accept", portal.accept_changes, ["POST"]),
        route("/portal/changes/{id:int}/discard", portal.discard_change, ["POST"]),
        route("/portal/changes/sets/{id:int}/restage", portal.restage_set, ["POST"]),
        route("/portal/invoices", portal.invoices, ["GET"]),
        route("/portal/invoices/{sfid}", portal.invoice, ["GET"]),
        route("/portal/invoices/{sfid}/print", portal.invoice_print, ["GET"]),
        route("/portal/invoices/{sfid}/pdf", portal.invoice_pdf, ["GET"]),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    # --- monitoring: /metrics always; the ops dashboard only with BILLING_SYNC_OPS_TOKEN.
    monitor = monitor or Monitor(settings, engine, clock=clock)
    routes.append(Route("/metrics", monitor.metrics, methods=["GET"]))
    if settings.ops_token:
        static: Callable[[str], str] = portal.env.globals["static"]  # type: ignore[assignment]
        ops = OpsPages(settings.ops_token, monitor, static)
        routes.extend(ops.routes())

    def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 404:
            return portal.message(404, "Not found", "There is nothing at this address.")
        if status == 405:
            return portal.message(405, "Not allowed", "This address does not take that request.")
        return portal.message(status, "Request not understood", "Check the address and retry.")

    def server_error() -> Response:
        return portal.message(
            500, "Something went wrong", "Please try again in a moment.", "No change was made."
        )

    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(RequestMetricsMiddleware, routes=lambda: routes),
            Middleware(RequestIdMiddleware),
            Middleware(ServerTimingMiddleware),
            Middleware(SecurityHeadersMiddleware),
            Middleware(ErrorPageMiddleware, page=server_error),
        ],
        exception_handlers={HTTPException: http_error},
    )
    app.state.portal = portal
    app.state.monitor = monitor
    return app
