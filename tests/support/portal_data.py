"""Rows for the portal's tests, written straight into a migrated billing database.

``PortalData`` inserts mirrored rows the way a pull would leave them (sfid, modstamp,
tombstone flag); ``build_world`` lays out the accounts and people most portal tests need.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Engine, insert, update

from sync.access import to_18_char_id
from sync.db.models import (
    Account,
    AccountContactRole,
    Asset,
    Contact,
    Invoice,
    InvoiceLine,
    Mirrored,
    Order,
    OrderLine,
    PaymentMethod,
    Product,
)
from sync.portal.links import ENTER_PATH, PortalSigner
from sync.settings import Settings

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 22, 10, 0, tzinfo=UTC)

_PREFIX: dict[type[Mirrored], str] = {
    Account: "001",
    Contact: "003",
    AccountContactRole: "02Z",
    Product: "01t",
    Order: "a0A",
    OrderLine: "a0B",
    Asset: "a0C",
    Invoice: "a0D",
    InvoiceLine: "a0E",
    PaymentMethod: "a0F",
}


class PortalData:
    """Inserts mirrored rows; every method returns the new row's sfid."""

    def __init__(self, engine: Engine, *, now: dt.datetime = NOW) -> None:
        self.engine = engine
        self.now = now
        self._counter = itertools.count(1)

    def sfid(self, model: type[Mirrored]) -> str:
        """A fresh, well-formed 18-character Id for ``model``."""
        return to_18_char_id(f"{_PREFIX[model]}{next(self._counter):012d}")

    def _insert(self, model: type[Mirrored], **values: Any) -> str:
        sfid = values.pop("sfid", None) or self.sfid(model)
        row = {
            "sfid": sfid,
            "system_modstamp": self.now,
            "synced_at": self.now,
            "is_deleted": False,
            **values,
        }
        with self.engine.begin() as conn:
            conn.execute(insert(model), [row])
        return sfid

    def delete(self, model: type[Mirrored], sfid: str) -> None:
        """Tombstone a row, as a pulled CRM delete does."""
        with self.engine.begin() as conn:
            conn.execute(update(model).where(model.sfid == sfid).values(is_deleted=True))

    def set(self, model: type[Mirrored], sfid: str, **values: Any) -> None:
        """Change columns of a row, as a pulled CRM update does."""
        with self.engine.begin() as conn:
            conn.execute(update(model).where(model.sfid == sfid).values(**values))

    def account(self, name: str = "Acme Corp", **values: Any) -> str:
        values.setdefault("phone", "5554443333")
        values.setdefault("billing_email", "billing@example.com")
        values.setdefault("billing_street", "1 Main Street")
        values.setdefault("billing_city", "Provo")
        values.setdefault("billing_state", "UT")
        values.setdefault("billing_postal_code", "84601")
        values.setdefault("billing_country", "USA")
        return self._insert(Account, name=name, **values)

    def contact(
        self, account: str | None, first: str, last: str, email: str | None = None, **values: Any
    ) -> str:
        return self._insert(
            Contact,
            account_sfid=account,
            first_name=first,
            last_name=last,
            email=email or f"{first}.{last}@example.com".lower(),
            **values,
        )

    def role(self, account: str, contact: str, role: str = "Billing Admin", **values: Any) -> str:
        values.setdefault("is_primary", False)
        return self._insert(
            AccountContactRole, account_sfid=account, contact_sfid=contact, role=role, **values
        )

    def product(self, name: str, family: str | None = "License", code: str | None = None) -> str:
        return self._insert(Product, name=name, family=family, product_code=code)

    def asset(
        self,
        account: str,
        product: str | None,
        *,
        quantity: str | int = 1,
        status: str = "Activated",
        price_type: str = "Recurring",
        net_price: str = "100.00",
        start: dt.date = dt.date(2026, 1, 1),
        end: dt.date | None = None,
    ) -> str:
        return self._insert(
            Asset,
            account_sfid=account,
            product_sfid=product,
            quantity=Decimal(str(quantity)),
            status=status,
            price_type=price_type,
            net_price=Decimal(net_price),
            start_date=start,
            end_date=end,
        )

    def order(
        self,
        account: str,
        name: str,
        date: dt.date | None,
        amount: str | None,
        *,
        status: str = "Activated",
        lines: Sequence[tuple[str | None, str | int, str, str]] = (),
    ) -> str:
        sfid = self._insert(
            Order,
            account_sfid=account,
            name=name,
            order_date=date,
            amount=None if amount is None else Decimal(amount),
            status=status,
        )
        for product, qty, price, charge in lines:
            self._insert(
                OrderLine,
                order_sfid=sfid,
                product_sfid=product,
                quantity=Decimal(str(qty)),
                net_price=Decimal(price),
                charge_type=charge,
            )
        return sfid

    def invoice(
        self,
        account: str,
        name: str,
        when: dt.datetime | None,
        amount: str | None,
        *,
        due: dt.date | None = None,
        total_due: str | None = None,
        status: str = "Approved",
        payment_status: str = "Not Paid",
        has_attachment: bool = True,
        lines: Sequence[tuple[str, str | int, str, str]] = (),
    ) -> str:
        sfid = self._insert(
            Invoice,
            account_sfid=account,
            name=name,
            invoice_date=when,
            due_date=due,
            total_amount=None if amount is None else Decimal(amount),
            total_due=Decimal(total_due if total_due is not None else amount or "0"),
            status=status,
            payment_status=payment_status,
            has_attachment=has_attachment,
        )
        for description, qty, line_amount, tax in lines:
            self._insert(
                InvoiceLine,
                invoice_sfid=sfid,
                description=description,
                quantity=Decimal(str(qty)),
                amount=Decimal(line_amount),
                tax_amount=Decimal(tax),
            )
        return sfid

    def payment_method(
        self,
        account: str,
        *,
        card_type: str | None = "Visa",
        last_four: str | None = "4242",
        type: str = "Credit Card",
        is_default: bool = False,
        is_one_time: bool = False,
        month: int | None = 12,
        year: int | None = 2028,
        token: str = "tok_test_0001",
        status: str = "Active",
    ) -> str:
        return self._insert(
            PaymentMethod,
            account_sfid=account,
            type=type,
            card_type=card_type,
            card_last_four=last_four,
            card_expiration_month=month,
            card_expiration_year=year,
            payment_token=token,
            is_default=is_default,
            is_one_time=is_one_time,
            status=status,
        )


@dataclass
class World:
    """The accounts, people and records of the standard portal scenario."""

    data: PortalData
    acme: str = ""
    globex: str = ""
    initech: str = ""
    admin: str = ""  # Billing Admin of Acme only
    multi_admin: str = ""  # Billing Admin of Globex and Initech
    globex_admin: str = ""  # Billing Admin of Globex only
    business_user: str = ""  # another role on Acme
    no_role: str = ""  # a contact of Acme without any role
    acme_orders: list[str] = field(default_factory=list)
    acme_invoices: list[str] = field(default_factory=list)
    acme_assets: list[str] = field(default_factory=list)
    acme_payment_methods: list[str] = field(default_factory=list)
    globex_orders: list[str] = field(default_factory=list)
    globex_invoices: list[str] = field(default_factory=list)
    globex_assets: list[str] = field(default_factory=list)
    globex_payment_methods: list[str] = field(default_factory=list)
    historical_invoice: str = ""


def build_world(engine: Engine) -> World:
    """Three accounts, their admins and non-admins, products, orders, invoices, cards.

    Acme: 3 orders (2026-03-05 1,500.00 Activated; 2026-06-10 250.00 Pending;
    2026-09-15 9,800.00 Activated, with lines), 3 invoices (INV-1001 2026-04-01
    1,200.00; INV-1002 2026-07-01 300.50; INV-0900 2025-01-15 80.00 historical, no
    attachment), 3 active assets (20 Seat Licenses at 2,000.00 recurring, 5,000 dialer
    minutes at 250.00 usage, 2 Analytics licenses at 150.00 recurring) plus a cancelled
    one, 2 payment methods (default Visa 4242, one-time MasterCard 5454).
    """
    d = PortalData(engine)
    w = World(data=d)
    w.acme = d.account("Acme Corp")
    w.globex = d.account("Globex Inc", phone="5551112222", billing_email="ap@globex.example")
    w.initech = d.account("Initech LLC")
    w.admin = d.contact(w.acme, "Ada", "Admin")
    w.multi_admin = d.contact(w.globex, "Max", "Multi")
    w.globex_admin = d.contact(w.globex, "Gil", "Globex")
    w.business_user = d.contact(w.acme, "Bob", "User")
    w.no_role = d.contact(w.acme, "Nora", "Norole")
    d.role(w.acme, w.admin)
    d.role(w.globex, w.multi_admin)
    d.role(w.initech, w.multi_admin)
    d.role(w.globex, w.globex_admin)
    d.role(w.acme, w.business_user, "Business User")

    seats = d.product("Seat License", "License", "LIC-SEAT")
    analytics = d.product("Analytics License", "License", "LIC-AN")
    minutes = d.product("Dialer Minutes", "Dialer Minutes", "DM-1000")
    onboarding = d.product("Onboarding", "Service", "SVC-ON")

    w.acme_assets = [
        d.asset(w.acme, seats, quantity=20, net_price="2000.00"),
        d.asset(w.acme, minutes, quantity=5000, price_type="Usage", net_price="250.00"),
        d.asset(w.acme, analytics, quantity=2, net_price="150.00"),
        d.asset(w.acme, onboarding, quantity=1, status="Cancelled", net_price="999.00"),
    ]
    w.acme_orders = [
        d.order(
            w.acme,
            "O-0001",
            dt.date(2026, 3, 5),
            "1500.00",
            lines=[
                (seats, 10, "1000.00", "Subscription Fee"),
                (onboarding, 1, "500.00", "Implementation Fee"),
            ],
        ),
        d.order(w.acme, "O-0002", dt.date(2026, 6, 10), "250.00", status="Pending"),
        d.order(
            w.acme,
            "O-0003",
            dt.date(2026, 9, 15),
            "9800.00",
            lines=[(seats, 10, "9800.00", "Subscription Fee")],
        ),
    ]
    w.acme_invoices = [
        d.invoice(
            w.acme,
            "INV-1001",
            dt.datetime(2026, 4, 1, 9, 30, tzinfo=UTC),
            "1200.00",
            due=dt.date(2026, 5, 1),
            total_due="0.00",
            payment_status="Paid",
            lines=[
                ("Seat License, April", 10, "1000.00", "80.00"),
                ("Dialer Minutes", 1000, "120.00", "0.00"),
            ],
        ),
        d.invoice(
            w.acme,
            "INV-1002",
            dt.datetime(2026, 7, 1, 9, 30, tzinfo=UTC),
            "300.50",
            due=dt.date(2026, 8, 1),
            lines=[("Analytics License", 2, "300.50", "0.00")],
        ),
    ]
    w.historical_invoice = d.invoice(
        w.acme,
        "INV-0900",
        dt.datetime(2025, 1, 15, 12, 0, tzinfo=UTC),
        "80.00",
        status="Historical",
        payment_status="Paid",
        total_due="0.00",
        has_attachment=False,
        lines=[("Legacy plan", 1, "80.00", "0.00")],
    )
    w.acme_invoices.append(w.historical_invoice)
    w.acme_payment_methods = [
        d.payment_method(w.acme, is_default=True),
        d.payment_method(
            w.acme, card_type="MasterCard", last_four="5454", is_one_time=True, token="tok_2"
        ),
    ]

    w.globex_assets = [d.asset(w.globex, seats, quantity=3, net_price="300.00")]
    w.globex_orders = [
        d.order(
            w.globex,
            "G-ORDER-1",
            dt.date(2026, 5, 5),
            "777.00",
            lines=[(seats, 3, "777.00", "Subscription Fee")],
        )
    ]
    w.globex_invoices = [
        d.invoice(
            w.globex,
            "G-INV-1",
            dt.datetime(2026, 5, 6, tzinfo=UTC),
            "777.00",
            lines=[("Globex seats", 3, "777.00", "0.00")],
        )
    ]
    w.globex_payment_methods = [d.payment_method(w.globex, last_four="1111", is_default=True)]
    return w


SECRET = "portal-test-secret-0123456789abcdef"


def portal_settings(**changes: Any) -> Settings:
    """Settings for portal tests: a fixed secret, the default role and public URL."""
    return Settings(portal_secret=SECRET, **changes)


def link_path(contact: str, *, ttl: float = 600, now: dt.datetime | None = None) -> str:
    """The path and query of a valid signed portal link for ``contact``."""
    token = PortalSigner(SECRET).make_link_token(contact, ttl=ttl, now=now)
    return f"{ENTER_PATH}?{urlencode({'token': token})}"
