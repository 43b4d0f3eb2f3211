"""row counts: live rows and tombstones per mirrored table, kept by triggers

A ``row_counts`` row per mirrored table, filled once from the table, then kept exact by
triggers in the transaction of every write: PostgreSQL adds each statement's transition
tables (one aggregate per statement, not per row) and resets the counts on TRUNCATE;
SQLite adds each row. Reading the counts no longer costs time in proportion to the rows.
An index on the passes' outcome finds the passes still running without reading them all.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 21:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The mirrored tables as this revision knows them (not the models, which move on).
TABLES = (
    "account_contact_roles",
    "accounts",
    "assets",
    "authorizations",
    "contacts",
    "invoice_lines",
    "invoices",
    "order_lines",
    "orders",
    "payment_methods",
    "price_list_items",
    "price_lists",
    "products",
)
FUNCTION = "billing_sync_count_rows"

# One function for every table and event: the table's row is found by TG_TABLE_NAME, the
# changed rows are the statement's transition tables (named alike by every trigger).
POSTGRES_FUNCTION = f"""
CREATE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    d_live bigint := 0;
    d_deleted bigint := 0;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT count(*) FILTER (WHERE NOT is_deleted), count(*) FILTER (WHERE is_deleted)
            INTO d_live, d_deleted FROM new_rows;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT -count(*) FILTER (WHERE NOT is_deleted), -count(*) FILTER (WHERE is_deleted)
            INTO d_live, d_deleted FROM old_rows;
    ELSIF TG_OP = 'UPDATE' THEN
        SELECT n.live - o.live, n.deleted - o.deleted INTO d_live, d_deleted
        FROM (SELECT count(*) FILTER (WHERE NOT is_deleted) AS live,
                     count(*) FILTER (WHERE is_deleted) AS deleted FROM new_rows) AS n,
             (SELECT count(*) FILTER (WHERE NOT is_deleted) AS live,
                     count(*) FILTER (WHERE is_deleted) AS deleted FROM old_rows) AS o;
    ELSE  -- TRUNCATE
        UPDATE row_counts SET live = 0, deleted = 0 WHERE table_name = TG_TABLE_NAME;
        RETURN NULL;
    END IF;
    IF d_live <> 0 OR d_deleted <> 0 THEN
        UPDATE row_counts SET live = live + d_live, deleted = deleted + d_deleted
        WHERE table_name = TG_TABLE_NAME;
    END IF;
    RETURN NULL;
END
$$
"""


def _postgres_triggers(table: str) -> list[str]:
    run = f"FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()"
    return [
        f'CREATE TRIGGER "count_rows_insert" AFTER INSERT ON "{table}" '
        f"REFERENCING NEW TABLE AS new_rows {run}",
        f'CREATE TRIGGER "count_rows_update" AFTER UPDATE ON "{table}" '
        f"REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows {run}",
        f'CREATE TRIGGER "count_rows_delete" AFTER DELETE ON "{table}" '
        f"REFERENCING OLD TABLE AS old_rows {run}",
        f'CREATE TRIGGER "count_rows_truncate" AFTER TRUNCATE ON "{table}" {run}',
    ]


def _sqlite_triggers(table: str) -> list[str]:
    # is_deleted is 0 or 1 in SQLite: a row adds (1 - is_deleted) live, is_deleted deleted.
    def counts(live: str, deleted: str) -> str:
        return (
            f"UPDATE row_counts SET live = live + ({live}), deleted = deleted + ({deleted}) "
            f"WHERE table_name = '{table}';"
        )

    return [
        f'CREATE TRIGGER "count_rows_insert_{table}" AFTER INSERT ON "{table}" BEGIN '
        f"{counts('1 - NEW.is_deleted', 'NEW.is_deleted')} END",
        f'CREATE TRIGGER "count_rows_update_{table}" AFTER UPDATE OF is_deleted ON "{table}" '
        f"WHEN OLD.is_deleted IS NOT NEW.is_deleted BEGIN "
        f"{counts('OLD.is_deleted - NEW.is_deleted', 'NEW.is_deleted - OLD.is_deleted')} END",
        f'CREATE TRIGGER "count_rows_delete_{table}" AFTER DELETE ON "{table}" BEGIN '
        f"{counts('OLD.is_deleted - 1', '-OLD.is_deleted')} END",
    ]


def upgrade() -> None:
    op.create_table(
        "row_counts",
        sa.Column("table_name", sa.String(length=63), nullable=False),
        sa.Column("live", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("deleted", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("table_name", name=op.f("pk_row_counts")),
    )
    # the passes still running, which every status read looks for
    op.create_index("ix_sync_passes_outcome", "sync_passes", ["outcome"], unique=False)
    conn = op.get_bind()
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        # No write may slip between the fill and the triggers.
        names = ", ".join(f'"{t}"' for t in TABLES)
        conn.exec_driver_sql(f"LOCK TABLE {names} IN SHARE ROW EXCLUSIVE MODE")
    for table in TABLES:
        conn.exec_driver_sql(
            f"INSERT INTO row_counts (table_name, live, deleted) "
            f"SELECT '{table}', count(*) - count(CASE WHEN is_deleted THEN 1 END), "
            f'count(CASE WHEN is_deleted THEN 1 END) FROM "{table}"'
        )
    if postgres:
        conn.exec_driver_sql(POSTGRES_FUNCTION)
    for table in TABLES:
        for statement in _postgres_triggers(table) if postgres else _sqlite_triggers(table):
            conn.exec_driver_sql(statement)


def downgrade() -> None:
    conn = op.get_bind()
    postgres = conn.dialect.name == "postgresql"
    for table in TABLES:
        if postgres:
            for event in ("insert", "update", "delete", "truncate"):
                conn.exec_driver_sql(f'DROP TRIGGER IF EXISTS "count_rows_{event}" ON "{table}"')
        else:
            for event in ("insert", "update", "delete"):
                conn.exec_driver_sql(f'DROP TRIGGER IF EXISTS "count_rows_{event}_{table}"')
    if postgres:
        conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS {FUNCTION}()")
    op.drop_table("row_counts")
    op.drop_index("ix_sync_passes_outcome", table_name="sync_passes")
