"""change data capture: replay id per event channel

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 08:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sync.db.types


revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_channels",
        sa.Column("channel", sa.String(length=255), nullable=False),
        sa.Column("replay_id", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sync.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("channel", name=op.f("pk_event_channels")),
    )


def downgrade() -> None:
    op.drop_table("event_channels")
