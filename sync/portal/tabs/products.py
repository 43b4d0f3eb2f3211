"""The Purchased Products tab with its purchase forms: Add licenses, Add Credit.

A purchase is staged like every other change (same checks on every POST: session and
current Billing Admin role, CSRF token, Origin) and reaches the billing system only after
Accept on the Account tab, where the Summary sits above the terms.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from sync.access import is_crm_id
from sync.changes.pricing import DIALER_MINUTES_FAMILY, LICENSE_FAMILY, MAX_LICENSES, MAX_MINUTES
from sync.changes.purchases import (
    NotForSale,
    PriceBook,
    pending_summary,
    price_book,
    stage_purchase,
)
from sync.changes.rules import ChangeKind
from sync.changes.staging import StagingError, list_staged
from sync.portal import queries
from sync.portal.kit import PortalKit, Viewer

PRODUCT_NOTICES = {
    "staged": "Purchase staged. Review the Summary and accept it on the Account tab.",
}


def _form(book: PriceBook, product_sfid: str, name: str) -> dict[str, Any]:
    price = book.prices.get(product_sfid)
    return {
        "product": product_sfid,
        "name": name,
        "price": price,
        "minutes": price is not None and price.family == DIALER_MINUTES_FAMILY,
        "why_not": None if price is not None else book.why_not(name),
    }


class ProductsTab:
    """Purchased Products, one product, and the Add licenses and Add Credit forms."""

    def __init__(self, kit: PortalKit) -> None:
        self.kit = kit

    def products(self, request: Request) -> Response:
        """Purchased Products, the default tab."""
        notice = PRODUCT_NOTICES.get(request.query_params.get("done", ""))
        with self.kit.engine.connect() as conn:
            viewer, _ = self.kit.scoped(request, conn)
            return self.products_page(conn, viewer, notice=notice)

    def products_page(
        self,
        conn: Connection,
        viewer: Viewer,
        *,
        status_code: int = 200,
        notice: str | None = None,
        errors: dict[str, str] | None = None,
        submitted: dict[str, str] | None = None,
    ) -> Response:
        """Render Purchased Products (with the error of a refused purchase, if any)."""
        assert viewer.account is not None
        account_sfid = viewer.account.sfid
        summary = queries.purchased_products(conn, account_sfid)
        book = price_book(conn, account_sfid)
        staged = list_staged(conn, viewer.contact.sfid, account_sfid)
        purchase = pending_summary(conn, account_sfid, staged, summary.recurring_total)
        # one purchase form per product: on the product's first row
        forms: dict[str, dict[str, Any]] = {}
        for asset in summary.assets:
            if asset.product_sfid is None or asset.product_sfid in forms:
                continue
            if asset.family not in (LICENSE_FAMILY, DIALER_MINUTES_FAMILY):
                continue
            forms[asset.product_sfid] = _form(book, asset.product_sfid, asset.product_name)
        forms_at = {}
        for asset in summary.assets:
            if asset.product_sfid in forms and asset.product_sfid not in forms_at:
                forms_at[asset.product_sfid] = asset.sfid
        others = [
            _form(book, p.product_sfid, p.product_name)
            for p in sorted(book.prices.values(), key=lambda p: p.product_name)
            if p.family in (LICENSE_FAMILY, DIALER_MINUTES_FAMILY) and p.product_sfid not in forms
        ]
        return self.kit.page(
            viewer,
            "products.html",
            status_code,
            tab="products",
            summary=summary,
            forms=forms,
            forms_at=forms_at,
            others=others,
            purchase=purchase,
            notice=notice,
            errors=errors or {},
            submitted=submitted or {},
            max_licenses=MAX_LICENSES,
            max_minutes=MAX_MINUTES,
        )

    def asset(self, request: Request) -> Response:
        """One purchased product."""
        return self.kit.record_page(
            request,
            queries.get_asset,
            lambda viewer, asset, pending: self.kit.page(
                viewer, "asset.html", tab="products", asset=asset, pending_count=pending
            ),
        )

    async def add_licenses(self, request: Request) -> Response:
        """Add licenses: stage a quantity of one license product at its current price."""
        return await self._purchase(request, ChangeKind.ADD_LICENSES, "quantity")

    async def add_credit(self, request: Request) -> Response:
        """Add Credit: stage dialer minutes at the current per-minute price."""
        return await self._purchase(request, ChangeKind.ADD_MINUTES, "minutes")

    async def _purchase(self, request: Request, kind: ChangeKind, field: str) -> Response:
        def work(request: Request, conn: Connection, viewer: Viewer, form: FormData) -> Response:
            assert viewer.account is not None
            product = str(form.get("product") or "")
            raw = str(form.get(field) or "")
            if not is_crm_id(product):
                return self.kit.not_found(viewer)
            try:
                stage_purchase(
                    conn,
                    viewer.contact.sfid,
                    viewer.account.sfid,
                    kind,
                    product,
                    raw,
                    self.kit.clock(),
                )
            except NotForSale as exc:
                return self.products_page(conn, viewer, status_code=409, errors={product: str(exc)})
            except StagingError as exc:
                return self.products_page(
                    conn,
                    viewer,
                    status_code=400,
                    errors={product: str(exc)},
                    submitted={product: raw[:40]},
                )
            return RedirectResponse("/portal/?done=staged#purchase-summary", 303)

        return await self.kit.post(request, work)
