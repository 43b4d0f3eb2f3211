"""The Orders tab: the account's orders, one order, and orders being placed.

An order accepted in the portal is on its way to the CRM until the pull mirrors it; the
first page lists it as Pending meanwhile, under the same date filters as the rest.
"""

from __future__ import annotations

from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import Response

from sync.changes.plan import WriteTargets
from sync.portal import queries
from sync.portal.filters import parse_list_query
from sync.portal.kit import PortalKit


class OrdersTab:
    """Orders: filter by date range or one date, sort by date or amount, paginated."""

    def __init__(self, kit: PortalKit, targets: WriteTargets) -> None:
        self.kit = kit
        self.targets = targets

    def orders(self, request: Request) -> Response:
        """The list of orders (orders being placed on its first page)."""
        query, errors = parse_list_query(request.query_params, amounts=False)
        with self.kit.engine.connect() as conn:
            viewer, account = self.kit.scoped(request, conn)
            page = queries.list_orders(conn, account, query)
            placed = [
                o
                for o in (self.placed_orders(conn, account) if page.page == 1 else [])
                if (query.date_from is None or (o.order_date and o.order_date >= query.date_from))
                and (query.date_to is None or (o.order_date and o.order_date <= query.date_to))
            ]
            pending = self.kit.pending_count(viewer, conn)
        query = query.with_page(page.page)
        return self.kit.page(
            viewer,
            "orders.html",
            400 if errors else 200,
            tab="orders",
            query=query,
            errors=errors,
            page=page,
            placed=placed,
            pending_count=pending,
        )

    def order(self, request: Request) -> Response:
        """One order with its lines."""
        return self.kit.record_page(
            request,
            queries.get_order,
            lambda viewer, found, pending: self.kit.page(
                viewer,
                "order.html",
                tab="orders",
                order=found[0],
                lines=found[1],
                pending_count=pending,
            ),
        )

    def placed_orders(self, conn: Connection, account_sfid: str) -> list[queries.PlacedOrder]:
        """Orders accepted here and not mirrored yet (shown as Pending on the Orders tab)."""
        orders = self.targets.orders
        if orders is None:
            return []
        fields = {f.column: f.crm_name for f in orders.fields}
        return queries.placed_orders(conn, account_sfid, orders.crm_object, fields)
