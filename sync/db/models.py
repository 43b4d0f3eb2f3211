"""SQLAlchemy 2 models: the mirrored CRM tables and billing-sync's own tables.

Every mirrored table carries ``sfid`` (the CRM's 18-character Id, unique),
``system_modstamp``, ``is_deleted`` (a CRM delete keeps the row as a tombstone) and
``synced_at``. References between mirrored tables are sfid columns, indexed, with no
foreign keys: a child can arrive before its parent.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    Double,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sync.db.types import ScaledDecimal, UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Money = ScaledDecimal(18, 2)
Quantity = ScaledDecimal(18, 4)
SFID = String(18)


class Base(DeclarativeBase):
    """Declarative base with constraint naming that Alembic can follow."""

    metadata = MetaData(naming_convention=NAMING)


class Mirrored(Base):
    """Columns every mirrored table has."""

    __abstract__ = True

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    sfid: Mapped[str] = mapped_column(SFID, unique=True)
    system_modstamp: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    is_deleted: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    synced_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Account(Mirrored):
    """Account (CRM ``Account``)."""

    __tablename__ = "accounts"

    name: Mapped[str | None] = mapped_column(String(255))
    account_number: Mapped[str | None] = mapped_column(String(40), index=True)
    phone: Mapped[str | None] = mapped_column(String(40))
    billing_email: Mapped[str | None] = mapped_column(String(255))
    billing_street: Mapped[str | None] = mapped_column(String(255))
    billing_city: Mapped[str | None] = mapped_column(String(40))
    billing_state: Mapped[str | None] = mapped_column(String(80))
    billing_postal_code: Mapped[str | None] = mapped_column(String(20))
    billing_country: Mapped[str | None] = mapped_column(String(80))
    price_list_sfid: Mapped[str | None] = mapped_column(SFID)


class Contact(Mirrored):
    """Contact (CRM ``Contact``)."""

    __tablename__ = "contacts"

    account_sfid: Mapped[str | None] = mapped_column(SFID, index=True)
    first_name: Mapped[str | None] = mapped_column(String(40))
    last_name: Mapped[str | None] = mapped_column(String(80))
    email: Mapped[str | None] = mapped_column(String(255), index=True)


class AccountContactRole(Mirrored):
    """A contact's role on an account; ``Billing Admin`` grants the portal."""

    __tablename__ = "account_contact_roles"
    __table_args__ = (Index("ix_account_contact_roles_contact_role", "contact_sfid", "role"),)

    account_sfid: Mapped[str | None] = mapped_column(SFID, index=True)
    contact_sfid: Mapped[str | None] = mapped_column(SFID, index=True)
    role: Mapped[str | None] = mapped_column(String(40))
    is_primary: Mapped[bool | None] = mapped_column(Boolean)


class Product(Mirrored):
    """Product (CRM ``Product2``)."""

    __tablename__ = "products"

    name: Mapped[str | None] = mapped_column(String(255))
    product_code: Mapped[str | None] = mapped_column(String(255))
    family: Mapped[str | None] = mapped_column(String(40))


class Order(Mirrored):
    """Order (``Apttus_Config2__Order__c``)."""

    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_account_date", "account_sfid", "order_date"),
        Index("ix_orders_account_amount", "account_sfid", "amount"),
    )

    name: Mapped[str | None] = mapped_column(String(80))
    account_sfid: Mapped[str | None] = mapped_column(SFID, index=True)
    order_date: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[str | None] = mapped_column(String(40))
    amount: Mapped[Decimal | None] = mapped_column(Money)
    sync_key: Mapped[str | None] = mapped_column(String(80), index=True)


class OrderLine(Mirrored):
    """Order line (``Apttus_Config2__OrderLineItem__c``)."""

    __tablename__ = "order_lines"

    order_sfid: Mapped[str | None] = mapped_column(SFID, index=True)
    product_sfid: Mapped[str | None] = mapped_column(SFID, index=True)
    quantity: Mapped[Decimal | None] = mapped_column(Quantity)
    net_price: Mapped[Decimal | None] = mapped_column(Money)
    charge_type: Mapped[str | None] = mapped_column(String(40))
    sync_key: Mapped[str | None] = mapped_column(String(80), index=True)


class Asset(Mirrored):
    """Purchased product (``Apttus_Config2__AssetLineItem__c``)."""

    __tablename__ = "assets"

    account_sfid: Mapped[str | None] = mapped_column(SFID, index=True)
    product_sfid: Mapped[str | None] = mapped_column(SFID, index=True)
    quantity: Mapped[Decimal | None] = mapped_column(Quantity)
    status: Mapped[str | None] = mapped_column(String(40))
    price_type: Mapped[str | None] = mapped_column(String(40))
    net_price: Mapped[Decimal | None] = mapped_column(Money)
    start_date: Mapped[dt.date | None] = mapped_column(Date)
    end_date: Mapped[dt.date | None] = mapped_column(Date)


class Invoice(Mirrored):
    """Invoice (``Apttus_Billing__Invoice__c``)."""

    __tablename__ = "invoices"
    __table_args__ = (
        Index("ix_invoices_account_date", "account_sfid", "invoice_date"),
        Index("ix_invoices_account_amount", "account_sfid", "total_amount"),
    )

    name: Mapped[str | None] = mapped_column(String(80))
    account_sfid: Mapped[str | None] = mapped_column(SFID, index=True)
    invoice_date: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    due_date: Mapped[dt.date | None] = mapped_column(Date)
    total_amount: Mapped[Decimal | None] = mapped_column(Money)
    total_due: Mapped[Decimal | None] = mapped_column(Money)
    status: Mapped[str | None] = mapped_column(String(40))
    payment_status: Mapped[str | None] = mapped_column(String(40))
    has_attachment: Mapped[bool | None] = mapped_column(Boolean)


class InvoiceLine(Mirrored):
    """Invoice line (``Apttus_Billing__InvoiceLineItem__c``)."""

    __tablename__ = "invoice_lines"

    invoice_sfid: Mapped[str | None] = mapped_column(SFID, index=True)
    description: Mapped[str | None] = mapped_column(Text)
    quantity: Mapped[Decimal | None] = mapped_column(Quantity)
    amount: Mapped[Decimal | None] = mapped_column(Money)
    tax_amount: Mapped[Decimal | None] = mapped_column(Money)


class PaymentMethod(Mirrored):
    """Payment method (``Apttus_Billing__PaymentMethod__c``): a token and the last four only."""

    __tablename__ = "payment_methods"

    account_sfid: Mapped[str | None] = mapped_column(SFID, index=True)
    type: Mapped[str | None] = mapped_column(String(40))
    card_type: Mapped[str | None] = mapped_column(String(40))
    card_last_four: Mapped[str | None] = mapped_column(String(4))
    card_expiration_month: Mapped[int | None] = mapped_column(Integer)
    card_expiration_year: Mapped[int | None] = mapped_column(Integer)
    payment_token: Mapped[str | None] = mapped_column(String(255))
    is_default: Mapped[bool | None] = mapped_column(Boolean)
    is_one_time: Mapped[bool | None] = mapped_column(Boolean)
    status: Mapped[str | None] = mapped_column(String(40))
    sync_key: Mapped[str | None] = mapped_column(String(80), index=True)


class Authorization(Mirrored):
    """A Billing Admin's acceptance of changes (``Billing_Authorization__c``)."""

    __tablename__ = "authorizations"

    account_sfid: Mapped[str | None] = mapped_column(SFID, index=True)
    contact_sfid: Mapped[str | None] = mapped_column(SFID, index=True)
    authorized_by_name: Mapped[str | None] = mapped_column(String(255))
    accepted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    summary: Mapped[str | None] = mapped_column(Text)
    sync_key: Mapped[str | None] = mapped_column(String(80), index=True)


MIRRORED_MODELS: dict[str, type[Mirrored]] = {
    m.__tablename__: m
    for m in (
        Account,
        Contact,
        AccountContactRole,
        Product,
        Order,
        OrderLine,
        Asset,
        Invoice,
        InvoiceLine,
        PaymentMethod,
        Authorization,
    )
}


# --- billing-sync's own tables ---------------------------------------------------------


class SyncState(Base):
    """One row per mapping: where its pull stands, all of it.

    The watermark, the pause switch, the last pass's times and outcome, the fingerprint
    of the mapping its rows were last fully loaded with, and how the last pass read its
    window (``load_*``: REST or a Bulk API 2.0 job). Records that failed to convert are
    per record and keep their own table (``record_errors``).
    """

    __tablename__ = "sync_state"

    mapping: Mapped[str] = mapped_column(String(80), primary_key=True)
    watermark: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    paused: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    last_pass_started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_pass_finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_outcome: Mapped[str | None] = mapped_column(String(40))
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # the mapping's fingerprint when its rows were last fully loaded
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    # how the last pass read its window
    load_method: Mapped[str | None] = mapped_column(String(10))
    load_counted: Mapped[int | None] = mapped_column(BigInteger)
    load_job_id: Mapped[str | None] = mapped_column(String(40))
    load_api_calls: Mapped[int | None] = mapped_column(Integer)
    load_fallback: Mapped[str | None] = mapped_column(Text)
    load_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class RowCount(Base):
    """One row per mirrored table: its live rows and tombstones, kept exact by the database.

    Triggers on each mirrored table (migration ``0009``, 0009_row_counts.py) add every insert,
    update of ``is_deleted`` and delete to its row in the same transaction, whoever
    writes: a pull page, a reconcile's tombstones, a reload, a hand-made fix. Reading the
    counts is then one small query whatever the tables hold. A mirrored table added by a
    later migration gets its row and triggers there.
    """

    __tablename__ = "row_counts"

    table_name: Mapped[str] = mapped_column(String(63), primary_key=True)
    live: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    deleted: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class SyncPass(Base):
    """History: one row per pull pass of one mapping."""

    __tablename__ = "sync_passes"
    __table_args__ = (
        Index("ix_sync_passes_mapping_started", "mapping", "started_at"),
        Index("ix_sync_passes_started_at", "started_at"),
        # the passes still running, which every status read looks for
        Index("ix_sync_passes_outcome", "outcome"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    mapping: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(20), default="incremental")
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    records: Mapped[int] = mapped_column(Integer, default=0)
    api_calls: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str] = mapped_column(String(40), default="running")
    error: Mapped[str | None] = mapped_column(Text)


class RecordError(Base):
    """A CRM record that could not be converted; retried on later passes."""

    __tablename__ = "record_errors"
    __table_args__ = (UniqueConstraint("mapping", "sfid", name="uq_record_errors_mapping_sfid"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    mapping: Mapped[str] = mapped_column(String(80), index=True)
    sfid: Mapped[str] = mapped_column(SFID)
    reason: Mapped[str] = mapped_column(Text)
    first_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    last_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=1)


class BillingAdminChange(Base):
    """History: a contact became, or stopped being, a Billing Admin of an account.

    Written by the pull in the transaction of the page that carries the role row's change
    (a role row that appears, changes its role or account, or is tombstoned), never for
    an unchanged row. ``changed_at`` is the CRM's SystemModstamp of the change (the time
    it was seen, for a tombstone of a purged record); ``recorded_at`` when it was mirrored.
    """

    __tablename__ = "billing_admin_history"
    __table_args__ = (
        Index("ix_billing_admin_history_account_changed", "account_sfid", "changed_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    account_sfid: Mapped[str | None] = mapped_column(SFID)
    contact_sfid: Mapped[str | None] = mapped_column(SFID, index=True)
    role_sfid: Mapped[str] = mapped_column(SFID, index=True)
    change: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(40))
    role: Mapped[str | None] = mapped_column(String(40))
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class ServiceState(Base):
    """Small shared state of the background service, one JSON document per key.

    Holds the API budget guard's ledger and the heartbeat of an in-process runner.
    ``version`` makes updates optimistic: a writer that read an older version retries.
    """

    __tablename__ = "service_state"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


# --- the write side: staged changes, the outbox of accepted change sets, the audit log --


class StagedChange(Base):
    """A change a Billing Admin made in the portal and has not accepted yet.

    Staged per contact and account; nothing here reaches the CRM until Accept turns the
    contact's staged changes into one :class:`ChangeSet`. ``payload`` is JSON without
    card numbers or CVCs (a card is staged as its gateway token).
    """

    __tablename__ = "staged_changes"
    __table_args__ = (Index("ix_staged_changes_contact_account", "contact_sfid", "account_sfid"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    account_sfid: Mapped[str] = mapped_column(SFID)
    contact_sfid: Mapped[str] = mapped_column(SFID)
    kind: Mapped[str] = mapped_column(String(40))
    target: Mapped[str | None] = mapped_column(String(80))
    payload: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class ChangeSet(Base):
    """Changes a Billing Admin accepted by typing their name: the unit the push sends.

    ``state`` follows accepted -> sending -> applied | conflict | failed | cancelled;
    ``key`` is the stable part of every external key the push derives, so a resent set
    upserts the same CRM records.
    """

    __tablename__ = "change_sets"
    __table_args__ = (
        Index("ix_change_sets_state_next", "state", "next_attempt_at"),
        Index("ix_change_sets_account", "account_sfid", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    key: Mapped[str] = mapped_column(String(40), unique=True)
    account_sfid: Mapped[str] = mapped_column(SFID)
    contact_sfid: Mapped[str] = mapped_column(SFID)
    typed_name: Mapped[str] = mapped_column(String(255))
    terms_version: Mapped[str] = mapped_column(String(80))
    summary: Mapped[str] = mapped_column(Text)
    staged: Mapped[str] = mapped_column(Text)
    accepted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    client_ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    state: Mapped[str] = mapped_column(String(20), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    message: Mapped[str | None] = mapped_column(Text)
    authorization_sfid: Mapped[str | None] = mapped_column(SFID)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class ChangeItem(Base):
    """One field update or one record create of a :class:`ChangeSet`.

    Values are JSON. ``old_value`` is what the admin saw; ``crm_value`` is what the CRM
    held when the push found a conflict.
    """

    __tablename__ = "change_items"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    change_set_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    operation: Mapped[str] = mapped_column(String(20))
    sobject: Mapped[str] = mapped_column(String(80))
    record_sfid: Mapped[str | None] = mapped_column(SFID)
    external_key: Mapped[str | None] = mapped_column(String(80))
    field: Mapped[str | None] = mapped_column(String(80))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    crm_value: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(String(20))
    label: Mapped[str] = mapped_column(Text)


class AuditEntry(Base):
    """Who did what to the write side: stage, discard, accept, push outcomes, ops actions."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(40))
    account_sfid: Mapped[str | None] = mapped_column(SFID, index=True)
    change_set_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    detail: Mapped[str | None] = mapped_column(Text)


# --- monitoring ------------------------------------------------------------------------


class MetricCounter(Base):
    """One series of a counter (or a histogram part) summed over every process.

    ``labels`` is the canonical ``k=v`` string of :func:`sync.telemetry.counters.label_string`.
    Processes add their increments every few seconds; ``/metrics`` reads them all.
    """

    __tablename__ = "metric_counters"

    name: Mapped[str] = mapped_column(String(120), primary_key=True)
    labels: Mapped[str] = mapped_column(String(500), primary_key=True)
    value: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


# /metrics counts change sets per state, with each state's latest update, at every scrape.
Index("ix_change_sets_state_updated", ChangeSet.state, ChangeSet.updated_at)


# --- change events --------------------------------------------------------------------


class EventChannel(Base):
    """One Change Data Capture channel the listener subscribes to.

    ``replay_id`` is the id of the last event handled on the channel: a restarted
    listener resubscribes after it (None: from new events on).
    """

    __tablename__ = "event_channels"

    channel: Mapped[str] = mapped_column(String(255), primary_key=True)
    replay_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


# --- price lists (purchases) -----------------------------------------------------------


class PriceList(Mirrored):
    """Price list (``Apttus_Config2__PriceList__c``)."""

    __tablename__ = "price_lists"

    name: Mapped[str | None] = mapped_column(String(80))
    active: Mapped[bool | None] = mapped_column(Boolean)
    currency: Mapped[str | None] = mapped_column(String(3))


class PriceListItem(Mirrored):
    """Price list item (``Apttus_Config2__PriceListItem__c``): one product's price."""

    __tablename__ = "price_list_items"

    price_list_sfid: Mapped[str | None] = mapped_column(SFID, index=True)
    product_sfid: Mapped[str | None] = mapped_column(SFID, index=True)
    list_price: Mapped[Decimal | None] = mapped_column(ScaledDecimal(18, 5))
    price_type: Mapped[str | None] = mapped_column(String(40))
    frequency: Mapped[str | None] = mapped_column(String(40))
    charge_type: Mapped[str | None] = mapped_column(String(40))
    pack_size: Mapped[Decimal | None] = mapped_column(Quantity)
    active: Mapped[bool | None] = mapped_column(Boolean)


MIRRORED_MODELS.update({m.__tablename__: m for m in (PriceList, PriceListItem)})
