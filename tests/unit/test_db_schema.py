import datetime as dt
from decimal import Decimal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select

from sync.db.engine import schema_is_current
from sync.db.models import Base, Invoice, Order


def test_given_migrated_database_when_compared_then_matches_models(engine):
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    assert schema_is_current(engine)


def test_given_amounts_and_datetimes_when_round_tripped_then_exact_and_utc(engine):
    now = dt.datetime(2026, 11, 22, 10, 0, 0, 123000, tzinfo=dt.UTC)
    other = dt.timezone(dt.timedelta(hours=-5))
    with engine.begin() as conn:
        conn.execute(
            Order.__table__.insert(),
            [
                {
                    "sfid": f"a0A000000000000{i:03d}",
                    "system_modstamp": now,
                    "synced_at": now,
                    "amount": Decimal(a),
                    "order_date": dt.date(2026, 1, i + 1),
                }
                for i, a in enumerate(["10.10", "9.99", "100.00", "0.01"])
            ],
        )
        conn.execute(
            Invoice.__table__.insert(),
            {
                "sfid": "a0B000000000000AAA",
                "system_modstamp": now,
                "synced_at": now,
                "invoice_date": now.astimezone(other),
            },
        )
    with engine.connect() as conn:
        amounts = conn.scalars(select(Order.amount).order_by(Order.amount)).all()
        invoice_date = conn.scalar(select(Invoice.invoice_date))
    assert amounts == [Decimal("0.01"), Decimal("9.99"), Decimal("10.10"), Decimal("100.00")]
    assert invoice_date == now
    assert invoice_date.utcoffset() == dt.timedelta(0)


def test_given_naive_datetime_when_written_then_refused(engine):
    naive = dt.datetime(2026, 11, 22, 10, 0)
    with pytest.raises(Exception, match="naive datetime"), engine.begin() as conn:
        conn.execute(
            Order.__table__.insert(),
            {"sfid": "a0A000000000000XYZ", "system_modstamp": naive, "synced_at": naive},
        )
