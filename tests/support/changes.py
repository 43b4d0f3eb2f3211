"""The whole service in one process against the sandbox, for the change-flow tests.

:func:`running_service` pulls the sandbox into a fresh database, then serves the portal
with the in-process scheduler (change check, pulls, push) exactly as ``billing-sync run``
does, Accept triggering the push at once.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from simple_salesforce import Salesforce, format_soql
from sqlalchemy import text

from sync.context import SyncContext
from sync.portal.server import PortalServer
from sync.pull import Outcome, pull_all
from sync.service.jobs import Runtime
from sync.service.locks import LocalLocks
from sync.service.scheduler import InProcessScheduler
from tests.support.portal_data import SECRET
from tests.support.pull import make_context

ROLE = "Billing Admin"
CARD = "4242 4242 4242 4242"
CVC = "737"


@dataclass
class Service:
    """A running portal and scheduler on a pulled copy of the sandbox."""

    url: str
    ctx: SyncContext
    scheduler: InProcessScheduler

    def sql(self, query: str, **params: Any) -> list[Any]:
        with self.ctx.engine.connect() as conn:
            return list(conn.execute(text(query), params).all())


@contextmanager
def running_service(sandbox_url: str, database_url: str, **settings: Any) -> Iterator[Service]:
    """Pull everything, then serve the portal with the in-process scheduler."""
    options = {
        "portal_secret": SECRET,
        "pull_interval": 1.0,
        "push_interval": 2.0,
        "push_lease": 5.0,
        **settings,
    }
    ctx = make_context(sandbox_url, database_url, **options)
    try:
        assert {r.outcome for r in pull_all(ctx)} <= {Outcome.OK, Outcome.UNCHANGED}
        scheduler = InProcessScheduler(
            Runtime(settings=ctx.settings, ctx=ctx, locks=LocalLocks()), heartbeat=False
        )
        with PortalServer(ctx.settings, ctx.engine, push_trigger=scheduler.trigger_push) as portal:
            scheduler.start()
            try:
                assert portal.url
                yield Service(portal.url, ctx, scheduler)
            finally:
                scheduler.stop()
    finally:
        ctx.close()


@dataclass(frozen=True)
class Admin:
    """A Billing Admin of exactly one account, as the CRM has them."""

    contact: str
    account: str
    first_name: str
    last_name: str
    role: str


def pick_admin(sf: Salesforce, *, skip: set[str] | None = None) -> Admin:
    """A contact that is Billing Admin of exactly one account with an active default card."""
    roles = sf.query_all(
        format_soql("SELECT Id, AccountId, ContactId FROM AccountContactRole WHERE Role = {}", ROLE)
    )["records"]
    per_contact = Counter(r["ContactId"] for r in roles)
    for role in sorted(roles, key=lambda r: r["Id"]):
        if per_contact[role["ContactId"]] != 1 or role["AccountId"] in (skip or set()):
            continue
        methods = active_methods(sf, role["AccountId"])
        if not methods or sum(1 for m in methods if m["Apttus_Billing__IsDefault__c"]) != 1:
            continue
        contact = sf.Contact.get(role["ContactId"])
        if not contact.get("FirstName") or not contact.get("LastName"):
            continue
        return Admin(
            role["ContactId"],
            role["AccountId"],
            contact["FirstName"],
            contact["LastName"],
            role["Id"],
        )
    raise AssertionError("the seed has no Billing Admin with one account and one default card")


def active_methods(sf: Salesforce, account: str) -> list[dict[str, Any]]:
    """The account's active payment methods in the CRM."""
    records: list[dict[str, Any]] = sf.query_all(
        format_soql(
            "SELECT Id, Apttus_Billing__IsDefault__c, Apttus_Billing__Status__c, "
            "Apttus_Billing__CardLastFour__c, Apttus_Billing__PaymentToken__c, "
            "Apttus_Billing__CardType__c, Billing_Sync_Key__c, Is_One_Time__c "
            "FROM Apttus_Billing__PaymentMethod__c "
            "WHERE Apttus_Billing__AccountId__c = {} AND Apttus_Billing__Status__c = 'Active'",
            account,
        )
    )["records"]
    return records


def authorizations(sf: Salesforce, account: str) -> list[dict[str, Any]]:
    """The account's Billing_Authorization__c records."""
    records: list[dict[str, Any]] = sf.query_all(
        format_soql(
            "SELECT Id, Contact__c, Authorized_By_Name__c, Summary__c, Billing_Sync_Key__c "
            "FROM Billing_Authorization__c WHERE Account__c = {}",
            account,
        )
    )["records"]
    return records


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it is truthy; its last value (falsy on timeout)."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value


def accept_direct(
    ctx: SyncContext,
    admin: Admin,
    *,
    fields: dict[str, Any] | None = None,
    card: bool = False,
    card_default: bool = False,
    purchases: list[tuple[str, str, str]] | None = None,
    more_cards: int = 0,
) -> int:
    """Stage and accept changes as the portal does, without a browser; the set's id.

    Args:
        ctx: the context (its database holds the pulled sandbox).
        admin: who accepts.
        fields: account column -> new value (the value seen is the mirrored one).
        card: add the 4242 test card.
        card_default: ... as the default method.
        purchases: (kind, product sfid, quantity as typed) staged as the purchase forms do.
        more_cards: this many more test cards (not default), one staged change each.
    """
    import datetime as dt

    from sync.access import contact_access
    from sync.changes.accept import Acceptance, accept
    from sync.changes.plan import WriteTargets
    from sync.changes.staging import FieldEdit, stage_account_fields, stage_card
    from sync.changes.terms import load_terms
    from sync.payments import CardDetails, TestGateway

    now = dt.datetime.now(dt.UTC)
    with ctx.engine.begin() as conn:
        contact, _ = contact_access(conn, admin.contact, ROLE)
        assert contact is not None
        if fields:
            mirrored = (
                conn.execute(text("SELECT * FROM accounts WHERE sfid = :a"), {"a": admin.account})
                .mappings()
                .one()
            )
            edits = [FieldEdit(c, c.title(), mirrored[c], v) for c, v in fields.items()]
            stage_account_fields(conn, admin.contact, admin.account, edits, now)
        if card:
            token = TestGateway().tokenize(
                CardDetails(CARD, CVC, 12, now.year + 3, "Card Holder"), today=now.date()
            )
            stage_card(
                conn,
                admin.contact,
                admin.account,
                token,
                is_default=card_default,
                is_one_time=False,
                now=now,
            )
        for _ in range(more_cards):
            stage_test_card(conn, admin, now)
        for kind, product, quantity in purchases or []:
            from sync.changes.purchases import stage_purchase
            from sync.changes.rules import ChangeKind

            stage_purchase(
                conn, admin.contact, admin.account, ChangeKind(kind), product, quantity, now
            )
        return accept(
            conn,
            Acceptance(
                contact=contact,
                account_sfid=admin.account,
                first_name=admin.first_name,
                last_name=admin.last_name,
                terms=load_terms(None),
                client_ip="127.0.0.1",
                user_agent="pytest",
            ),
            WriteTargets.from_mappings(ctx.mappings),
            # Accept comes after the staging (which takes a while for large sets).
            dt.datetime.now(dt.UTC),
        )


def stage_test_card(conn: Any, admin: Admin, now: Any) -> None:
    """Stage one more 4242 test card (not default) for ``admin``, as the card form does."""
    from sync.changes.staging import stage_card
    from sync.payments import CardDetails, TestGateway

    token = TestGateway().tokenize(
        CardDetails(CARD, CVC, 12, now.year + 3, "Card Holder"), today=now.date()
    )
    stage_card(
        conn, admin.contact, admin.account, token, is_default=False, is_one_time=False, now=now
    )


def set_state(ctx: SyncContext, set_id: int) -> tuple[str, str | None]:
    """(state, message) of a change set."""
    with ctx.engine.connect() as conn:
        row = conn.execute(
            text("SELECT state, message FROM change_sets WHERE id = :i"), {"i": set_id}
        ).one()
    return row[0], row[1]


def push_until_final(
    ctx: SyncContext, set_id: int, timeout: float = 60.0
) -> tuple[str, str | None]:
    """Run push passes until the set is applied, conflicted, failed or cancelled."""
    from sync.push import push_pending

    def final() -> tuple[str, str | None] | None:
        push_pending(ctx)
        state = set_state(ctx, set_id)
        return state if state[0] not in ("accepted", "sending") else None

    result = wait_for(final, timeout=timeout, interval=0.2)
    assert result, f"change set {set_id} still {set_state(ctx, set_id)}"
    return result  # type: ignore[no-any-return]


def product_ids(sf: Salesforce) -> dict[str, str]:
    """Product sfid per product code, as the CRM has them."""
    records = sf.query_all("SELECT Id, ProductCode FROM Product2")["records"]
    return {r["ProductCode"]: r["Id"] for r in records}


def price_item(sf: Salesforce, product: str) -> dict[str, Any]:
    """The product's item in the active price list."""
    (price_list,) = sf.query_all(
        "SELECT Id FROM Apttus_Config2__PriceList__c WHERE Apttus_Config2__Active__c = true"
    )["records"]
    (record,) = sf.query_all(
        format_soql(
            "SELECT Id, Apttus_Config2__ListPrice__c, Apttus_Config2__Active__c "
            "FROM Apttus_Config2__PriceListItem__c WHERE Apttus_Config2__ProductId__c = {} "
            "AND Apttus_Config2__PriceListId__c = {}",
            product,
            price_list["Id"],
        )
    )["records"]
    return dict(record)


def orders_with_lines(sf: Salesforce, account: str) -> list[dict[str, Any]]:
    """The account's orders created by the portal (with a Billing_Sync_Key__c of a set)."""
    orders = sf.query_all(
        format_soql(
            "SELECT Id, Apttus_Config2__Status__c, Apttus_Config2__OrderAmount__c, "
            "Apttus_Config2__OrderDate__c, Billing_Sync_Key__c FROM Apttus_Config2__Order__c "
            "WHERE Apttus_Config2__SoldToAccountId__c = {} AND Billing_Sync_Key__c LIKE 'bs-%'",
            account,
        )
    )["records"]
    out = []
    for order in orders:
        lines = sf.query_all(
            format_soql(
                "SELECT Apttus_Config2__ProductId__c, Apttus_Config2__Quantity__c, "
                "Apttus_Config2__NetPrice__c, Apttus_Config2__ChargeType__c, "
                "Billing_Sync_Key__c FROM Apttus_Config2__OrderLineItem__c "
                "WHERE Apttus_Config2__OrderId__c = {} ORDER BY Billing_Sync_Key__c",
                order["Id"],
            )
        )["records"]
        out.append({**order, "lines": lines})
    return out
