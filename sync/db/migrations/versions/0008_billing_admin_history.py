"""billing admin history, and the account number of accounts

``billing_admin_history`` holds who became, or stopped being, a Billing Admin of an
account, as the pull mirrors the role rows; ``accounts.account_number`` mirrors the CRM's
AccountNumber, which support searches by.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 21:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sync.db.types

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "billing_admin_history",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("account_sfid", sa.String(length=18), nullable=True),
        sa.Column("contact_sfid", sa.String(length=18), nullable=True),
        sa.Column("role_sfid", sa.String(length=18), nullable=False),
        sa.Column("change", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("role", sa.String(length=40), nullable=True),
        sa.Column("changed_at", sync.db.types.UTCDateTime(), nullable=False),
        sa.Column("recorded_at", sync.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_admin_history")),
    )
    with op.batch_alter_table("billing_admin_history", schema=None) as batch_op:
        batch_op.create_index(
            "ix_billing_admin_history_account_changed",
            ["account_sfid", "changed_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_billing_admin_history_contact_sfid"), ["contact_sfid"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_billing_admin_history_role_sfid"), ["role_sfid"], unique=False
        )
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("account_number", sa.String(length=40), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_accounts_account_number"), ["account_number"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_accounts_account_number"))
        batch_op.drop_column("account_number")
    with op.batch_alter_table("billing_admin_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_billing_admin_history_role_sfid"))
        batch_op.drop_index(batch_op.f("ix_billing_admin_history_contact_sfid"))
        batch_op.drop_index("ix_billing_admin_history_account_changed")
    op.drop_table("billing_admin_history")
