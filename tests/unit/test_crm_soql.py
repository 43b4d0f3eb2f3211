"""SOQL building and the CRM's datetime formats (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from sync.crm import soql


def test_given_fields_when_select_then_query_with_where_order_and_limit() -> None:
    query = soql.select(
        "Apttus_Config2__Order__c",
        ["Id", "Name", "Apttus_Config2__SoldToAccountId__r.Name"],
        where=soql.id_in(["a01000000000001AAA"]),
        order_by=["SystemModstamp", "Id desc"],
        limit=10,
    )

    assert query == (
        "SELECT Id, Name, Apttus_Config2__SoldToAccountId__r.Name FROM Apttus_Config2__Order__c"
        " WHERE Id IN ('a01000000000001AAA') ORDER BY SystemModstamp, Id DESC LIMIT 10"
    )


@pytest.mark.parametrize(
    "bad", ["Name, (SELECT Id FROM Contacts)", "Id FROM x--", "1Name", "Na me", "Name_"]
)
def test_given_injected_identifier_when_select_then_value_error(bad: str) -> None:
    with pytest.raises(ValueError, match="API name"):
        soql.select("Account", [bad])


def test_given_quote_in_value_when_filtering_then_format_soql_escapes_it() -> None:
    assert soql.id_in(["a'b"], field="Name") == "Name IN ('a\\'b')"


def test_given_window_when_built_then_lower_rounds_down_and_upper_rounds_up() -> None:
    since = datetime(2026, 11, 22, 10, 0, 0, 999000, tzinfo=UTC)
    until = datetime(2026, 11, 22, 12, 30, 5, 1000, tzinfo=timezone(timedelta(hours=2)))

    condition = soql.modstamp_window(since, until)

    assert condition == (
        "SystemModstamp > 2026-11-22T10:00:00Z AND SystemModstamp <= 2026-11-22T10:30:06Z"
    )


def test_given_no_lower_bound_when_window_then_only_upper_condition() -> None:
    until = datetime(2026, 11, 22, 10, tzinfo=UTC)

    assert soql.modstamp_window(None, until) == "SystemModstamp <= 2026-11-22T10:00:00Z"


def test_given_naive_datetime_when_formatting_then_value_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        soql.soql_datetime(datetime(2026, 11, 22))


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-22T10:00:00.000+0000",
        "2026-11-22T10:00:00Z",
        "2026-11-22T11:00:00.000+01:00",
        "2026-11-22T05:00:00-0500",
    ],
)
def test_given_crm_datetime_when_parsed_then_aware_utc(text: str) -> None:
    assert soql.parse_datetime(text) == datetime(2026, 11, 22, 10, tzinfo=UTC)


def test_given_datetime_without_offset_when_parsed_then_value_error() -> None:
    with pytest.raises(ValueError, match="offset"):
        soql.parse_datetime("2026-11-22T10:00:00")


def test_given_aware_datetime_when_formatted_then_crm_json_format_round_trips() -> None:
    value = datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC)

    text = soql.format_datetime(value)

    assert text == "2026-11-22T10:00:00.123+0000"
    assert soql.parse_datetime(text) == value.replace(microsecond=123000)


def test_given_conditions_when_anded_then_parenthesised_and_empty_ones_skipped() -> None:
    assert soql.and_("A = 1", None, "B = 2 OR C = 3") == "(A = 1) AND (B = 2 OR C = 3)"
    assert soql.and_("A = 1", "") == "A = 1"
    assert soql.and_() is None


def test_given_count_when_built_then_count_query() -> None:
    assert soql.count("Account", where="IsDeleted = false") == (
        "SELECT COUNT() FROM Account WHERE IsDeleted = false"
    )


def test_given_empty_in_list_when_building_then_value_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        soql.id_in([])
