"""Field values of the sandbox CRM (JSON <-> SQLite), Ids, and the SQLite tables."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from sync.sandbox.schema import FieldDef, load_schema
from sync.sandbox.tables import column_type, create_index_sql, create_table_sql
from sync.sandbox.values import (
    FieldValueError,
    format_datetime,
    id_suffix,
    normalize_id,
    parse_datetime,
    parse_stored_datetime,
    row_converter,
    soql_value_from_sqlite,
    sqlite_value_from_json,
)

SCHEMA = load_schema()
ACCOUNT = SCHEMA.objects["account"]
INVOICE = SCHEMA.objects["apttus_billing__invoice__c"]
PAYMENT = SCHEMA.objects["apttus_billing__paymentmethod__c"]
ROLE = SCHEMA.objects["accountcontactrole"]

NAME = ACCOUNT.fields["name"]
EMAIL = ACCOUNT.fields["billing_email__c"]
CITY = ACCOUNT.fields["billingcity"]
AMOUNT = INVOICE.fields["apttus_billing__totalinvoiceamount__c"]
INVOICE_DATE = INVOICE.fields["apttus_billing__invoicedate__c"]
DUE_DATE = INVOICE.fields["apttus_billing__duedate__c"]
HAS_ATTACHMENT = INVOICE.fields["has_attachment__c"]
BILL_TO = INVOICE.fields["apttus_billing__billtoaccountid__c"]
STATUS = INVOICE.fields["apttus_billing__status__c"]
MONTH = PAYMENT.fields["apttus_billing__cardexpirationmonth__c"]
QUANTITY = SCHEMA.objects["apttus_billing__invoicelineitem__c"].fields[
    "apttus_billing__quantity__c"
]
ROLE_NAME = ROLE.fields["role"]
IS_PRIMARY = ROLE.fields["isprimary"]

ACCOUNT_ID = "001000000000001" + id_suffix("001000000000001")


# --- Ids ------------------------------------------------------------------------------


def test_given_known_ids_when_suffix_computed_then_matches_salesforce_checksum():
    # Examples whose 18-character forms Salesforce shows.
    assert id_suffix("001A0000006Vm9r") == "IAC"
    assert id_suffix("0010000000aaaaa") == "AAA"
    assert id_suffix("001AAAAAaaaaaaa") == "YHA"


def test_given_15_character_id_when_normalized_then_suffix_appended():
    assert normalize_id("001A0000006Vm9r") == "001A0000006Vm9rIAC"


def test_given_18_character_id_in_any_case_when_normalized_then_canonical_case():
    assert normalize_id("001A0000006Vm9rIAC") == "001A0000006Vm9rIAC"
    assert normalize_id("001a0000006vm9riac") == "001A0000006Vm9rIAC"
    assert normalize_id("001A0000006VM9RIAC") == "001A0000006Vm9rIAC"


@pytest.mark.parametrize(
    "value",
    ["", "abc", "001A0000006Vm9", "001A0000006Vm9rI", "001A0000006Vm9r-AC", "001A0000006Vm9rIA9"],
)
def test_given_not_an_id_when_normalized_then_none(value):
    assert normalize_id(value) is None


def test_given_suffix_flagging_a_digit_when_normalized_then_none():
    # "B" sets the second bit of the first chunk, whose second character is the digit 0.
    assert normalize_id("001000000000001BAA") is None


# --- datetimes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("2026-11-22T10:00:00.000+0000", "2026-11-22T10:00:00.000+0000"),
        ("2026-11-22T10:00:00Z", "2026-11-22T10:00:00.000+0000"),
        ("2026-11-22T10:00:00.5Z", "2026-11-22T10:00:00.500+0000"),
        ("2026-11-22T10:00:00.123456789Z", "2026-11-22T10:00:00.123+0000"),
        ("2026-11-22T12:00:00+02:00", "2026-11-22T10:00:00.000+0000"),
        ("2026-11-22T05:30:00-04:30", "2026-11-22T10:00:00.000+0000"),
        ("2026-11-22T01:00:00.000-1000", "2026-11-22T11:00:00.000+0000"),
        ("2026-11-22T10:00:00", "2026-11-22T10:00:00.000+0000"),
        ("2026-11-22T10:00Z", "2026-11-22T10:00:00.000+0000"),
        ("2026-11-22 10:00:00Z", "2026-11-22T10:00:00.000+0000"),
        ("2026-11-22", "2026-11-22T00:00:00.000+0000"),
        ("2026-12-31T23:30:00-01:00", "2027-01-01T00:30:00.000+0000"),
    ],
)
def test_given_datetime_forms_when_written_then_stored_as_utc_millis(text, stored):
    assert sqlite_value_from_json(INVOICE_DATE, text) == stored


def test_given_aware_datetime_when_formatted_then_salesforce_json_format():
    value = datetime(2026, 11, 22, 12, 0, 0, 123999, tzinfo=timezone(timedelta(hours=2)))
    assert format_datetime(value) == "2026-11-22T10:00:00.123+0000"
    assert parse_stored_datetime("2026-11-22T10:00:00.123+0000") == datetime(
        2026, 11, 22, 10, 0, 0, 123000, tzinfo=UTC
    )


def test_given_naive_datetime_when_formatted_then_value_error():
    with pytest.raises(ValueError, match="naive"):
        format_datetime(datetime(2026, 11, 22))


@pytest.mark.parametrize(
    "text",
    [
        "yesterday",
        "2026-13-01T00:00:00Z",
        "2026-11-22T10:00:00+25:00",
        "1699-12-31T00:00:00Z",
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:00:00+14:00",
    ],
)
def test_given_bad_datetime_when_parsed_then_value_error(text):
    with pytest.raises(ValueError):
        parse_datetime(text)


# --- JSON -> storage ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "stored"),
    [
        (NAME, "Acme", "Acme"),
        (NAME, "", None),
        (NAME, None, None),
        (NAME, 42, "42"),
        (NAME, 1.5, "1.5"),
        (NAME, True, "true"),
        (EMAIL, "ap@example.com", "ap@example.com"),
        (STATUS, "Approved", "Approved"),
        (STATUS, "approved", "Approved"),
        (BILL_TO, ACCOUNT_ID, ACCOUNT_ID),
        (BILL_TO, ACCOUNT_ID[:15], ACCOUNT_ID),
        (BILL_TO, ACCOUNT_ID.lower(), ACCOUNT_ID),
        (BILL_TO, "", None),
        (HAS_ATTACHMENT, True, 1),
        (HAS_ATTACHMENT, False, 0),
        (HAS_ATTACHMENT, None, 0),
        (HAS_ATTACHMENT, "TRUE", 1),
        (HAS_ATTACHMENT, "false", 0),
        (AMOUNT, 12, 12.0),
        (AMOUNT, 12.345, 12.35),
        (AMOUNT, -0.004, -0.0),
        (AMOUNT, "99.5", 99.5),
        (AMOUNT, None, None),
        (QUANTITY, 1.23456, 1.2346),
        (MONTH, 12, 12),
        (MONTH, 7.0, 7),
        (MONTH, "3", 3),
        (DUE_DATE, "2026-11-22", "2026-11-22"),
        (DUE_DATE, None, None),
    ],
)
def test_given_valid_json_value_when_converted_then_storage_encoding(field, value, stored):
    result = sqlite_value_from_json(field, value)
    assert result == stored
    assert type(result) is type(stored)


@pytest.mark.parametrize(
    ("field", "value", "code", "message"),
    [
        (NAME, "x" * 256, "STRING_TOO_LONG", "Name: data value too large: "),
        (CITY, "x" * 41, "STRING_TOO_LONG", "(max length=40)"),
        (NAME, {"a": 1}, "JSON_PARSER_ERROR", "from START_OBJECT value"),
        (NAME, [1], "JSON_PARSER_ERROR", "from START_ARRAY value"),
        (NAME, float("nan"), "JSON_PARSER_ERROR", "instance of string"),
        (EMAIL, "not-an-email", "INVALID_EMAIL_ADDRESS", "invalid email address: not-an-email"),
        (
            STATUS,
            "Paid-ish",
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            "bad value for restricted picklist field: Paid-ish",
        ),
        (BILL_TO, "abc", "MALFORMED_ID", "id value of incorrect type: abc"),
        (BILL_TO, 5, "JSON_PARSER_ERROR", "instance of id"),
        (HAS_ATTACHMENT, "yes", "JSON_PARSER_ERROR", "instance of boolean from VALUE_STRING"),
        (HAS_ATTACHMENT, 1, "JSON_PARSER_ERROR", "instance of boolean from VALUE_NUMBER_INT"),
        (AMOUNT, "abc", "JSON_PARSER_ERROR", "instance of double from VALUE_STRING value abc"),
        (AMOUNT, True, "JSON_PARSER_ERROR", "instance of double from VALUE_TRUE"),
        (AMOUNT, float("inf"), "JSON_PARSER_ERROR", "instance of double"),
        (AMOUNT, 1e16, "NUMBER_OUTSIDE_VALID_RANGE", "value outside of valid range"),
        (MONTH, 1.5, "JSON_PARSER_ERROR", "instance of int"),
        (MONTH, 100, "NUMBER_OUTSIDE_VALID_RANGE", "value outside of valid range"),
        (DUE_DATE, "2026-02-30", "JSON_PARSER_ERROR", "instance of date"),
        (DUE_DATE, "22/11/2026", "JSON_PARSER_ERROR", "instance of date"),
        (DUE_DATE, "2026-11-22T10:00:00Z", "JSON_PARSER_ERROR", "instance of date"),
        (DUE_DATE, 20261122, "JSON_PARSER_ERROR", "instance of date"),
        (INVOICE_DATE, "soon", "JSON_PARSER_ERROR", "instance of datetime"),
        (INVOICE_DATE, "4001-01-01T00:00:00Z", "JSON_PARSER_ERROR", "instance of datetime"),
        (INVOICE_DATE, 1, "JSON_PARSER_ERROR", "instance of datetime"),
    ],
)
def test_given_bad_json_value_when_converted_then_field_value_error(field, value, code, message):
    with pytest.raises(FieldValueError) as caught:
        sqlite_value_from_json(field, value)
    assert caught.value.field_name == field.name
    assert caught.value.status_code == code
    assert message in caught.value.message
    assert str(caught.value) == caught.value.message


@pytest.mark.parametrize("value", [10**18, -(10**19), 10**30, 1e300])
def test_given_int_beyond_18_digits_when_field_has_no_precision_then_out_of_range(value):
    unbounded = FieldDef("Count__c", "int", "Count")

    with pytest.raises(FieldValueError) as failure:
        sqlite_value_from_json(unbounded, value)

    assert failure.value.status_code == "NUMBER_OUTSIDE_VALID_RANGE"
    assert sqlite_value_from_json(unbounded, 10**18 - 1) == 10**18 - 1


def test_given_field_value_error_without_code_when_raised_then_invalid_type_on_field():
    error = FieldValueError("Name", "bad")
    assert error.status_code == "INVALID_TYPE_ON_FIELD_IN_RECORD"


# --- storage -> JSON ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "stored", "value"),
    [
        (HAS_ATTACHMENT, 1, True),
        (HAS_ATTACHMENT, 0, False),
        (HAS_ATTACHMENT, None, False),
        (AMOUNT, 12, 12.0),
        (AMOUNT, 12.5, 12.5),
        (AMOUNT, None, None),
        (MONTH, 7, 7),
        (MONTH, None, None),
        (NAME, "Acme", "Acme"),
        (INVOICE_DATE, "2026-11-22T10:00:00.000+0000", "2026-11-22T10:00:00.000+0000"),
        (DUE_DATE, "2026-11-22", "2026-11-22"),
    ],
)
def test_given_stored_value_when_read_then_salesforce_json_value(field, stored, value):
    result = soql_value_from_sqlite(field, stored)
    assert result == value
    assert type(result) is type(value)


def test_given_row_when_converted_then_record_with_canonical_names_and_json_types():
    fields = [INVOICE.fields["id"], INVOICE.fields["name"], AMOUNT, HAS_ATTACHMENT, INVOICE_DATE]
    convert = row_converter(fields)
    record = convert(("a0D1", "INV-1", 12, 1, "2026-11-22T10:00:00.000+0000"))
    assert record == {
        "Id": "a0D1",
        "Name": "INV-1",
        "Apttus_Billing__TotalInvoiceAmount__c": 12.0,
        "Has_Attachment__c": True,
        "Apttus_Billing__InvoiceDate__c": "2026-11-22T10:00:00.000+0000",
    }
    assert isinstance(record["Apttus_Billing__TotalInvoiceAmount__c"], float)
    assert convert(("a0D2", None, None, 0, None))["Has_Attachment__c"] is False


def test_given_text_only_row_when_converted_then_values_pass_through():
    convert = row_converter([ACCOUNT.fields["id"], NAME, CITY])
    assert convert(("001x", "Acme", None)) == {"Id": "001x", "Name": "Acme", "BillingCity": None}


def test_given_no_fields_when_converted_then_empty_record():
    assert row_converter([])(()) == {}


# --- tables ---------------------------------------------------------------------------


def test_given_every_object_when_tables_created_then_sqlite_accepts_them():
    conn = sqlite3.connect(":memory:")
    for obj in SCHEMA.objects.values():
        conn.execute(create_table_sql(obj))
        conn.execute(create_table_sql(obj))  # idempotent
        for statement in create_index_sql(obj):
            conn.execute(statement)
            conn.execute(statement)
        columns = [row[1] for row in conn.execute(f'PRAGMA table_info("{obj.name}")')]
        assert columns == obj.field_names
    conn.close()


def test_given_account_table_when_written_then_types_defaults_and_rowid_work():
    conn = sqlite3.connect(":memory:")
    conn.execute(create_table_sql(ROLE))
    conn.execute('INSERT INTO "AccountContactRole" ("Id", "Role") VALUES (?, ?)', ["02Zx", "Other"])
    row = conn.execute(
        'SELECT rowid, "IsDeleted", "IsPrimary" FROM "AccountContactRole" WHERE "Role" = ?',
        ["OTHER"],
    ).fetchone()
    assert row == (1, 0, 0)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute('INSERT INTO "AccountContactRole" ("Id") VALUES (?)', ["02Zx"])
    conn.close()


def test_given_product_table_when_created_then_boolean_default_true_is_kept():
    product = SCHEMA.objects["product2"]
    conn = sqlite3.connect(":memory:")
    conn.execute(create_table_sql(product))
    conn.execute('INSERT INTO "Product2" ("Id") VALUES (?)', ["01tx"])
    assert conn.execute('SELECT "IsActive" FROM "Product2"').fetchone() == (1,)
    conn.close()


def test_given_real_column_when_integer_stored_then_read_back_as_float():
    conn = sqlite3.connect(":memory:")
    conn.execute(create_table_sql(INVOICE))
    conn.execute(
        'INSERT INTO "Apttus_Billing__Invoice__c" ("Id", "Apttus_Billing__TotalInvoiceAmount__c") '
        "VALUES (?, ?)",
        ["a0Dx", sqlite_value_from_json(AMOUNT, 12)],
    )
    (value,) = conn.execute(
        'SELECT "Apttus_Billing__TotalInvoiceAmount__c" FROM "Apttus_Billing__Invoice__c"'
    ).fetchone()
    assert value == 12.0
    assert isinstance(value, float)
    conn.close()


def test_given_objects_when_indexes_listed_then_modstamp_external_ids_and_references():
    statements = create_index_sql(PAYMENT)
    assert statements[0].endswith('ON "Apttus_Billing__PaymentMethod__c" ("SystemModstamp", "Id")')
    indexed = {s.rsplit("(", 1)[1].rstrip(")") for s in statements[1:]}
    assert indexed == {'"Apttus_Billing__AccountId__c"', '"Billing_Sync_Key__c"'}


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        (NAME, "TEXT COLLATE NOCASE"),
        (ROLE_NAME, "TEXT COLLATE NOCASE"),
        (BILL_TO, "TEXT"),
        (INVOICE_DATE, "TEXT"),
        (DUE_DATE, "TEXT"),
        (AMOUNT, "REAL"),
        (MONTH, "INTEGER"),
        (IS_PRIMARY, "INTEGER"),
    ],
)
def test_given_field_when_column_typed_then_storage_encoding(field: FieldDef, expected: str):
    assert column_type(field) == expected


def test_given_unknown_field_type_when_column_typed_then_value_error():
    odd: Any = FieldDef("Odd__c", "blob", "Odd")
    with pytest.raises(ValueError, match="no storage"):
        column_type(odd)
