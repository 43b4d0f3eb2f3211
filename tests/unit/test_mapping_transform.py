import datetime as dt
from decimal import Decimal

import pytest

from sync.mapping import (
    ColumnType,
    ConversionError,
    FieldSpec,
    Mapping,
    record_to_row,
    row_to_record,
)
from sync.mapping.transform import convert_value, format_sf_datetime, parse_sf_datetime

UTC = dt.UTC
SYNCED = dt.datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

INVOICES = Mapping(
    name="invoices",
    crm_object="Apttus_Billing__Invoice__c",
    table="invoices",
    fields=(
        FieldSpec("Name", "name", ColumnType.STRING, max_length=80),
        FieldSpec("Apttus_Billing__InvoiceDate__c", "invoice_date", ColumnType.DATETIME),
        FieldSpec("Apttus_Billing__DueDate__c", "due_date", ColumnType.DATE),
        FieldSpec(
            "Apttus_Billing__TotalInvoiceAmount__c",
            "total_amount",
            ColumnType.DECIMAL,
            precision=18,
            scale=2,
        ),
        FieldSpec("Has_Attachment__c", "has_attachment", ColumnType.BOOLEAN),
        FieldSpec(
            "Apttus_Billing__BillToAccountId__c",
            "account_sfid",
            ColumnType.SFID,
            reference_to="Account",
            max_length=18,
        ),
    ),
)

RECORD = {
    "attributes": {"type": "Apttus_Billing__Invoice__c"},
    "Id": "a0D000000000001AAA",
    "IsDeleted": False,
    "SystemModstamp": "2026-11-22T10:00:00.123+0000",
    "Name": "INV-0001",
    "Apttus_Billing__InvoiceDate__c": "2026-11-01T08:30:00.000+0000",
    "Apttus_Billing__DueDate__c": "2026-12-01",
    "Apttus_Billing__TotalInvoiceAmount__c": 1234.5,
    "Has_Attachment__c": True,
    "Apttus_Billing__BillToAccountId__c": "001000000000001AAA",
}


def test_given_crm_record_when_converted_then_row_has_typed_values():
    row = record_to_row(INVOICES, RECORD, SYNCED)

    assert row == {
        "sfid": "a0D000000000001AAA",
        "system_modstamp": dt.datetime(2026, 11, 22, 10, 0, 0, 123000, tzinfo=UTC),
        "is_deleted": False,
        "synced_at": SYNCED,
        "name": "INV-0001",
        "invoice_date": dt.datetime(2026, 11, 1, 8, 30, tzinfo=UTC),
        "due_date": dt.date(2026, 12, 1),
        "total_amount": Decimal("1234.50"),
        "has_attachment": True,
        "account_sfid": "001000000000001AAA",
    }


def test_given_deleted_record_when_converted_then_tombstone():
    row = record_to_row(INVOICES, {**RECORD, "IsDeleted": True}, SYNCED)

    assert row["is_deleted"] is True


def test_given_nulls_when_converted_then_none():
    record = {**RECORD, "Name": None, "Apttus_Billing__TotalInvoiceAmount__c": None}

    row = record_to_row(INVOICES, record, SYNCED)

    assert row["name"] is None
    assert row["total_amount"] is None


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("Name", "x" * 81, "81 characters do not fit column name (80 characters)"),
        ("Apttus_Billing__DueDate__c", "2026-02-30", "not a date"),
        ("Apttus_Billing__InvoiceDate__c", "yesterday", "not a datetime"),
        ("Apttus_Billing__TotalInvoiceAmount__c", 1e17, "too large for column total_amount"),
        ("Apttus_Billing__TotalInvoiceAmount__c", "abc", "expected a number"),
        ("Has_Attachment__c", "maybe", "expected true or false"),
        ("Apttus_Billing__BillToAccountId__c", "not-an-id", "not a record Id"),
    ],
)
def test_given_bad_value_when_converted_then_error_names_field(field, value, reason):
    with pytest.raises(ConversionError) as caught:
        record_to_row(INVOICES, {**RECORD, field: value}, SYNCED)

    assert caught.value.field == field
    assert reason in caught.value.reason


def test_given_record_without_mapped_field_when_converted_then_error():
    record = {k: v for k, v in RECORD.items() if k != "Name"}

    with pytest.raises(ConversionError, match="Name: missing from the record"):
        record_to_row(INVOICES, record, SYNCED)


def test_given_record_without_modstamp_when_converted_then_error():
    record = {k: v for k, v in RECORD.items() if k != "SystemModstamp"}

    with pytest.raises(ConversionError, match="SystemModstamp"):
        record_to_row(INVOICES, record, SYNCED)


def test_given_double_noise_when_converted_then_rounded_to_column_scale():
    spec = FieldSpec("Q__c", "quantity", ColumnType.DECIMAL, precision=18, scale=4)

    assert convert_value(spec, 0.1 + 0.2) == Decimal("0.3000")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(12, 12), (12.0, 12), ("7", 7)],
)
def test_given_whole_number_when_converted_to_integer_then_int(value, expected):
    spec = FieldSpec("Month__c", "card_expiration_month", ColumnType.INTEGER)

    assert convert_value(spec, value) == expected


def test_given_fraction_when_converted_to_integer_then_error():
    spec = FieldSpec("Month__c", "card_expiration_month", ColumnType.INTEGER)

    with pytest.raises(ConversionError, match="whole number"):
        convert_value(spec, 12.5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-22T10:00:00.000+0000", dt.datetime(2026, 11, 22, 10, 0, tzinfo=UTC)),
        ("2026-11-22T10:00:00Z", dt.datetime(2026, 11, 22, 10, 0, tzinfo=UTC)),
        ("2026-11-22T12:00:00.5+02:00", dt.datetime(2026, 11, 22, 10, 0, 0, 500000, tzinfo=UTC)),
        ("2026-11-22T05:00:00-0500", dt.datetime(2026, 11, 22, 10, 0, tzinfo=UTC)),
    ],
)
def test_given_salesforce_datetime_forms_when_parsed_then_utc(text, expected):
    assert parse_sf_datetime(text) == expected


def test_given_datetime_when_formatted_then_salesforce_json_form():
    value = dt.datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC)

    assert format_sf_datetime(value) == "2026-11-22T10:00:00.123+0000"


def test_given_row_when_converted_back_then_crm_values():
    row = record_to_row(INVOICES, RECORD, SYNCED)

    record = row_to_record(INVOICES, row)

    assert record == {
        "Name": "INV-0001",
        "Apttus_Billing__InvoiceDate__c": "2026-11-01T08:30:00.000+0000",
        "Apttus_Billing__DueDate__c": "2026-12-01",
        "Apttus_Billing__TotalInvoiceAmount__c": 1234.5,
        "Has_Attachment__c": True,
        "Apttus_Billing__BillToAccountId__c": "001000000000001AAA",
    }


def test_given_columns_when_converted_back_then_only_those_fields():
    row = record_to_row(INVOICES, RECORD, SYNCED)

    assert row_to_record(INVOICES, row, ["name"]) == {"Name": "INV-0001"}
