"""The Billing Portal web app (Starlette), served from the mirrored billing database.

:func:`create_app` builds the one :class:`~sync.portal.kit.PortalKit`, hands it to the
tab handlers of :mod:`sync.portal.tabs`, and wires them to their routes behind the
request-id, metrics, timing, security-header and error-page middleware.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import configure_mappers
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from sync.changes.plan import WriteTargets
from sync.changes.terms import load_terms
from sync.db.shapes import MIRRORED_SHAPES
from sync.mapping.loader import default_mappings_dir, load_mappings
from sync.payments import load_gateway
from sync.portal.health import Health
from sync.portal.kit import Clock, Denied, PortalKit, utc_now
from sync.portal.links import DEFAULT_SESSION_TTL
from sync.portal.middleware import (
    ErrorPageMiddleware,
    SecurityHeadersMiddleware,
    ServerTimingMiddleware,
)
from sync.portal.monitoring import Monitor, RequestIdMiddleware, RequestMetricsMiddleware
from sync.portal.ops import OpsPages
from sync.portal.rendering import HERE, Templates
from sync.portal.tabs.account import AccountTab
from sync.portal.tabs.changes import ChangeFlow
from sync.portal.tabs.entry import Entry
from sync.portal.tabs.invoices import InvoicesTab
from sync.portal.tabs.orders import OrdersTab
from sync.portal.tabs.products import ProductsTab
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
        SettingsError: ``BILLING_SYNC_PORTAL_SECRET`` is unset or too short, or the
            terms file or the payment gateway cannot be loaded.
        MappingError: the mapping files are unusable.
        PlanError: a table the portal writes has no mapping.
    """
    templates = Templates()
    kit = PortalKit(settings, engine, templates, session_ttl=session_ttl, clock=clock)
    terms = load_terms(settings.terms_file)
    gateway = load_gateway(settings.payment_gateway)
    mappings = load_mappings(default_mappings_dir(settings.mappings_dir), MIRRORED_SHAPES)
    targets = WriteTargets.from_mappings(mappings)

    # --- monitoring: /metrics always; the ops dashboard only with BILLING_SYNC_OPS_TOKEN.
    # Handed the mappings read above, so no scrape parses the mapping files; the ORM's
    # mappers are configured here, once, not by the first request that selects a model.
    configure_mappers()
    monitor = monitor or Monitor(settings, engine, clock=clock, mappings=mappings)
    health = Health(engine, monitor.events)
    entry = Entry(kit)
    products = ProductsTab(kit)
    orders = OrdersTab(kit, targets)
    account = AccountTab(kit, terms, gateway)
    changes = ChangeFlow(kit, account, terms=terms, targets=targets, push_trigger=push_trigger)
    invoices = InvoicesTab(kit)

    def route(path: str, handler: Callable[[Request], Any], methods: list[str]) -> Route:
        return Route(path, _guard(handler), methods=methods)

    routes = [
        Route("/healthz", health.healthz, methods=["GET"]),
        Route("/readyz", health.readyz, methods=["GET"]),
        Route("/", _to_portal, methods=["GET"]),
        route("/portal/enter", entry.enter, ["GET"]),
        route("/portal/sign-out", entry.sign_out, ["POST"]),
        route("/portal/accounts", entry.choose_account_page, ["GET"]),
        route("/portal/accounts", entry.choose_account, ["POST"]),
        route("/portal/", products.products, ["GET"]),
        route("/portal/products/{sfid}", products.asset, ["GET"]),
        route("/portal/purchases/licenses", products.add_licenses, ["POST"]),
        route("/portal/purchases/credit", products.add_credit, ["POST"]),
        route("/portal/orders", orders.orders, ["GET"]),
        route("/portal/orders/{sfid}", orders.order, ["GET"]),
        route("/portal/account", account.account, ["GET"]),
        route("/portal/account/payment-methods/{sfid}", account.payment_method, ["GET"]),
        route("/portal/account/details", account.update_account, ["POST"]),
        route("/portal/account/cards", account.add_card, ["POST"]),
        route("/portal/account/payment-methods/{sfid}/default", account.make_default, ["POST"]),
        route("/portal/account/payment-methods/{sfid}/remove", account.remove_method, ["POST"]),
        route("/portal/changes/accept", changes.accept_changes, ["POST"]),
        route("/portal/changes/{id:int}/discard", changes.discard_change, ["POST"]),
        route("/portal/changes/sets/{id:int}/restage", changes.restage_set, ["POST"]),
        route("/portal/invoices", invoices.invoices, ["GET"]),
        route("/portal/invoices/{sfid}", invoices.invoice, ["GET"]),
        route("/portal/invoices/{sfid}/print", invoices.invoice_print, ["GET"]),
        route("/portal/invoices/{sfid}/pdf", invoices.invoice_pdf, ["GET"]),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    routes.append(Route("/metrics", monitor.metrics, methods=["GET"]))
    if settings.ops_token:
        ops = OpsPages(settings.ops_token, monitor, templates)
        routes.extend(ops.routes())

    def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 404:
            return kit.message(404, "Not found", "There is nothing at this address.")
        if status == 405:
            return kit.message(405, "Not allowed", "This address does not take that request.")
        return kit.message(status, "Request not understood", "Check the address and retry.")

    def server_error() -> Response:
        return kit.message(
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
    app.state.portal = kit
    app.state.monitor = monitor
    return app
