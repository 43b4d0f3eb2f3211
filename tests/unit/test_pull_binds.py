"""Records converted straight into the forms the database driver binds, on both backends."""

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select

from sync.db import repo
from sync.db.engine import make_engine
from sync.db.models import Invoice
from sync.db.shapes import MIRRORED_SHAPES
from sync.db.types import Bind, BindForm
from sync.mapping import load_mappings
from sync.mapping.loader import PROJECT_MAPPINGS
from sync.pull import convert_page
from sync.pull.rows import RowBuilder

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
INVOICES = load_mappings(PROJECT_MAPPINGS, MIRRORED_SHAPES)["invoices"]
TABLE = repo.mirrored_table("invoices")
SQLITE = make_engine("sqlite://").dialect


def invoice(n, **values):
    return {
        "attributes": {"type": "Apttus_Billing__Invoice__c"},
        "Id": f"a0D000000000{n:03d}AAA",
        "IsDeleted": False,
        "SystemModstamp": "2026-11-22T10:00:00.123+0000",
        "Name": f"INV-{n}",
        "Apttus_Billing__InvoiceDate__c": "2026-11-01T08:30:00.000+0000",
        "Apttus_Billing__DueDate__c": "2026-12-01",
        "Apttus_Billing__TotalInvoiceAmount__c": 1234.5,
        "Apttus_Billing__TotalDueAmount__c": 0.1 + 0.2,
        "Apttus_Billing__Status__c": "Posted",
        "Apttus_Billing__PaymentStatus__c": "Unpaid",
        "Has_Attachment__c": True,
        "Apttus_Billing__BillToAccountId__c": "001000000000001AAA",
        **values,
    }


def sqlite_builder():
    plan = repo.upsert_plan(SQLITE, TABLE, tuple(INVOICES.columns))
    return plan, RowBuilder(INVOICES, columns=plan.columns, binds=plan.binds)


def as_dict(builder, row):
    return dict(zip(builder.columns, row, strict=True))


def test_given_sqlite_binds_when_page_converted_then_values_are_the_stored_forms():
    _, builder = sqlite_builder()

    page = convert_page(INVOICES, [invoice(1)], NOW, builder)

    row = as_dict(builder, page.values[0])
    assert row["system_modstamp"] == "2026-11-22 10:00:00.123000"
    assert row["invoice_date"] == "2026-11-01 08:30:00.000000"
    assert row["due_date"] == "2026-12-01"
    assert row["total_amount"] == 123450  # hundredths
    assert row["total_due"] == 30  # 0.30000000000000004 at the column's scale
    assert row["synced_at"] == "2026-11-22 12:00:00.000000"
    assert page.newest == dt.datetime(2026, 11, 22, 10, 0, 0, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    "amount",
    [1.005, 2.675, 0.125, -0.0, 12, -7, 99999999.99, 1e-7, 123456789012.34, "12.5"],
)
def test_given_any_number_when_converted_with_binds_then_same_as_the_decimal_path(amount):
    plan, builder = sqlite_builder()
    record = invoice(1, Apttus_Billing__TotalInvoiceAmount__c=amount)

    fast = as_dict(builder, convert_page(INVOICES, [record], NOW, builder).values[0])
    typed = RowBuilder(INVOICES).row(record, NOW)

    assert fast["total_amount"] == plan.bind_of("total_amount").adapt(typed["total_amount"])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("Apttus_Billing__TotalInvoiceAmount__c", 1e16, "too large for column total_amount"),
        ("Apttus_Billing__TotalInvoiceAmount__c", float("nan"), "expected a number"),
        ("Apttus_Billing__InvoiceDate__c", "2026-13-01T08:30:00.000+0000", "not a datetime"),
        ("SystemModstamp", "2026-11-22T25:00:00.000+0000", "not a datetime"),
        ("Apttus_Billing__DueDate__c", "2026-02-30", "not a date"),
        ("Name", "x" * 81, "81 characters do not fit column name"),
    ],
)
def test_given_bad_value_when_page_converted_with_binds_then_record_set_aside_naming_field(
    field, value, message
):
    _, builder = sqlite_builder()
    records = [invoice(1), invoice(2, **{field: value}), invoice(3)]

    page = convert_page(INVOICES, records, NOW, builder)

    assert [as_dict(builder, r)["sfid"] for r in page.values] == [
        "a0D000000000001AAA",
        "a0D000000000003AAA",
    ]
    reason = page.failed["a0D000000000002AAA"]
    assert reason.startswith(f"{field}: ")
    assert message in reason


def test_given_other_offsets_and_spellings_when_converted_with_binds_then_utc_and_in_order():
    _, builder = sqlite_builder()
    lowered = {key.lower(): value for key, value in invoice(2).items()}
    records = [
        invoice(1, Apttus_Billing__InvoiceDate__c="2026-11-01T10:30:00+02:00"),
        lowered,
        invoice(3, SystemModstamp="2026-11-22T10:00:05Z"),
    ]

    page = convert_page(INVOICES, records, NOW, builder)

    rows = [as_dict(builder, r) for r in page.values]
    assert [r["sfid"] for r in rows] == [
        "a0D000000000001AAA",
        "a0D000000000002AAA",
        "a0D000000000003AAA",
    ]
    assert rows[0]["invoice_date"] == "2026-11-01 08:30:00.000000"
    assert rows[1]["name"] == "INV-2"
    assert page.newest == dt.datetime(2026, 11, 22, 10, 0, 5, tzinfo=UTC)


def test_given_columns_not_of_the_mapping_when_builder_made_then_refused():
    with pytest.raises(ValueError, match="not those of mapping"):
        RowBuilder(INVOICES, columns=("sfid", "name"))


def test_given_postgres_binds_when_floats_converted_then_passed_on_only_when_exact():
    postgres = make_engine("postgresql://localhost/unused").dialect  # never connects
    plan = repo.upsert_plan(postgres, TABLE, tuple(INVOICES.columns))
    builder = RowBuilder(INVOICES, columns=plan.columns, binds=plan.binds)

    row = as_dict(builder, builder.values(invoice(1, Apttus_Billing__TotalDueAmount__c=1.005), NOW))

    assert plan.bind_of("total_amount") == Bind(BindForm.NUMERIC, 2)
    assert row["total_amount"] == 1234.5  # the server reads "1234.5" exactly
    assert row["total_due"] == Decimal("1.00")  # 1.005 is 1.00499999...: rounded here
    assert row["system_modstamp"] == dt.datetime(2026, 11, 22, 10, 0, 0, 123000, tzinfo=UTC)


def test_given_rows_converted_for_each_backend_when_upserted_then_stored_exactly(engine):
    amounts = [1234.5, 0.1 + 0.2, 1.005, 2.675, 7, 99999999.99, "12.5"]
    records = [
        invoice(n, Apttus_Billing__TotalInvoiceAmount__c=amount)
        for n, amount in enumerate(amounts, start=1)
    ]
    plan = repo.upsert_plan(engine.dialect, TABLE, tuple(INVOICES.columns))
    builder = RowBuilder(INVOICES, columns=plan.columns, binds=plan.binds)
    page = convert_page(INVOICES, records, NOW, builder)

    with engine.begin() as conn:
        written = repo.upsert_values(conn, plan, page.values)
    with engine.connect() as conn:
        stored = dict(
            conn.execute(select(Invoice.name, Invoice.total_amount).order_by(Invoice.sfid)).all()
        )
        row = conn.execute(select(TABLE).where(TABLE.c.name == "INV-1")).one()

    assert written == len(amounts)
    expected = [RowBuilder(INVOICES).row(r, NOW)["total_amount"] for r in records]
    assert [stored[f"INV-{n}"] for n in range(1, len(amounts) + 1)] == expected
    assert row.total_due == Decimal("0.30")
    assert row.invoice_date == dt.datetime(2026, 11, 1, 8, 30, tzinfo=UTC)
    assert row.due_date == dt.date(2026, 12, 1)
    assert row.system_modstamp == dt.datetime(2026, 11, 22, 10, 0, 0, 123000, tzinfo=UTC)
    assert row.synced_at == NOW


def test_given_same_page_when_upserted_again_then_nothing_rewritten(engine):
    plan = repo.upsert_plan(engine.dialect, TABLE, tuple(INVOICES.columns))
    builder = RowBuilder(INVOICES, columns=plan.columns, binds=plan.binds)
    records = [invoice(1), invoice(2)]
    with engine.begin() as conn:
        repo.upsert_values(conn, plan, convert_page(INVOICES, records, NOW, builder).values)

    later = NOW + dt.timedelta(minutes=5)
    with engine.begin() as conn:
        again = repo.upsert_values(
            conn, plan, convert_page(INVOICES, records, later, builder).values
        )

    assert again == 0
    with engine.connect() as conn:
        assert set(conn.scalars(select(Invoice.synced_at))) == {NOW}
