"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 01:57:00.902610
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sync.db.types


revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "account_contact_roles",
        sa.Column("account_sfid", sa.String(length=18), nullable=True),
        sa.Column("contact_sfid", sa.String(length=18), nullable=True),
        sa.Column("role", sa.String(length=40), nullable=True),
        sa.Column("is_primary", sa.Boolean(), nullable=True),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sfid", sa.String(length=18), nullable=False),
        sa.Column("system_modstamp", sync.db.types.UTCDateTime(), nullable=False),
        sa.Column("is_deleted", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("synced_at", sync.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_contact_roles")),
        sa.UniqueConstraint("sfid", name=op.f("uq_account_contact_roles_sfid")),
    )
    with op.batch_alter_table("account_contact_roles", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_account_contact_roles_account_sfid"), ["account_sfid"], unique=False
        )
        batch_op.create_index(
            "ix_account_contact_roles_contact_role", ["contact_sfid", "role"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_account_contact_roles_contact_sfid"), ["contact_sfid"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_account_contact_roles_system_modstamp"),
            ["system_modstamp"],
            unique=False,
        )

    op.create_table(
        "accounts",
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("phone", sa.String(length=40), nullable=True),
        sa.Column("billing_email", sa.String(length=255), nullable=True),
        sa.Column("billing_street", sa.String(length=255), nullable=True),
        sa.Column("billing_city", sa.String(length=40), nullable=True),
        sa.Column("billing_state", sa.String(length=80), nullable=True),
        sa.Column("billing_postal_code", sa.String(length=20), nullable=True),
        sa.Column("billing_country", sa.String(length=80), nullable=True),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sfid", sa.String(length=18), nullable=False),
        sa.Column("system_modstamp", sync.db.types.UTCDateTime(), nullable=False),
        sa.Column("is_deleted", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("synced_at", sync.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("sfid", name=op.f("uq_accounts_sfid")),
    )
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_accounts_system_modstamp"), ["system_modstamp"], unique=False
        )

    op.create_table(
        "assets",
        sa.Column("account_sfid", sa.String(length=18), nullable=True),
        sa.Column("product_sfid", sa.String(length=18), nullable=True),
        sa.Column("quantity", sync.db.types.ScaledDecimal(18, 4), nullable=True),
        sa.Column("status", sa.String(length=40), nullable=True),
        sa.Column("price_type", sa.String(length=40), nullable=True),
        sa.Column("net_price", sync.db.types.ScaledDecimal(18, 2), nullable=True),
        sa.Column("start_date", sa.Date(), nullable=True),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sfid", sa.String(length=18), nullable=False),
        sa.Column("system_modstamp", sync.db.types.UTCDateTime(), nullable=False),
        sa.Column("is_deleted", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("synced_at", sync.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assets")),
        sa.UniqueConstraint("sfid", name=op.f("uq_assets_sfid")),
    )
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_assets_account_sfid"), ["account_sfid"], unique=False)
        batch_op.create_index(batch_op.f("ix_assets_product_sfid"), ["product_sfid"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_assets_system_modstamp"), ["system_modstamp"], unique=False
        )

    op.create_table(
        "authorizations",
        sa.Column("account_sfid", sa.String(length=18), nullable=True),
        sa.Column("contact_sfid", sa.String(length=18), nullable=True),
        sa.Column("authorized_by_name", sa.String(length=255), nullable=True),
        sa.Column("accepted_at", sync.db.types.UTCDateTime(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("sync_key", sa.String(length=80), nullable=True),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sfid", sa.String(length=18), nullable=False),
        sa.Column("system_modstamp", sync.db.types.UTCDateTime(), nullable=False),
        sa.Column("is_deleted", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("synced_at", sync.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_authorizations")),
        sa.UniqueConstraint("sfid", name=op.f("uq_authorizations_sfid")),
    )
    with op.batch_alter_table("authorizations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_authorizations_account_sfid"), ["account_sfid"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_authorizations_contact_sfid"), ["contact_sfid"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_authorizations_sync_key"), ["sync_key"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_authorizations_system_modstamp"), ["system_modstamp"], unique=False
        )

    op.create_table(
        "contacts",
        sa.Column("account_sfid", sa.String(length=18), nullable=True),
        sa.Column("first_name", sa.String(length=40), nullable=True),
        sa.Column("last_name", sa.String(length=80), nullable=True),
        sa.Column("email", sa.String(length=255), nullable=True),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sfid", sa.String(length=18), nullable=False),
        sa.Column("system_modstamp", sync.db.types.UTCDateTime(), nullable=False),
        sa.Column("is_deleted", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("synced_at", sync.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
        sa.UniqueConstraint("sfid", name=op.f("uq_contacts_sfid")),
    )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_contacts_account_sfid"), ["account_sfid"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_contacts_email"), ["email"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_contacts_system_modstamp"), ["system_modstamp"], unique=False
        )

    op.create_table(
        "invoice_lines",
        sa.Column("invoice_sfid", sa.String(length=18), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("quantity", sync.db.types.ScaledDecimal(18, 4), nullable=True),
        sa.Column("amount", sync.db.types.ScaledDecimal(18, 2), nullable=True),
        sa.Column("tax_amount", sync.db.types.ScaledDecimal(18, 2), nullable=True),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sfid", sa.String(length=18), nullable=False),
        sa.Column("system_modstamp", sync.db.types.UTCDateTime(), nullable=False),
        sa.Column("is_deleted", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("synced_at", sync.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_lines")),
        sa.UniqueConstraint("sfid", name=op.f("uq_invoice_lines_sfid")),
    )
    with op.batch_alter_table("invoice_lines", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_invoice_lines_invoice_sfid"), ["invoice_sfid"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_invoice_lines_system_modstamp"), ["system_modstamp"], unique=False
        )

    op.create_table(
        "invoices",
        sa.Column("name", sa.String(length=80), nullable=True),
        sa.Column("account_sfid", sa.String(length=18), nullable=True),
        sa.Column("invoice_date", sync.db.types.UTCDateTime(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("total_amount", sync.db.types.ScaledDecimal(18, 2), nullable=True),
        sa.Column("total_due", sync.db.types.ScaledDecimal(18, 2), nullable=True),
        sa.Column("status", sa.String(length=40), nullable=True),
        sa.Column("payment_status", sa.String(length=40), nullable=True),
        sa.Column("has_attachment", sa.Boolean(), nullable=True),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sfid", sa.String(length=18), nullable=False),
        sa.Column("system_modstamp", sync.db.types.UTCDateTime(), nullable=False),
        sa.Column("is_deleted", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("synced_at", sync.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("sfid", name=op.f("uq_invoices_sfid")),
    )
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.create_index(
            "ix_invoices_account_amount", ["account_sfid", "total_amount"], unique=False
        )
        batch_op.create_index(
            "ix_invoices_account_date", ["account_sfid", "invoice_date"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_invoices_account_sfid"), ["account_sfid"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_invoices_system_modstamp"), ["system_modstamp"], unique=False
        )

    op.create_table(
        "order_lines",
        sa.Column("order_sfid", sa.String(length=18), nullable=True),
        sa.Column("product_sfid", sa.String(length=18), nullable=True),
        sa.Column("quantity", sync.db.types.ScaledDecimal(18, 4), nullable=True),
        sa.Column("net_price", sync.db.types.ScaledDecimal(18, 2), nullable=True),
        sa.Column("charge_type", sa.String(length=40), nullable=True),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sfid", sa.String(length=18), nullable=False),
        sa.Column("system_modstamp", sync.db.types.UTCDateTime(), nullable=False),
        sa.Column("is_deleted", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("synced_at", sync.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_lines")),
        sa.UniqueConstraint("sfid", name=op.f("uq_order_lines_sfid")),
    )
    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_order_lines_order_sfid"), ["order_sfid"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_order_lines_product_sfid"), ["product_sfid"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_order_lines_system_modstamp"), ["system_modstamp"], unique=False
        )

    op.create_table(
        "orders",
        sa.Column("name", sa.String(length=80), nullable=True),
        sa.Column("account_sfid", sa.String(length=18), nullable=True),
        sa.Column("order_date", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=40), nullable=True),
        sa.Column("amount", sync.db.types.ScaledDecimal(18, 2), nullable=True),
        sa.Column("sync_key", sa.String(length=80), nullable=True),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sfid", sa.String(length=18), nullable=False),
        sa.Column("system_modstamp", sync.db.types.UTCDateTime(), nullable=False),
        sa.Column("is_deleted", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("synced_at", sync.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("sfid", name=op.f("uq_orders_sfid")),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index("ix_orders_account_amount", ["account_sfid", "amount"], unique=False)
        batch_op.create_index(
            "ix_orders_account_date", ["account_sfid", "order_date"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_orders_account_sfid"), ["account_sfid"], unique=False)
        batch_op.create_index(batch_op.f("ix_orders_sync_key"), ["sync_key"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_orders_system_modstamp"), ["system_modstamp"], unique=False
        )

    op.create_table(
        "payment_methods",
        sa.Column("account_sfid", sa.String(length=18), nullable=True),
        sa.Column("type", sa.String(length=40), nullable=True),
        sa.Column("card_type", sa.String(length=40), nullable=True),
        sa.Column("card_last_four", sa.String(length=4), nullable=True),
        sa.Column("card_expiration_month", sa.Integer(), nullable=True),
        sa.Column("card_expiration_year", sa.Integer(), nullable=True),
        sa.Column("payment_token", sa.String(length=255), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=True),
        sa.Column("is_one_time", sa.Boolean(), nullable=True),
        sa.Column("status", sa.String(length=40), nullable=True),
        sa.Column("sync_key", sa.String(length=80), nullable=True),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sfid", sa.String(length=18), nullable=False),
        sa.Column("system_modstamp", sync.db.types.UTCDateTime(), nullable=False),
        sa.Column("is_deleted", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("synced_at", sync.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_methods")),
        sa.UniqueConstraint("sfid", name=op.f("uq_payment_methods_sfid")),
    )
    with op.batch_alter_table("payment_methods", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_payment_methods_account_sfid"), ["account_sfid"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_payment_methods_sync_key"), ["sync_key"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_payment_methods_system_modstamp"), ["system_modstamp"], unique=False
        )

    op.create_table(
        "products",
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("product_code", sa.String(length=255), nullable=True),
        sa.Column("family", sa.String(length=40), nullable=True),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sfid", sa.String(length=18), nullable=False),
        sa.Column("system_modstamp", sync.db.types.UTCDateTime(), nullable=False),
        sa.Column("is_deleted", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("synced_at", sync.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
        sa.UniqueConstraint("sfid", name=op.f("uq_products_sfid")),
    )
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_products_system_modstamp"), ["system_modstamp"], unique=False
        )

    op.create_table(
        "record_errors",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("mapping", sa.String(length=80), nullable=False),
        sa.Column("sfid", sa.String(length=18), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("first_seen", sync.db.types.UTCDateTime(), nullable=False),
        sa.Column("last_seen", sync.db.types.UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_errors")),
        sa.UniqueConstraint("mapping", "sfid", name="uq_record_errors_mapping_sfid"),
    )
    with op.batch_alter_table("record_errors", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_record_errors_mapping"), ["mapping"], unique=False)

    op.create_table(
        "sync_passes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("mapping", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("started_at", sync.db.types.UTCDateTime(), nullable=False),
        sa.Column("finished_at", sync.db.types.UTCDateTime(), nullable=True),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("api_calls", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=40), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_passes")),
    )
    with op.batch_alter_table("sync_passes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sync_passes_mapping_started", ["mapping", "started_at"], unique=False
        )

    op.create_table(
        "sync_state",
        sa.Column("mapping", sa.String(length=80), nullable=False),
        sa.Column("watermark", sync.db.types.UTCDateTime(), nullable=True),
        sa.Column("paused", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("last_pass_started_at", sync.db.types.UTCDateTime(), nullable=True),
        sa.Column("last_pass_finished_at", sync.db.types.UTCDateTime(), nullable=True),
        sa.Column("last_outcome", sa.String(length=40), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", sync.db.types.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("mapping", name=op.f("pk_sync_state")),
    )


def downgrade() -> None:
    op.drop_table("sync_state")
    with op.batch_alter_table("sync_passes", schema=None) as batch_op:
        batch_op.drop_index("ix_sync_passes_mapping_started")

    op.drop_table("sync_passes")
    with op.batch_alter_table("record_errors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_record_errors_mapping"))

    op.drop_table("record_errors")
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_products_system_modstamp"))

    op.drop_table("products")
    with op.batch_alter_table("payment_methods", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payment_methods_system_modstamp"))
        batch_op.drop_index(batch_op.f("ix_payment_methods_sync_key"))
        batch_op.drop_index(batch_op.f("ix_payment_methods_account_sfid"))

    op.drop_table("payment_methods")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_orders_system_modstamp"))
        batch_op.drop_index(batch_op.f("ix_orders_sync_key"))
        batch_op.drop_index(batch_op.f("ix_orders_account_sfid"))
        batch_op.drop_index("ix_orders_account_date")
        batch_op.drop_index("ix_orders_account_amount")

    op.drop_table("orders")
    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_order_lines_system_modstamp"))
        batch_op.drop_index(batch_op.f("ix_order_lines_product_sfid"))
        batch_op.drop_index(batch_op.f("ix_order_lines_order_sfid"))

    op.drop_table("order_lines")
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invoices_system_modstamp"))
        batch_op.drop_index(batch_op.f("ix_invoices_account_sfid"))
        batch_op.drop_index("ix_invoices_account_date")
        batch_op.drop_index("ix_invoices_account_amount")

    op.drop_table("invoices")
    with op.batch_alter_table("invoice_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invoice_lines_system_modstamp"))
        batch_op.drop_index(batch_op.f("ix_invoice_lines_invoice_sfid"))

    op.drop_table("invoice_lines")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contacts_system_modstamp"))
        batch_op.drop_index(batch_op.f("ix_contacts_email"))
        batch_op.drop_index(batch_op.f("ix_contacts_account_sfid"))

    op.drop_table("contacts")
    with op.batch_alter_table("authorizations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_authorizations_system_modstamp"))
        batch_op.drop_index(batch_op.f("ix_authorizations_sync_key"))
        batch_op.drop_index(batch_op.f("ix_authorizations_contact_sfid"))
        batch_op.drop_index(batch_op.f("ix_authorizations_account_sfid"))

    op.drop_table("authorizations")
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assets_system_modstamp"))
        batch_op.drop_index(batch_op.f("ix_assets_product_sfid"))
        batch_op.drop_index(batch_op.f("ix_assets_account_sfid"))

    op.drop_table("assets")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_accounts_system_modstamp"))

    op.drop_table("accounts")
    with op.batch_alter_table("account_contact_roles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_account_contact_roles_system_modstamp"))
        batch_op.drop_index(batch_op.f("ix_account_contact_roles_contact_sfid"))
        batch_op.drop_index("ix_account_contact_roles_contact_role")
        batch_op.drop_index(batch_op.f("ix_account_contact_roles_account_sfid"))

    op.drop_table("account_contact_roles")
