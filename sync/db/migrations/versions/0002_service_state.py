"""service state: budget ledger and in-process heartbeats

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 02:08:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sync.db.types


revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "service_state",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sync.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_service_state")),
    )


def downgrade() -> None:
    op.drop_table("service_state")
