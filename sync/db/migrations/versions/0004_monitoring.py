"""monitoring: counters summed over every process, pass history by start time, outbox by state

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 08:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sync.db.types


revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "metric_counters",
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("labels", sa.String(length=500), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("updated_at", sync.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", "labels", name=op.f("pk_metric_counters")),
    )
    # /metrics counts change sets per state (and their latest update) on every scrape.
    with op.batch_alter_table("change_sets", schema=None) as batch_op:
        batch_op.create_index(
            "ix_change_sets_state_updated", ["state", "updated_at"], unique=False
        )
    # The ops dashboard charts the last 24 hours of passes of every mapping.
    with op.batch_alter_table("sync_passes", schema=None) as batch_op:
        batch_op.create_index("ix_sync_passes_started_at", ["started_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sync_passes", schema=None) as batch_op:
        batch_op.drop_index("ix_sync_passes_started_at")
    with op.batch_alter_table("change_sets", schema=None) as batch_op:
        batch_op.drop_index("ix_change_sets_state_updated")
    op.drop_table("metric_counters")
