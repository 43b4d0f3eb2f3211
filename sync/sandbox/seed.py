"""Realistic billing data for the sandbox, the same for the same random seed.

Per account: about 5 contacts (one or two hold the "Billing Admin" role, the others
other roles or none), license assets plus one "Dialer Minutes" asset, about 10 orders
(Pending and Activated) with 1-3 lines, 24 monthly invoices with 1-3 lines (those older
than a year "Historical" and without attachment), and 1-3 payment methods of which
exactly one is the default (card brand, last four digits and a token only: no card
number or CVV ever exists here). Products are shared by all accounts, and so are the price
lists: one active list pricing every product per unit (licenses monthly, dialer minutes
per minute in packs of 1000) and one retired list.

Dates are relative to the current month, so the newest invoice is this month's.
Records are written with one ``executemany`` per object; 1000 accounts (about 115,000
records) take a few seconds.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sync.sandbox.clock import format_ms
from sync.sandbox.schema import SYSTEM_FIELDS
from sync.sandbox.store import Store


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FIRST_NAMES = _words(
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara "
    "Richard Susan Joseph Jessica Thomas Sarah Charles Karen Daniel Lisa Matthew Nancy "
    "Anthony Betty Mark Sandra Steven Ashley Paul Kimberly Andrew Emily Joshua Donna Kevin "
    "Michelle Brian Carol George Amanda Timothy Melissa Ronald Deborah Jason Stephanie Ryan "
    "Rebecca Jacob Laura Gary Sharon Nicholas Cynthia Eric Kathleen Jonathan Amy Priya Wei "
    "Carlos Fatima Hiroshi Olga Mateo Aisha Lars Ingrid"
)
LAST_NAMES = _words(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White "
    "Harris Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres "
    "Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts "
    "Patel Chen Kowalski Novak Schmidt Rossi Tanaka Okafor Lindqvist Dubois"
)
COMPANY_WORDS = _words(
    "Acme Apex Summit Pinnacle Northwind Bluewater Redwood Silverline Ironbridge Cedar "
    "Harbor Meridian Granite Evergreen Skyline Lakeside Brightpath Keystone Horizon Sterling "
    "Crescent Falcon Maple Orion Atlas Beacon Cobalt Delta Ember Frontier Golden Highland "
    "Juniper Liberty Monarch Nova Oakridge Prairie Quantum Riverbend Sequoia Trident Unity "
    "Vanguard Willow Zenith"
)
COMPANY_KINDS = _words(
    "Logistics Health Energy Foods Realty Insurance Software Media Outfitters Dental "
    "Telecom Analytics Manufacturing Hospitality Legal Financial Retail Clinics Solar Freight"
)
COMPANY_SUFFIXES = ("Inc.", "LLC", "Group", "Corp.", "Co.", "Partners", "Holdings", "Ltd.")
STREETS = (
    "Main St",
    "Oak Ave",
    "Pine St",
    "Maple Ave",
    "Cedar Rd",
    "Elm St",
    "Washington Blvd",
    "Lake Dr",
    "Park Ave",
    "Market St",
    "Broadway",
    "Hill Rd",
    "Mission St",
)
CITIES = (
    ("Austin", "TX", "787"),
    ("Denver", "CO", "802"),
    ("Seattle", "WA", "981"),
    ("Boston", "MA", "021"),
    ("Chicago", "IL", "606"),
    ("Atlanta", "GA", "303"),
    ("Portland", "OR", "972"),
    ("Phoenix", "AZ", "850"),
    ("Nashville", "TN", "372"),
    ("San Diego", "CA", "921"),
    ("Columbus", "OH", "432"),
    ("Raleigh", "NC", "276"),
    ("Minneapolis", "MN", "554"),
    ("Salt Lake City", "UT", "841"),
    ("Pittsburgh", "PA", "152"),
)
AREA_CODES = ("512", "303", "206", "617", "312", "404", "503", "602", "615", "619", "614", "919")
OTHER_ROLES = (
    "Business User",
    "Decision Maker",
    "Economic Buyer",
    "Evaluator",
    "Executive Sponsor",
    "Influencer",
    "Technical Buyer",
    "Other",
)
# (name, code, family, unit price, price type)
PRODUCTS = (
    ("Contact Center Agent License", "LIC-AGENT", "License", 95.0, "Recurring"),
    ("Supervisor License", "LIC-SUPV", "License", 125.0, "Recurring"),
    ("Analytics License", "LIC-ANLY", "License", 45.0, "Recurring"),
    ("Workforce Management License", "LIC-WFM", "License", 35.0, "Recurring"),
    ("Quality Management License", "LIC-QM", "License", 30.0, "Recurring"),
    ("Dialer Minutes", "DIAL-MIN", "Dialer Minutes", 0.012, "Usage"),
    ("Premium Support", "SVC-PREM", "Service", 1500.0, "Recurring"),
    ("Implementation Services", "SVC-IMPL", "Service", 7500.0, "One Time"),
    ("Call Recording Add-On", "ADD-REC", "Add-On", 12.0, "Recurring"),
    ("SMS Add-On", "ADD-SMS", "Add-On", 8.0, "Recurring"),
)
TITLES = (
    ("Controller", "Finance"),
    ("Accounts Payable Manager", "Finance"),
    ("CFO", "Finance"),
    ("IT Director", "IT"),
    ("Contact Center Manager", "Operations"),
    ("VP Customer Experience", "Customer Service"),
    ("Procurement Lead", "Procurement"),
    ("Office Manager", "Administration"),
)


def _contact_details(account_id: str, position: int) -> tuple[str | None, ...]:
    """Title, Phone, MobilePhone and Department of a contact.

    Drawn from their own generator (seeded by the contact's place), so that adding them
    left every other seeded value as it was.
    """
    rng = random.Random(f"{account_id}-{position}")
    title, department = rng.choice(TITLES)
    area = rng.choice(AREA_CODES)
    phone = f"({area}) {rng.randint(200, 999)}-{rng.randint(0, 9999):04d}"
    mobile = (
        f"({rng.choice(AREA_CODES)}) {rng.randint(200, 999)}-{rng.randint(0, 9999):04d}"
        if rng.random() < 0.6
        else None
    )
    return title, phone, mobile, department


#: The org's one active price list, then a retired one (inactive) with older prices.
PRICE_LISTS = (("Standard Price List", 1), ("Price List 2025", 0))
#: Price list item per product code: (charge type, frequency, pack size). The list price
#: is the product's unit price; the price type is the product's.
CHARGES = {
    "Recurring": ("Subscription Fee", "Monthly", None),
    "Usage": ("Usage Fee", None, 1000.0),
    "One Time": ("Implementation Fee", None, None),
}
#: The retired list's prices were this fraction of today's.
RETIRED_FACTOR = 0.9
CARD_TYPES = ("Visa", "MasterCard", "American Express", "Discover")

_COLUMNS: dict[str, tuple[str, ...]] = {
    "Account": (
        "Name",
        "AccountNumber",
        "Phone",
        "Billing_Email__c",
        "BillingStreet",
        "BillingCity",
        "BillingState",
        "BillingPostalCode",
        "BillingCountry",
    ),
    "Contact": (
        "AccountId",
        "FirstName",
        "LastName",
        "Email",
        "Title",
        "Phone",
        "MobilePhone",
        "Department",
    ),
    "AccountContactRole": ("AccountId", "ContactId", "Role", "IsPrimary"),
    "Product2": ("Name", "ProductCode", "Family", "IsActive"),
    "Apttus_Config2__Order__c": (
        "Name",
        "Apttus_Config2__SoldToAccountId__c",
        "Apttus_Config2__OrderDate__c",
        "Apttus_Config2__Status__c",
        "Apttus_Config2__OrderAmount__c",
        "Billing_Sync_Key__c",
    ),
    "Apttus_Config2__OrderLineItem__c": (
        "Name",
        "Apttus_Config2__OrderId__c",
        "Apttus_Config2__ProductId__c",
        "Apttus_Config2__Quantity__c",
        "Apttus_Config2__NetPrice__c",
        "Apttus_Config2__ChargeType__c",
    ),
    "Apttus_Config2__AssetLineItem__c": (
        "Name",
        "Apttus_Config2__AccountId__c",
        "Apttus_Config2__ProductId__c",
        "Apttus_Config2__Quantity__c",
        "Apttus_Config2__AssetStatus__c",
        "Apttus_Config2__PriceType__c",
        "Apttus_Config2__NetPrice__c",
        "Apttus_Config2__StartDate__c",
        "Apttus_Config2__EndDate__c",
    ),
    "Apttus_Billing__Invoice__c": (
        "Name",
        "Apttus_Billing__BillToAccountId__c",
        "Apttus_Billing__InvoiceDate__c",
        "Apttus_Billing__DueDate__c",
        "Apttus_Billing__TotalInvoiceAmount__c",
        "Apttus_Billing__TotalDueAmount__c",
        "Apttus_Billing__Status__c",
        "Apttus_Billing__PaymentStatus__c",
        "Has_Attachment__c",
    ),
    "Apttus_Billing__InvoiceLineItem__c": (
        "Name",
        "Apttus_Billing__InvoiceId__c",
        "Apttus_Billing__Description__c",
        "Apttus_Billing__Quantity__c",
        "Apttus_Billing__Amount__c",
        "Apttus_Billing__TaxAmount__c",
    ),
    "Apttus_Billing__PaymentMethod__c": (
        "Name",
        "Apttus_Billing__AccountId__c",
        "Apttus_Billing__Type__c",
        "Apttus_Billing__CardType__c",
        "Apttus_Billing__CardLastFour__c",
        "Apttus_Billing__CardExpirationMonth__c",
        "Apttus_Billing__CardExpirationYear__c",
        "Apttus_Billing__PaymentToken__c",
        "Apttus_Billing__IsDefault__c",
        "Is_One_Time__c",
        "Apttus_Billing__Status__c",
        "Billing_Sync_Key__c",
    ),
    "Apttus_Config2__PriceList__c": ("Name", "Apttus_Config2__Active__c", "CurrencyIsoCode"),
    "Apttus_Config2__PriceListItem__c": (
        "Name",
        "Apttus_Config2__PriceListId__c",
        "Apttus_Config2__ProductId__c",
        "Apttus_Config2__ListPrice__c",
        "Apttus_Config2__PriceType__c",
        "Apttus_Config2__Frequency__c",
        "Apttus_Config2__ChargeType__c",
        "Pack_Size__c",
        "Apttus_Config2__Active__c",
    ),
}
TAX_RATE = 0.0825


def _month_start(anchor: date, months_back: int) -> date:
    index = anchor.year * 12 + anchor.month - 1 - months_back
    return date(index // 12, index % 12 + 1, 1)


class _Builder:
    """Collects rows per object; Ids come from the store so they never collide."""

    def __init__(self, store: Store, rng: random.Random, today: date) -> None:
        self.store = store
        self.rng = rng
        self.today = today
        self.anchor = date(today.year, today.month, 1)
        self.rows: dict[str, list[list[Any]]] = {name: [] for name in _COLUMNS}
        self.prefix = {
            name: obj.key_prefix for name in _COLUMNS if (obj := store.schema.get(name)) is not None
        }
        self.counters = {"order": 0, "invoice": 0, "line": 0, "asset": 0, "pm": 0}

    def add(self, name: str, values: Sequence[Any]) -> str:
        record_id = self.store.ids.new(self.prefix[name])
        self.rows[name].append([record_id, *values])
        return record_id

    def number(self, kind: str) -> int:
        self.counters[kind] += 1
        return self.counters[kind]

    def products(self) -> list[tuple[str, tuple[str, str, str, float, str]]]:
        return [(self.add("Product2", (p[0], p[1], p[2], 1)), p) for p in PRODUCTS]

    def price_lists(self, products: list[tuple[str, tuple[str, str, str, float, str]]]) -> None:
        """The price lists: every product priced per unit (no random numbers drawn)."""
        for name, active in PRICE_LISTS:
            list_id = self.add("Apttus_Config2__PriceList__c", (name, active, "USD"))
            factor = 1.0 if active else RETIRED_FACTOR
            for product_id, (pname, _code, _family, price, price_type) in products:
                charge, frequency, pack = CHARGES[price_type]
                self.add(
                    "Apttus_Config2__PriceListItem__c",
                    (
                        f"{pname} - {name}",
                        list_id,
                        product_id,
                        round(price * factor, 5),
                        price_type,
                        frequency,
                        charge,
                        pack,
                        1,
                    ),
                )

    def account(
        self, index: int, products: list[tuple[str, tuple[str, str, str, float, str]]]
    ) -> None:
        rng = self.rng
        word = rng.choice(COMPANY_WORDS)
        kind = rng.choice(COMPANY_KINDS)
        name = f"{word} {kind} {rng.choice(COMPANY_SUFFIXES)}"
        domain = f"{word}{kind}{index}".lower() + ".example.com"
        city, state, zip_prefix = rng.choice(CITIES)
        area = rng.choice(AREA_CODES)
        account_id = self.add(
            "Account",
            (
                name,
                f"ACC-{index + 1:06d}",  # no draw: the other values stay as they were
                f"({area}) {rng.randint(200, 999)}-{rng.randint(0, 9999):04d}",
                f"billing@{domain}",
                f"{rng.randint(10, 9999)} {rng.choice(STREETS)}",
                city,
                state,
                f"{zip_prefix}{rng.randint(0, 99):02d}",
                "United States",
            ),
        )
        self._contacts(account_id, domain)
        licenses = [p for p in products if p[1][2] == "License"]
        self._assets(account_id, products, licenses)
        self._orders(account_id, products)
        self._invoices(account_id, licenses)
        self._payment_methods(account_id)

    def _contacts(self, account_id: str, domain: str) -> None:
        rng = self.rng
        count = rng.choice((4, 5, 5, 5, 6))
        admins = 1 if rng.random() < 0.7 else 2
        for position in range(count):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            email = f"{first}.{last}{'' if position == 0 else position}@{domain}".lower()
            contact_id = self.add(
                "Contact", (account_id, first, last, email, *_contact_details(account_id, position))
            )
            if position < admins:
                role: str | None = "Billing Admin"
            elif rng.random() < 0.5:
                role = rng.choice(OTHER_ROLES)
            else:
                role = None
            if role is not None:
                self.add("AccountContactRole", (account_id, contact_id, role, int(position == 0)))

    def _assets(
        self,
        account_id: str,
        products: list[tuple[str, tuple[str, str, str, float, str]]],
        licenses: list[tuple[str, tuple[str, str, str, float, str]]],
    ) -> None:
        rng = self.rng
        chosen = rng.sample(licenses, rng.randint(2, 3))
        dialer = next(p for p in products if p[1][2] == "Dialer Minutes")
        extras = [p for p in products if p[1][2] in ("Service", "Add-On")]
        if rng.random() < 0.5:
            chosen.append(rng.choice(extras))
        chosen.append(dialer)
        for product_id, (pname, _code, family, price, price_type) in chosen:
            if family == "Dialer Minutes":
                quantity = float(rng.randrange(5_000, 250_000, 500))
            elif price_type == "One Time":
                quantity = 1.0
            else:
                quantity = float(rng.randint(5, 250) if family == "License" else rng.randint(1, 3))
            start = self.anchor - timedelta(days=rng.randint(30, 900))
            status = rng.choices(
                ("Activated", "Pending Activation", "Expired", "Cancelled"), (88, 4, 5, 3)
            )[0]
            end = start + timedelta(days=365 * rng.randint(1, 3))
            self.add(
                "Apttus_Config2__AssetLineItem__c",
                (
                    f"{pname} - A-{self.number('asset'):07d}",
                    account_id,
                    product_id,
                    quantity,
                    status,
                    price_type,
                    round(quantity * price, 2),
                    start.isoformat(),
                    end.isoformat(),
                ),
            )

    def _orders(
        self, account_id: str, products: list[tuple[str, tuple[str, str, str, float, str]]]
    ) -> None:
        rng = self.rng
        for _ in range(rng.randint(8, 12)):
            number = self.number("order")
            order_date = self.anchor - timedelta(days=rng.randint(0, 720))
            status = "Pending" if rng.random() < 0.2 else "Activated"
            lines = []
            for product_id, (_n, _c, family, price, price_type) in rng.sample(
                products, rng.randint(1, 3)
            ):
                quantity = float(
                    rng.randrange(1_000, 50_000, 1_000)
                    if family == "Dialer Minutes"
                    else rng.randint(1, 50)
                )
                charge = {
                    "Recurring": "Subscription Fee",
                    "Usage": "Usage Fee",
                    "One Time": "Implementation Fee",
                }[price_type]
                lines.append((product_id, quantity, round(quantity * price, 2), charge))
            order_id = self.add(
                "Apttus_Config2__Order__c",
                (
                    f"O-{number:08d}",
                    account_id,
                    order_date.isoformat(),
                    status,
                    round(sum(line[2] for line in lines), 2),
                    f"order-{number:08d}",
                ),
            )
            for product_id, quantity, net, charge in lines:
                self.add(
                    "Apttus_Config2__OrderLineItem__c",
                    (
                        f"OLI-{self.number('line'):09d}",
                        order_id,
                        product_id,
                        quantity,
                        net,
                        charge,
                    ),
                )

    def _invoices(
        self, account_id: str, licenses: list[tuple[str, tuple[str, str, str, float, str]]]
    ) -> None:
        rng = self.rng
        for months_back in range(23, -1, -1):
            month = _month_start(self.anchor, months_back)
            issued = datetime(month.year, month.month, 1, 10, 0, tzinfo=UTC)
            lines = []
            for _ in range(rng.randint(1, 3)):
                kind = rng.random()
                if kind < 0.6:
                    _pid, (pname, _c, _f, price, _t) = rng.choice(licenses)
                    quantity = float(rng.randint(5, 250))
                    text = f"{pname} - {month:%B %Y}"
                elif kind < 0.9:
                    quantity, price = float(rng.randrange(1_000, 80_000, 100)), 0.012
                    text = f"Dialer Minutes usage - {month:%B %Y}"
                else:
                    quantity, price = 1.0, 1500.0
                    text = f"Premium Support - {month:%B %Y}"
                amount = round(quantity * price, 2)
                lines.append((text, quantity, amount, round(amount * TAX_RATE, 2)))
            total = round(sum(line[2] + line[3] for line in lines), 2)
            historical = months_back >= 12
            if months_back == 0:
                payment = "Not Paid"
            elif months_back == 1:
                payment = rng.choices(("Paid", "Not Paid", "Overdue"), (70, 15, 15))[0]
            else:
                payment = "Paid"
            due = round(total, 2) if payment != "Paid" else 0.0
            invoice_id = self.add(
                "Apttus_Billing__Invoice__c",
                (
                    f"INV-{self.number('invoice'):08d}",
                    account_id,
                    format_ms(int(issued.timestamp() * 1000)),
                    (month + timedelta(days=30)).isoformat(),
                    total,
                    due,
                    "Historical" if historical else "Approved",
                    payment,
                    0 if historical else 1,
                ),
            )
            for text, quantity, amount, tax in lines:
                self.add(
                    "Apttus_Billing__InvoiceLineItem__c",
                    (
                        f"ILI-{self.number('line'):09d}",
                        invoice_id,
                        text,
                        quantity,
                        amount,
                        tax,
                    ),
                )

    def _payment_methods(self, account_id: str) -> None:
        rng = self.rng
        count = rng.choice((1, 1, 2, 2, 3))
        default = rng.randrange(count)
        for position in range(count):
            number = self.number("pm")
            token = f"tok_{rng.getrandbits(96):024x}"
            if rng.random() < 0.75:
                card = rng.choice(CARD_TYPES)
                last_four = f"{rng.randint(0, 9999):04d}"
                values: tuple[Any, ...] = (
                    f"{card} ending {last_four}",
                    account_id,
                    "Credit Card",
                    card,
                    last_four,
                    rng.randint(1, 12),
                    self.today.year + rng.randint(0, 5),
                    token,
                )
            else:
                values = (f"ACH {number:07d}", account_id, "ACH", None, None, None, None, token)
            self.add(
                "Apttus_Billing__PaymentMethod__c",
                (
                    *values,
                    int(position == default),
                    0,
                    "Active",
                    f"pm-{number:08d}",
                ),
            )


def seed(
    store: Store, accounts: int, random_seed: int = 1, *, today: date | None = None
) -> dict[str, int]:
    """Add ``accounts`` generated accounts with their related records to ``store``.

    Args:
        store: the sandbox store (normally empty).
        accounts: how many accounts to create.
        random_seed: the same value gives the same names, amounts and Ids.
        today: the day the data is relative to (default: today, UTC).

    Returns:
        Records created per object.
    """
    rng = random.Random(random_seed)
    builder = _Builder(store, rng, today or store.clock.now().date())
    products = builder.products() if accounts > 0 else []
    for index in range(accounts):
        builder.account(index + 1, products)
    if products:
        # after the accounts: the Ids and values of every other record stay as they were
        builder.price_lists(products)
    total = sum(len(rows) for rows in builder.rows.values())
    if total == 0:
        return {}
    first, last = store.clock.reserve(total)
    span = last - first
    position = 0
    counts: dict[str, int] = {}
    with store.transaction():
        for name, rows in builder.rows.items():
            obj = store.schema.get(name)
            if obj is None or not rows:
                continue
            encoded = []
            for row in rows:
                moment = format_ms(first + position * span // max(1, total - 1))
                position += 1
                encoded.append((row[0], 0, moment, moment, moment, *row[1:]))
            store.bulk_insert(obj, (*SYSTEM_FIELDS, *_COLUMNS[name]), encoded)
            counts[obj.name] = len(rows)
    return counts
