"""Bulk CSV rows become the records REST returns, and convert to the same rows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sync.bulk.choice import count_soql, threshold, use_bulk
from sync.bulk.records import record_maker
from sync.mapping.spec import ColumnType, FieldSpec, Mapping
from sync.pull.rows import RowBuilder
from sync.settings import Settings

MAPPING = Mapping(
    name="lines",
    crm_object="Line__c",
    table="invoice_lines",
    fields=(
        FieldSpec("Description__c", "description", ColumnType.TEXT),
        FieldSpec("Amount__c", "amount", ColumnType.DECIMAL, precision=18, scale=2),
        FieldSpec("Count__c", "count", ColumnType.INTEGER),
        FieldSpec("Paid__c", "paid", ColumnType.BOOLEAN),
        FieldSpec("Due__c", "due", ColumnType.DATE),
        FieldSpec("Sent__c", "sent", ColumnType.DATETIME),
    ),
)
HEADER = [
    "Id",
    "IsDeleted",
    "SystemModstamp",
    "description__c",
    "Amount__c",
    "Count__c",
    "Paid__c",
    "Due__c",
    "Sent__c",
]
SYNCED = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)


def test_given_csv_row_when_made_a_record_then_same_row_as_rest_record() -> None:
    csv_row = [
        "a0E000000000001AAA",
        "true",
        "2026-11-22T10:00:00.000Z",
        "Seats",
        "23.5",
        "3.0",
        "false",
        "2026-12-01",
        "2026-11-22T09:00:00.000Z",
    ]
    rest = {
        "Id": "a0E000000000001AAA",
        "IsDeleted": True,
        "SystemModstamp": "2026-11-22T10:00:00.000+0000",
        "Description__c": "Seats",
        "Amount__c": 23.5,
        "Count__c": 3,
        "Paid__c": False,
        "Due__c": "2026-12-01",
        "Sent__c": "2026-11-22T09:00:00.000+0000",
    }
    builder = RowBuilder(MAPPING)

    from_csv = builder.row(record_maker(MAPPING, HEADER)(csv_row), SYNCED)

    assert from_csv == builder.row(rest, SYNCED)
    assert from_csv["amount"] == Decimal("23.50")
    assert from_csv["is_deleted"] is True


def test_given_empty_values_when_made_a_record_then_null_for_every_type() -> None:
    csv_row = ["a0E000000000001AAA", "false", "2026-11-22T10:00:00.000Z", *[""] * 6]

    record = record_maker(MAPPING, HEADER)(csv_row)
    row = RowBuilder(MAPPING).row(record, SYNCED)

    assert [row[c] for c in ("description", "amount", "count", "paid", "due", "sent")] == [None] * 6


def test_given_malformed_boolean_when_converted_then_conversion_error_names_field() -> None:
    csv_row = ["a0E000000000001AAA", "false", "2026-11-22T10:00:00.000Z", "", "", "", "yes", "", ""]
    builder = RowBuilder(MAPPING)

    rows, failures = builder.convert([record_maker(MAPPING, HEADER)(csv_row)], None)

    assert rows == []
    assert failures[0][1].field == "Paid__c"


def test_given_thresholds_when_choosing_then_mapping_overrides_setting_and_zero_is_never() -> None:
    settings = Settings(bulk_threshold=10_000)
    own = Mapping(name="x", crm_object="X", table="t", fields=(), bulk_threshold=0)

    assert threshold(MAPPING, settings) == 10_000
    assert threshold(own, settings) == 0
    assert use_bulk(10_000, 10_000)
    assert not use_bulk(9_999, 10_000)
    assert not use_bulk(50_000, 0)
    assert not use_bulk(None, 10)
    assert count_soql(MAPPING) == "SELECT COUNT() FROM Line__c"
