import datetime as dt

import pytest
from sqlalchemy import select

from sync.context import SyncContext
from sync.crm.client import QueryPage
from sync.db import repo
from sync.db.models import PaymentMethod
from sync.db.shapes import MIRRORED_SHAPES
from sync.mapping import load_mappings
from sync.mapping.loader import PROJECT_MAPPINGS
from sync.pull import Outcome, pull_mapping
from sync.settings import Settings

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def method(n, month):
    return {
        "attributes": {"type": "Apttus_Billing__PaymentMethod__c"},
        "Id": f"a0F000000000{n:03d}AAA",
        "IsDeleted": False,
        "SystemModstamp": f"2026-11-22T10:00:0{n}.000+0000",
        "Apttus_Billing__AccountId__c": "001000000000001AAA",
        "Apttus_Billing__Type__c": "Credit Card",
        "Apttus_Billing__CardType__c": "Visa",
        "Apttus_Billing__CardLastFour__c": "4242",
        "Apttus_Billing__CardExpirationMonth__c": month,
        "Apttus_Billing__CardExpirationYear__c": 2030,
        "Apttus_Billing__PaymentToken__c": f"tok_{n}",
        "Apttus_Billing__IsDefault__c": n == 1,
        "Is_One_Time__c": False,
        "Apttus_Billing__Status__c": "Active",
        "Billing_Sync_Key__c": None,
    }


class OnePageCrm:
    """Answers every window query with one page of payment methods."""

    def __init__(self, records):
        self.records = records
        self.api_calls = 0

    def query_pages(self, soql, *, include_deleted=False, batch_size=2000):
        self.api_calls += 1
        yield QueryPage(self.records, len(self.records), True, None)

    def query_all(self, soql, *, include_deleted=False):
        self.api_calls += 1
        return []

    def query_count(self, soql, *, include_deleted=False):
        # a full load counts its window first (REST or Bulk): far below the threshold
        self.api_calls += 1
        return len(self.records)

    def close(self):
        pass


@pytest.fixture
def ctx(engine):
    records = [method(1, 12), method(2, 3_000_000_000), method(3, 7)]
    context = SyncContext(
        settings=Settings(),
        engine=engine,
        crm=OnePageCrm(records),  # type: ignore[arg-type]
        mappings=load_mappings(PROJECT_MAPPINGS, MIRRORED_SHAPES),
        clock=lambda: NOW,
    )
    return context


def test_given_value_the_database_refuses_when_pulled_then_recorded_and_page_stored(ctx):
    result = pull_mapping(ctx, "payment_methods", now=NOW)

    assert result.outcome is Outcome.OK
    with ctx.engine.connect() as conn:
        stored = conn.scalars(select(PaymentMethod.sfid).order_by(PaymentMethod.sfid)).all()
        errors = repo.record_errors(conn, "payment_methods")
        state = repo.get_state(conn, "payment_methods")
    assert state.watermark == dt.datetime(2026, 11, 22, 10, 0, 3, tzinfo=UTC)
    if ctx.engine.dialect.name == "postgresql":
        # integer (int4) column: the database refuses the value, one row at a time
        assert stored == ["a0F000000000001AAA", "a0F000000000003AAA"]
        [error] = errors
        assert error.sfid == "a0F000000000002AAA"
        assert "refused by the database" in error.reason
        assert result.record_errors == 1
    else:
        # SQLite integers are 64-bit: the value is stored as is
        assert len(stored) == 3
        assert errors == []
