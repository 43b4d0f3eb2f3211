"""The Billing Portal web app (Starlette), served from the mirrored billing database.

Every portal request goes through :meth:`Portal.authorize`: the signed session cookie
says who the person is; the *current* mirrored roles say what they may see. A Billing
Admin sees the chosen account; anyone else gets the "new billing portal coming soon"
page (403) and no billing data; a missing or bad cookie gets the "sign in through the
community portal" page (401). Detail routes look ids up within the authorised account
only, so another account's ids answer 404.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from sqlalchemy import Connection, Engine, text
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from sync.access import AdminAccount, ContactRef, contact_access, is_crm_id
from sync.db.engine import schema_is_current
from sync.portal import formatting, queries
from sync.portal.filters import parse_list_query
from sync.portal.links import DEFAULT_SESSION_TTL, InvalidToken, PortalSession, PortalSigner
from sync.portal.middleware import SecurityHeadersMiddleware, ServerTimingMiddleware
from sync.portal.pdf import invoice_filename, render_invoice_pdf
from sync.settings import Settings

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
COOKIE_NAME = "billing_portal"
# Over https the cookie gets the __Host- prefix: browsers then insist on Secure, Path=/
# and no Domain, so no sibling subdomain can plant or overwrite it.
SECURE_COOKIE_NAME = "__Host-billing_portal"

Clock = Callable[[], dt.datetime]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Viewer:
    """The signed-in Billing Admin and the account this request is about."""

    session: PortalSession
    contact: ContactRef
    accounts: list[AdminAccount]
    account: AdminAccount | None


class _Denied(Exception):
    """Stops a request with a ready response (401, 403, or a redirect to the chooser)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _static_versions() -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:12]
        for p in (HERE / "static").iterdir()
        if p.is_file()
    }


class Portal:
    """The portal's request handlers and the state they share."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        session_ttl: float = DEFAULT_SESSION_TTL,
        clock: Clock = _utc_now,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.signer = PortalSigner(settings.require_portal_secret(), session_ttl=session_ttl)
        self.clock = clock
        self.public_https = settings.public_url.startswith("https://")
        versions = _static_versions()
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(
            money=formatting.money,
            quantity=formatting.quantity,
            day=formatting.day,
            iso_day=formatting.iso_day,
            status_class=formatting.status_class,
            static=lambda name: f"/static/{name}?v={versions.get(name, '0')}",
        )

    # --- rendering --------------------------------------------------------------------

    def render(self, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        """Render a template into an HTML response."""
        context.setdefault("viewer", None)
        context.setdefault("tab", None)
        context.setdefault("csrf_token", "")
        return HTMLResponse(self.env.get_template(name).render(**context), status_code)

    def page(self, viewer: Viewer, name: str, status_code: int = 200, **context: Any) -> Response:
        """Render a page of the signed-in portal (layout with tabs and sign-out form)."""
        return self.render(
            name,
            status_code,
            viewer=viewer,
            csrf_token=self.signer.csrf_token(viewer.session),
            **context,
        )

    def message(self, status_code: int, heading: str, *paragraphs: str) -> HTMLResponse:
        """A plain page with a heading and a few sentences."""
        return self.render("message.html", status_code, heading=heading, paragraphs=paragraphs)

    def sign_in_page(self, request: Request) -> Response:
        """401: the person must come in through the community portal."""
        response = self.message(
            401,
            "Sign in through the community portal",
            "Your sign-in link is missing, has expired or is not valid.",
            "Open the Billing Portal from the community portal to sign in again.",
        )
        if self._cookie_name(request) in request.cookies:
            self._clear_cookie(request, response)
        return response

    def coming_soon(self) -> HTMLResponse:
        """403: the page everyone who is not a Billing Admin sees, and nothing else."""
        return self.render("coming_soon.html", 403)

    def not_found(self, viewer: Viewer) -> Response:
        """404 inside the portal layout, showing nothing about what was asked for."""
        return self.page(viewer, "not_found.html", 404, tab=None)

    # --- sessions ---------------------------------------------------------------------

    def _secure(self, request: Request) -> bool:
        return request.url.scheme == "https" or self.public_https

    def _cookie_name(self, request: Request) -> str:
        return SECURE_COOKIE_NAME if self._secure(request) else COOKIE_NAME

    def _set_cookie(self, request: Request, response: Response, session: PortalSession) -> None:
        max_age = int((session.expires_at - self.clock()).total_seconds())
        response.set_cookie(
            self._cookie_name(request),
            self.signer.dump_session(session),
            max_age=max(max_age, 0),
            path="/",
            secure=self._secure(request),
            httponly=True,
            samesite="lax",
        )

    def _clear_cookie(self, request: Request, response: Response) -> None:
        response.delete_cookie(
            self._cookie_name(request),
            path="/",
            secure=self._secure(request),
            httponly=True,
            samesite="lax",
        )

    def authorize(
        self, request: Request, conn: Connection | None = None, *, need_account: bool = True
    ) -> Viewer:
        """Who is asking, and which account they may see, from the *current* roles.

        Args:
            request: the request, with its session cookie.
            conn: the request's database connection (one is opened when None).
            need_account: False for pages that work before an account is chosen.

        Raises:
            _Denied: no valid session (401), not a Billing Admin (403), or a Billing
                Admin of several accounts who has not chosen one yet (303 to the chooser).
        """
        try:
            session = self.signer.load_session(
                request.cookies.get(self._cookie_name(request)), now=self.clock()
            )
        except InvalidToken as exc:
            log.info("portal: session refused (%s) for %s", exc, request.url.path)
            raise _Denied(self.sign_in_page(request)) from None
        role = self.settings.billing_admin_role
        if conn is None:
            with self.engine.connect() as own:
                contact, accounts = contact_access(own, session.contact_sfid, role)
        else:
            contact, accounts = contact_access(conn, session.contact_sfid, role)
        if contact is None or not accounts:
            log.info("portal: contact %s is not a Billing Admin", session.contact_sfid)
            raise _Denied(self.coming_soon())
        chosen = next((a for a in accounts if a.sfid == session.account_sfid), None)
        if chosen is None and len(accounts) == 1:
            chosen = accounts[0]
        if chosen is None and need_account:
            raise _Denied(RedirectResponse("/portal/accounts", 303))
        return Viewer(session, contact, accounts, chosen)

    def _scoped(self, request: Request, conn: Connection) -> tuple[Viewer, str]:
        viewer = self.authorize(request, conn)
        assert viewer.account is not None
        return viewer, viewer.account.sfid

    # --- sign-in, sign-out, account choice --------------------------------------------

    def enter(self, request: Request) -> Response:
        """Open a signed link: start a session and go to the portal."""
        token = request.query_params.get("token", "")
        try:
            link = self.signer.verify_link_token(token, now=self.clock())
        except InvalidToken as exc:
            log.info("portal: link refused (%s)", exc)
            return self.sign_in_page(request)
        session = self.signer.new_session(link.contact_sfid, now=self.clock())
        # Redirect so the token leaves the address bar and the browser history.
        response = RedirectResponse("/portal/", 303)
        self._set_cookie(request, response, session)
        return response

    async def sign_out(self, request: Request) -> Response:
        """Forget the session (a POST with the session's CSRF token)."""
        try:
            session = self.signer.load_session(
                request.cookies.get(self._cookie_name(request)), now=self.clock()
            )
        except InvalidToken:
            return self.sign_in_page(request)
        form = await request.form()
        token = form.get("csrf_token")
        if not self.signer.check_csrf(session, token if isinstance(token, str) else None):
            return self.message(403, "This form has expired", "Reload the page and try again.")
        response = self.message(
            200,
            "You have signed out",
            "Open the Billing Portal from the community portal to sign in again.",
        )
        self._clear_cookie(request, response)
        return response

    def choose_account_page(self, request: Request) -> Response:
        """The list of accounts a contact is Billing Admin of."""
        viewer = self.authorize(request, need_account=False)
        return self.page(viewer, "choose_account.html")

    async def choose_account(self, request: Request) -> Response:
        """Remember the chosen account in the session (POST with CSRF token)."""
        viewer = await run_in_threadpool(self.authorize, request, need_account=False)
        form = await request.form()
        token, account = form.get("csrf_token"), form.get("account")
        if not self.signer.check_csrf(viewer.session, token if isinstance(token, str) else None):
            return self.message(403, "This form has expired", "Reload the page and try again.")
        if not isinstance(account, str) or account not in {a.sfid for a in viewer.accounts}:
            return self.not_found(viewer)
        response = RedirectResponse("/portal/", 303)
        self._set_cookie(request, response, viewer.session.with_account(account))
        return response

    # --- tabs -------------------------------------------------------------------------

    def products(self, request: Request) -> Response:
        """Purchased Products, the default tab."""
        with self.engine.connect() as conn:
            viewer, account = self._scoped(request, conn)
            summary = queries.purchased_products(conn, account)
        return self.page(viewer, "products.html", tab="products", summary=summary)

    def asset(self, request: Request) -> Response:
        """One purchased product."""
        sfid = request.path_params["sfid"]
        with self.engine.connect() as conn:
            viewer, account = self._scoped(request, conn)
            asset = queries.get_asset(conn, account, sfid) if is_crm_id(sfid) else None
        if asset is None:
            return self.not_found(viewer)
        return self.page(viewer, "asset.html", tab="products", asset=asset)

    def orders(self, request: Request) -> Response:
        """Orders: filter by date range or one date, sort by date or amount, paginated."""
        query, errors = parse_list_query(request.query_params, amounts=False)
        with self.engine.connect() as conn:
            viewer, account = self._scoped(request, conn)
            page = queries.list_orders(conn, account, query)
        query = query.with_page(page.page)
        return self.page(
            viewer,
            "orders.html",
            400 if errors else 200,
            tab="orders",
            query=query,
            errors=errors,
            page=page,
        )

    def order(self, request: Request) -> Response:
        """One order with its lines."""
        sfid = request.path_params["sfid"]
        with self.engine.connect() as conn:
            viewer, account = self._scoped(request, conn)
            found = queries.get_order(conn, account, sfid) if is_crm_id(sfid) else None
        if found is None:
            return self.not_found(viewer)
        order, lines = found
        return self.page(viewer, "order.html", tab="orders", order=order, lines=lines)

    def account(self, request: Request) -> Response:
        """Account details, payment methods and the billing summary."""
        with self.engine.connect() as conn:
            viewer, account_sfid = self._scoped(request, conn)
            account = queries.get_account(conn, account_sfid)
            methods = queries.payment_methods(conn, account_sfid)
            summary = queries.purchased_products(conn, account_sfid)
        if account is None:
            return self.not_found(viewer)
        default_method = next((m for m in methods if m.is_default), None)
        recurring_count = sum(1 for a in summary.assets if a.price_type == queries.RECURRING)
        return self.page(
            viewer,
            "account.html",
            tab="account",
            account=account,
            methods=methods,
            summary=summary,
            recurring_count=recurring_count,
            default_method=default_method,
        )

    def payment_method(self, request: Request) -> Response:
        """One payment method (masked)."""
        sfid = request.path_params["sfid"]
        with self.engine.connect() as conn:
            viewer, account = self._scoped(request, conn)
            method = queries.get_payment_method(conn, account, sfid) if is_crm_id(sfid) else None
        if method is None:
            return self.not_found(viewer)
        return self.page(viewer, "payment_method.html", tab="account", method=method)

    def invoices(self, request: Request) -> Response:
        """Invoices: filter by date or amount, sort by date or amount, paginated."""
        query, errors = parse_list_query(request.query_params, amounts=True)
        with self.engine.connect() as conn:
            viewer, account = self._scoped(request, conn)
            page = queries.list_invoices(conn, account, query)
        query = query.with_page(page.page)
        return self.page(
            viewer,
            "invoices.html",
            400 if errors else 200,
            tab="invoices",
            query=query,
            errors=errors,
            page=page,
        )

    def _invoice(
        self, request: Request
    ) -> tuple[Viewer, queries.InvoiceDetail, queries.AccountView] | Response:
        sfid = request.path_params["sfid"]
        with self.engine.connect() as conn:
            viewer, account_sfid = self._scoped(request, conn)
            if not is_crm_id(sfid):
                return self.not_found(viewer)
            detail = queries.get_invoice(conn, account_sfid, sfid)
            account = queries.get_account(conn, account_sfid)
        if detail is None or account is None:
            return self.not_found(viewer)
        return viewer, detail, account

    def invoice(self, request: Request) -> Response:
        """View Invoice Details: the invoice and its lines."""
        found = self._invoice(request)
        if isinstance(found, Response):
            return found
        viewer, detail, account = found
        return self.page(
            viewer,
            "invoice.html",
            tab="invoices",
            detail=detail,
            inv=detail.invoice,
            account=account,
        )

    def invoice_print(self, request: Request) -> Response:
        """The print-friendly invoice page."""
        found = self._invoice(request)
        if isinstance(found, Response):
            return found
        viewer, detail, account = found
        return self.page(
            viewer, "invoice_print.html", detail=detail, inv=detail.invoice, account=account
        )

    def invoice_pdf(self, request: Request) -> Response:
        """Download PDF: generated from the mirrored invoice and its lines."""
        found = self._invoice(request)
        if isinstance(found, Response):
            return found
        _viewer, detail, account = found
        body = render_invoice_pdf(detail, account, now=self.clock())
        return Response(
            body,
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{invoice_filename(detail)}"'},
        )

    # --- health -----------------------------------------------------------------------

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
        return JSONResponse({"status": "ready", "database": "ok"})


def _to_portal(request: Request) -> Response:
    return RedirectResponse("/portal/", 307)


def _guard(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
    """Turn :class:`_Denied` into its response, for sync and async handlers alike."""
    if inspect.iscoroutinefunction(handler):

        async def async_endpoint(request: Request) -> Response:
            try:
                response: Response = await handler(request)
            except _Denied as denied:
                return denied.response
            return response

        return async_endpoint

    def endpoint(request: Request) -> Response:
        try:
            response: Response = handler(request)
        except _Denied as denied:
            return denied.response
        return response

    return endpoint


def create_app(
    settings: Settings,
    engine: Engine,
    *,
    session_ttl: float = DEFAULT_SESSION_TTL,
    clock: Clock = _utc_now,
) -> Starlette:
    """The portal as an ASGI app.

    Args:
        settings: needs ``portal_secret`` (16+ characters); ``billing_admin_role`` and
            ``public_url`` are used too.
        engine: the billing database (migrated).
        session_ttl: lifetime of a portal session in seconds.
        clock: the current time (tests pass a frozen or moving clock).

    Raises:
        SettingsError: ``BILLING_SYNC_PORTAL_SECRET`` is unset or too short.
    """
    portal = Portal(settings, engine, session_ttl=session_ttl, clock=clock)

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
        route("/portal/orders", portal.orders, ["GET"]),
        route("/portal/orders/{sfid}", portal.order, ["GET"]),
        route("/portal/account", portal.account, ["GET"]),
        route("/portal/account/payment-methods/{sfid}", portal.payment_method, ["GET"]),
        route("/portal/invoices", portal.invoices, ["GET"]),
        route("/portal/invoices/{sfid}", portal.invoice, ["GET"]),
        route("/portal/invoices/{sfid}/print", portal.invoice_print, ["GET"]),
        route("/portal/invoices/{sfid}/pdf", portal.invoice_pdf, ["GET"]),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]

    def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 404:
            return portal.message(404, "Not found", "There is nothing at this address.")
        if status == 405:
            return portal.message(405, "Not allowed", "This address does not take that request.")
        return portal.message(status, "Request not understood", "Check the address and retry.")

    def server_error(request: Request, exc: Exception) -> Response:
        log.exception("portal: unexpected error on %s", request.url.path, exc_info=exc)
        return portal.message(
            500, "Something went wrong", "Please try again in a moment.", "No change was made."
        )

    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(ServerTimingMiddleware),
            Middleware(SecurityHeadersMiddleware),
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    app.state.portal = portal
    return app
