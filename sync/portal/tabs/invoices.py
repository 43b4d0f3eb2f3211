"""The Invoices tab: the account's invoices, one invoice, its print page and its PDF."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sync.access import is_crm_id
from sync.portal import queries
from sync.portal.filters import parse_list_query
from sync.portal.kit import PortalKit, Viewer
from sync.portal.pdf import invoice_filename, render_invoice_pdf
from sync.portal.views import AccountView, InvoiceDetail


class InvoicesTab:
    """Invoices: filter by date or amount, sort by date or amount, paginated."""

    def __init__(self, kit: PortalKit) -> None:
        self.kit = kit

    def invoices(self, request: Request) -> Response:
        """The list of invoices."""
        query, errors = parse_list_query(request.query_params, amounts=True)
        with self.kit.engine.connect() as conn:
            viewer, account = self.kit.scoped(request, conn)
            page = queries.list_invoices(conn, account, query)
            pending = self.kit.pending_count(viewer, conn)
        query = query.with_page(page.page)
        return self.kit.page(
            viewer,
            "invoices.html",
            400 if errors else 200,
            tab="invoices",
            query=query,
            errors=errors,
            page=page,
            pending_count=pending,
        )

    def _invoice(
        self, request: Request
    ) -> tuple[Viewer, InvoiceDetail, AccountView, int] | Response:
        """The viewer, the invoice, its account and the viewer's pending-change count."""
        sfid = request.path_params["sfid"]
        with self.kit.engine.connect() as conn:
            viewer, account_sfid = self.kit.scoped(request, conn)
            if not is_crm_id(sfid):
                return self.kit.not_found(viewer)
            detail = queries.get_invoice(conn, account_sfid, sfid)
            account = queries.get_account(conn, account_sfid)
            pending = self.kit.pending_count(viewer, conn)
        if detail is None or account is None:
            return self.kit.not_found(viewer)
        return viewer, detail, account, pending

    def invoice(self, request: Request) -> Response:
        """View Invoice Details: the invoice and its lines."""
        return self._invoice_page(request, "invoice.html", tab="invoices")

    def invoice_print(self, request: Request) -> Response:
        """The print-friendly invoice page."""
        return self._invoice_page(request, "invoice_print.html")

    def _invoice_page(self, request: Request, template: str, **context: Any) -> Response:
        found = self._invoice(request)
        if isinstance(found, Response):
            return found
        viewer, detail, account, pending = found
        return self.kit.page(
            viewer,
            template,
            detail=detail,
            inv=detail.invoice,
            account=account,
            pending_count=pending,
            **context,
        )

    def invoice_pdf(self, request: Request) -> Response:
        """Download PDF: generated from the mirrored invoice and its lines."""
        found = self._invoice(request)
        if isinstance(found, Response):
            return found
        _viewer, detail, account, _pending = found
        body = render_invoice_pdf(detail, account, now=self.kit.clock())
        return Response(
            body,
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{invoice_filename(detail)}"'},
        )
