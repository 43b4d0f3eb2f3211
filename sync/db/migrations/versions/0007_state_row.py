"""one state row per mapping: fingerprint and last load report as sync_state columns

The fingerprint (``mapping-fingerprint:<mapping>``) and the last load report
(``last-load:<mapping>``) were service_state documents; their values move into the
mapping's sync_state row, and the documents are removed. The downgrade writes them back.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 20:10:00.000000
"""

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import sync.db.types

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FINGERPRINT_PREFIX = "mapping-fingerprint:"
LOAD_PREFIX = "last-load:"

# The tables as this revision knows them (not the models, which move on).
service_state = sa.table(
    "service_state",
    sa.column("key", sa.String),
    sa.column("value", sa.Text),
    sa.column("version", sa.Integer),
    sa.column("updated_at", sync.db.types.UTCDateTime()),
)
sync_state = sa.table(
    "sync_state",
    sa.column("mapping", sa.String),
    sa.column("updated_at", sync.db.types.UTCDateTime()),
    sa.column("fingerprint", sa.String),
    sa.column("load_method", sa.String),
    sa.column("load_counted", sa.BigInteger),
    sa.column("load_job_id", sa.String),
    sa.column("load_api_calls", sa.Integer),
    sa.column("load_fallback", sa.Text),
    sa.column("load_at", sync.db.types.UTCDateTime()),
)
LOAD_COLUMNS = ("method", "counted", "job_id", "api_calls", "fallback", "at")


def _documents(conn: sa.Connection, prefix: str) -> dict[str, tuple[dict[str, Any], Any]]:
    rows = conn.execute(
        sa.select(service_state.c.key, service_state.c.value, service_state.c.updated_at).where(
            service_state.c.key.startswith(prefix, autoescape=True)
        )
    ).all()
    found: dict[str, tuple[dict[str, Any], Any]] = {}
    for key, value, updated_at in rows:
        try:
            document = json.loads(value)
        except ValueError:
            continue
        if isinstance(document, dict):
            found[key[len(prefix) :]] = (document, updated_at)
    return found


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(dt.UTC) if parsed.tzinfo is not None else None


def upgrade() -> None:
    with op.batch_alter_table("sync_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fingerprint", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("load_method", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("load_counted", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("load_job_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("load_api_calls", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("load_fallback", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("load_at", sync.db.types.UTCDateTime(timezone=True), nullable=True)
        )

    conn = op.get_bind()
    values: dict[str, dict[str, Any]] = {}
    times: dict[str, Any] = {}
    for mapping, (doc, updated_at) in _documents(conn, FINGERPRINT_PREFIX).items():
        values.setdefault(mapping, {})["fingerprint"] = _text(doc.get("fingerprint"))
        times[mapping] = updated_at
    for mapping, (doc, updated_at) in _documents(conn, LOAD_PREFIX).items():
        method = _text(doc.get("method"))
        if method is None:
            continue
        values.setdefault(mapping, {}).update(
            load_method=method,
            load_counted=_int(doc.get("counted")),
            load_job_id=_text(doc.get("job_id")),
            load_api_calls=_int(doc.get("api_calls")) or 0,
            load_fallback=_text(doc.get("fallback")),
            load_at=_time(doc.get("at")) or updated_at,
        )
        times.setdefault(mapping, updated_at)
    existing = set(conn.execute(sa.select(sync_state.c.mapping)).scalars())
    for mapping, columns in values.items():
        if mapping in existing:
            conn.execute(
                sa.update(sync_state).where(sync_state.c.mapping == mapping).values(**columns)
            )
        else:
            conn.execute(
                sa.insert(sync_state).values(mapping=mapping, updated_at=times[mapping], **columns)
            )
    conn.execute(
        sa.delete(service_state).where(
            sa.or_(
                service_state.c.key.startswith(FINGERPRINT_PREFIX, autoescape=True),
                service_state.c.key.startswith(LOAD_PREFIX, autoescape=True),
            )
        )
    )


def downgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(sync_state)).all()
    now = dt.datetime.now(dt.UTC)
    documents: list[dict[str, Any]] = []
    for row in rows:
        updated_at = row.updated_at or now
        if row.fingerprint is not None:
            documents.append(
                {
                    "key": FINGERPRINT_PREFIX + row.mapping,
                    "value": _json({"fingerprint": row.fingerprint}),
                    "version": 1,
                    "updated_at": updated_at,
                }
            )
        if row.load_method is not None:
            at = row.load_at or updated_at
            report = {
                "method": row.load_method,
                "counted": row.load_counted,
                "job_id": row.load_job_id,
                "api_calls": row.load_api_calls or 0,
                "fallback": row.load_fallback,
                "at": at.isoformat(),
            }
            documents.append(
                {
                    "key": LOAD_PREFIX + row.mapping,
                    "value": _json(report),
                    "version": 1,
                    "updated_at": at,
                }
            )
    keys = [d["key"] for d in documents]
    if keys:
        conn.execute(sa.delete(service_state).where(service_state.c.key.in_(keys)))
        conn.execute(sa.insert(service_state), documents)

    with op.batch_alter_table("sync_state", schema=None) as batch_op:
        batch_op.drop_column("load_at")
        batch_op.drop_column("load_fallback")
        batch_op.drop_column("load_api_calls")
        batch_op.drop_column("load_job_id")
        batch_op.drop_column("load_counted")
        batch_op.drop_column("load_method")
        batch_op.drop_column("fingerprint")


def _json(document: dict[str, Any]) -> str:
    # the form sync.db.service_state writes
    return json.dumps(document, separators=(",", ":"), sort_keys=True)
