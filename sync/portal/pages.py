"""The portal's pages: sign-in and account choice, the four tabs, details, health.

Detail routes look ids up within the authorised account only, so another account's ids
answer 404, exactly like ids that do not exist.
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from sync.access import is_crm_id
from sync.clock import utc_now
from sync.db.engine import schema_is_current
from sync.portal import queries
from sync.portal.base import Viewer
from sync.portal.filters import parse_list_query
from sync.portal.links import InvalidToken
from sync.portal.pdf import invoice_filename, render_invoice_pdf
from sync.portal.purchases import PurchasePages
from sync.portal.views import AccountView, InvoiceDetail
from sync.service.listener_status import listener_status, summary

log = logging.getLogger("sync.portal")


class Portal(PurchasePages):
    """The portal's request handlers."""

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
        self.set_session_cookie(request, response, session)
        return response

    async def sign_out(self, request: Request) -> Response:
        """Forget the session (a POST with the session's CSRF token)."""
        try:
            session = self.signer.load_session(
                request.cookies.get(self.cookie_name(request)), now=self.clock()
            )
        except InvalidToken:
            return self.sign_in_page(request)
        form = await request.form()
        if not self.csrf_ok(session, form):
            return self.message(403, "This form has expired", "Reload the page and try again.")
        response = self.message(
            200,
            "You have signed out",
            "Open the Billing Portal from the community portal to sign in again.",
        )
        self.clear_session_cookie(request, response)
        return response

    def choose_account_page(self, request: Request) -> Response:
        """The list of accounts a contact is Billing Admin of."""
        viewer = self.authorize(request, need_account=False)
        return self.page(viewer, "choose_account.html")

    async def choose_account(self, request: Request) -> Response:
        """Remember the chosen account in the session (POST with CSRF token)."""
        viewer = await run_in_threadpool(self.authorize, request, need_account=False)
        form = await request.form()
        account = form.get("account")
        if not self.csrf_ok(viewer.session, form):
            return self.message(403, "This form has expired", "Reload the page and try again.")
        if not isinstance(account, str) or account not in {a.sfid for a in viewer.accounts}:
            return self.not_found(viewer)
        response = RedirectResponse("/portal/", 303)
        self.set_session_cookie(request, response, viewer.session.with_account(account))
        return response

    # --- tabs -------------------------------------------------------------------------

    def asset(self, request: Request) -> Response:
        """One purchased product."""
        sfid = request.path_params["sfid"]
        with self.engine.connect() as conn:
            viewer, account = self.scoped(request, conn)
            asset = queries.get_asset(conn, account, sfid) if is_crm_id(sfid) else None
        if asset is None:
            return self.not_found(viewer)
        return self.page(viewer, "asset.html", tab="products", asset=asset)

    def orders(self, request: Request) -> Response:
        """Orders: filter by date range or one date, sort by date or amount, paginated."""
        query, errors = parse_list_query(request.query_params, amounts=False)
        with self.engine.connect() as conn:
            viewer, account = self.scoped(request, conn)
            page = queries.list_orders(conn, account, query)
            placed = [
                o
                for o in (self.placed_orders(conn, account) if page.page == 1 else [])
                if (query.date_from is None or (o.order_date and o.order_date >= query.date_from))
                and (query.date_to is None or (o.order_date and o.order_date <= query.date_to))
            ]
        query = query.with_page(page.page)
        return self.page(
            viewer,
            "orders.html",
            400 if errors else 200,
            tab="orders",
            query=query,
            errors=errors,
            page=page,
            placed=placed,
        )

    def order(self, request: Request) -> Response:
        """One order with its lines."""
        sfid = request.path_params["sfid"]
        with self.engine.connect() as conn:
            viewer, account = self.scoped(request, conn)
            found = queries.get_order(conn, account, sfid) if is_crm_id(sfid) else None
        if found is None:
            return self.not_found(viewer)
        order, lines = found
        return self.page(viewer, "order.html", tab="orders", order=order, lines=lines)

    def payment_method(self, request: Request) -> Response:
        """One payment method (masked)."""
        sfid = request.path_params["sfid"]
        with self.engine.connect() as conn:
            viewer, account = self.scoped(request, conn)
            method = queries.get_payment_method(conn, account, sfid) if is_crm_id(sfid) else None
        if method is None:
            return self.not_found(viewer)
        return self.page(viewer, "payment_method.html", tab="account", method=method)

    def invoices(self, request: Request) -> Response:
        """Invoices: filter by date or amount, sort by date or amount, paginated."""
        query, errors = parse_list_query(request.query_params, amounts=True)
        with self.engine.connect() as conn:
            viewer, account = self.scoped(request, conn)
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

    def _invoice(self, request: Request) -> tuple[Viewer, InvoiceDetail, AccountView] | Response:
        sfid = request.path_params["sfid"]
        with self.engine.connect() as conn:
            viewer, account_sfid = self.scoped(request, conn)
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
        # The listener's state is detail, not readiness: without it the mirror is kept
        # fresh by polling at the configured interval.
        events = summary(listener_status(self.engine, utc_now()))
        return JSONResponse({"status": "ready", "database": "ok", "events": events})
