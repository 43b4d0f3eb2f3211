"""SOQL of the sandbox CRM: parsing, resolving against the schema, running on SQLite."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from sync.sandbox.schema import Schema, load_schema
from sync.sandbox.soql import (
    CompiledQuery,
    SoqlError,
    compile_select,
    create_index_sql,
    create_table_sql,
    parse,
    row_converter,
    sqlite_value_from_json,
)
from sync.sandbox.values import id_suffix

NOW = datetime(2026, 11, 22, 15, 30, tzinfo=UTC)


def make_id(prefix: str, n: int) -> str:
    id15 = f"{prefix}{n:012d}"
    return id15 + id_suffix(id15)


def acc(n: int) -> str:
    return make_id("001", n)


def inv(n: int) -> str:
    return make_id("a0D", n)


STAMP = "2026-11-20T10:00:00.000+0000"

ACCOUNTS: list[dict[str, Any]] = [
    {"Id": acc(1), "Name": "Acme", "BillingCity": "Berlin"},
    {"Id": acc(2), "Name": "acme corp", "BillingCity": None},
    {"Id": acc(3), "Name": "Bob's BBQ", "BillingCity": "paris"},
    {"Id": acc(4), "Name": "100% Pure", "BillingCity": "Paris"},
    {"Id": acc(5), "Name": "under_score", "BillingCity": None},
    {"Id": acc(6), "Name": "underXscore", "BillingCity": "Amsterdam"},
    {"Id": acc(7), "Name": "Back\\slash", "BillingCity": "Zurich", "IsDeleted": True},
    {"Id": acc(8), "Name": 'Say "hi"\n\tbye', "BillingCity": "Oslo"},
    {"Id": acc(9), "Name": "Café", "BillingCity": "Lyon"},
]

INVOICES: list[dict[str, Any]] = [
    {
        "Id": inv(1),
        "Name": "INV-1",
        "Apttus_Billing__BillToAccountId__c": acc(1),
        "Apttus_Billing__TotalInvoiceAmount__c": 100,
        "Apttus_Billing__InvoiceDate__c": "2026-11-22T10:00:00.000+0000",
        "Apttus_Billing__DueDate__c": "2026-11-22",
        "Apttus_Billing__Status__c": "Approved",
        "Has_Attachment__c": True,
    },
    {
        "Id": inv(2),
        "Name": "INV-2",
        "Apttus_Billing__BillToAccountId__c": acc(1),
        "Apttus_Billing__TotalInvoiceAmount__c": -5.5,
        "Apttus_Billing__InvoiceDate__c": "2026-11-21T23:30:00.000+0000",
        "Apttus_Billing__DueDate__c": "2026-11-21",
        "Apttus_Billing__Status__c": "Draft",
        "Has_Attachment__c": False,
    },
    {
        "Id": inv(3),
        "Name": "INV-3",
        "Apttus_Billing__BillToAccountId__c": acc(2),
        "Apttus_Billing__TotalInvoiceAmount__c": None,
        "Apttus_Billing__InvoiceDate__c": None,
        "Apttus_Billing__DueDate__c": None,
        "Apttus_Billing__Status__c": None,
        "Has_Attachment__c": None,
    },
    {
        "Id": inv(4),
        "Name": "INV-4",
        "Apttus_Billing__BillToAccountId__c": acc(3),
        "Apttus_Billing__TotalInvoiceAmount__c": 2500.25,
        "Apttus_Billing__InvoiceDate__c": "2026-11-23T00:00:00.123+0000",
        "Apttus_Billing__DueDate__c": "2026-12-01",
        "Apttus_Billing__Status__c": "Historical",
        "Has_Attachment__c": False,
    },
]

PAYMENT_METHODS: list[dict[str, Any]] = [
    {
        "Id": make_id("a0F", 1),
        "Apttus_Billing__AccountId__c": acc(1),
        "Apttus_Billing__CardExpirationYear__c": 2027,
    },
    {
        "Id": make_id("a0F", 2),
        "Apttus_Billing__AccountId__c": acc(1),
        "Apttus_Billing__CardExpirationYear__c": 2030,
    },
]


@pytest.fixture(scope="module")
def schema() -> Schema:
    return load_schema()


def _insert(conn: sqlite3.Connection, schema: Schema, obj_name: str, record: dict) -> None:
    obj = schema.get(obj_name)
    assert obj is not None
    values = {"CreatedDate": STAMP, "LastModifiedDate": STAMP, "SystemModstamp": STAMP}
    values |= record
    fields = [obj.fields[name.lower()] for name in values]
    stored = [sqlite_value_from_json(f, values[f.name]) for f in fields]
    columns = ", ".join(f'"{f.name}"' for f in fields)
    marks = ", ".join("?" * len(fields))
    conn.execute(f'INSERT INTO "{obj.name}" ({columns}) VALUES ({marks})', stored)


@pytest.fixture(scope="module")
def db(schema: Schema) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:")
    for obj in schema.objects.values():
        conn.execute(create_table_sql(obj))
        for statement in create_index_sql(obj):
            conn.execute(statement)
    for record in ACCOUNTS:
        _insert(conn, schema, "Account", record)
    for record in INVOICES:
        _insert(conn, schema, "Apttus_Billing__Invoice__c", record)
    for record in PAYMENT_METHODS:
        _insert(conn, schema, "Apttus_Billing__PaymentMethod__c", record)
    roles = ["Other", "Billing Admin", None, "Evaluator", "billing admin"]
    for n, role in enumerate(roles, start=1):
        _insert(
            conn,
            schema,
            "AccountContactRole",
            {
                "Id": make_id("02Z", n),
                "AccountId": acc(1),
                "ContactId": make_id("003", n),
                "Role": role,
            },
        )
    yield conn
    conn.close()


def compile_text(schema: Schema, text: str, *, include_deleted: bool = False) -> CompiledQuery:
    return compile_select(parse(text), schema, include_deleted=include_deleted, now=NOW)


def run(
    db: sqlite3.Connection, schema: Schema, text: str, *, include_deleted: bool = False
) -> list[dict[str, Any]]:
    compiled = compile_text(schema, text, include_deleted=include_deleted)
    sql, params = compiled.sql()
    convert = row_converter(compiled.fields)
    return [convert(row) for row in db.execute(sql, params)]


def names(db: sqlite3.Connection, schema: Schema, where: str, **kw: Any) -> list[str]:
    rows = run(db, schema, f"SELECT Name FROM Account WHERE {where} ORDER BY Name", **kw)
    return [r["Name"] for r in rows]


def invoices(db: sqlite3.Connection, schema: Schema, where: str) -> list[str]:
    rows = run(
        db, schema, f"SELECT Name FROM Apttus_Billing__Invoice__c WHERE {where} ORDER BY Name"
    )
    return [r["Name"] for r in rows]


def count(db: sqlite3.Connection, schema: Schema, text: str, **kw: Any) -> int:
    compiled = compile_text(schema, text, **kw)
    sql, params = compiled.sql()
    return int(db.execute(sql, params).fetchone()[0])


def soql_error(schema: Schema, text: str) -> SoqlError:
    with pytest.raises(SoqlError) as caught:
        compile_text(schema, text)
    return caught.value


# --- SELECT list and FROM -------------------------------------------------------------


def test_given_any_letter_case_when_compiled_then_names_resolve_to_canonical(schema):
    compiled = compile_text(
        schema, "select billingcity, ID, name FROM account WHERE NAME = 'x' order BY id"
    )
    assert compiled.object.name == "Account"
    assert [f.name for f in compiled.fields] == ["BillingCity", "Id", "Name"]
    sql, _ = compiled.sql()
    assert sql.startswith('SELECT "BillingCity", "Id", "Name" FROM "Account" WHERE ')


def test_given_custom_object_in_lower_case_when_run_then_records_have_canonical_keys(db, schema):
    rows = run(
        db,
        schema,
        "select name, apttus_billing__totalinvoiceamount__c, has_attachment__c "
        "from apttus_billing__invoice__c where name = 'inv-1'",
    )
    assert rows == [
        {
            "Name": "INV-1",
            "Apttus_Billing__TotalInvoiceAmount__c": 100.0,
            "Has_Attachment__c": True,
        }
    ]


def test_given_count_when_run_then_one_row_counts_live_records(db, schema):
    compiled = compile_text(schema, "SELECT COUNT() FROM Account")
    assert compiled.count_only
    assert compiled.fields == []
    assert count(db, schema, "SELECT count() FROM Account") == 8
    assert count(db, schema, "SELECT COUNT() FROM Account", include_deleted=True) == 9
    assert count(db, schema, "SELECT COUNT() FROM Account WHERE BillingCity = 'paris'") == 2


def test_given_count_with_limit_and_offset_when_run_then_counts_that_window(db, schema):
    assert count(db, schema, "SELECT COUNT() FROM Account LIMIT 3") == 3
    assert count(db, schema, "SELECT COUNT() FROM Account LIMIT 5 OFFSET 6") == 2
    assert count(db, schema, "SELECT COUNT() FROM Account OFFSET 7") == 1


def test_given_count_with_select_list_when_sql_then_rows_are_selected(db, schema):
    compiled = compile_text(schema, "SELECT COUNT() FROM Account WHERE Name LIKE 'a%'")
    sql, params = compiled.sql('"Id"')
    assert sorted(r[0] for r in db.execute(sql, params)) == [acc(1), acc(2)]


def test_given_unknown_object_when_compiled_then_invalid_type(schema):
    error = soql_error(schema, "SELECT Id FROM Foo")
    assert error.error_code == "INVALID_TYPE"
    assert "sObject type 'Foo' is not supported." in error.message
    assert "ERROR at Row:1:Column:16" in error.message


@pytest.mark.parametrize(
    "text",
    [
        "SELECT Id, Foo FROM Account",
        "SELECT Id FROM Account WHERE Foo = 'x'",
        "SELECT Id FROM Account ORDER BY Foo",
        "SELECT Id FROM Account WHERE Foo IN ('x')",
    ],
)
def test_given_unknown_field_when_compiled_then_invalid_field(schema, text):
    error = soql_error(schema, text)
    assert error.error_code == "INVALID_FIELD"
    assert error.detail.startswith("No such column 'Foo' on entity 'Account'.")


def test_given_duplicate_field_in_other_case_when_compiled_then_malformed(schema):
    error = soql_error(schema, "SELECT Id, Name, NAME FROM Account")
    assert error.error_code == "MALFORMED_QUERY"
    assert error.detail == "duplicate field selected: NAME"


def test_given_error_position_when_reported_then_message_shows_line_caret_row_and_column():
    with pytest.raises(SoqlError) as caught:
        parse("SELECT Id\nFROM Account\nWHERE Name = 'a' OR Name = 'b' AND Id = null")
    message = caught.value.message
    assert message == (
        "\nWHERE Name = 'a' OR Name = 'b' AND Id = null\n"
        + " " * 31
        + "^\nERROR at Row:3:Column:32\nunexpected token: 'AND'"
    )
    assert str(caught.value).startswith("MALFORMED_QUERY: ")


# --- syntax errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("SELECT FROM Account", "'FROM'"),
        ("SELECT Id, FROM Account", "'FROM'"),
        ("SELECT Id Account", "'Account'"),
        ("SELECT Id FROM", "<EOF>"),
        ("SELECT Id FROM Account WHERE", "<EOF>"),
        ("SELECT Id FROM Account garbage", "'garbage'"),
        ("SELECT Id FROM Account WHERE Name = 'a' garbage", "'garbage'"),
        ("SELECT Id FROM Account LIMIT 5 ORDER BY Name", "'ORDER'"),
        ("SELECT Id FROM Account OFFSET 5 LIMIT 2", "'LIMIT'"),
        ("SELECT Id FROM Account ORDER BY Name WHERE Name = 'a'", "'WHERE'"),
        ("SELECT Id FROM Account LIMIT -1", "'-1'"),
        ("SELECT Id FROM Account LIMIT 1.5", "'1.5'"),
        ("SELECT Id FROM Account LIMIT x", "'x'"),
        ("SELECT Id FROM Account ORDER BY", "<EOF>"),
        ("SELECT Id FROM Account ORDER Name", "'Name'"),
        ("SELECT Id FROM Account ORDER BY Name NULLS", "<EOF>"),
        ("SELECT Id FROM Account ORDER BY Name ASC DESC", "'DESC'"),
        ("SELECT Id FROM Account WHERE Name = 'a' AND Name = 'b' OR Name = 'c'", "'OR'"),
        ("SELECT Id FROM Account WHERE Name = 'a' OR Name = 'b' AND Name = 'c'", "'AND'"),
        ("SELECT Id FROM Account WHERE Name = 'a' AND NOT Name = 'b'", "'NOT'"),
        ("SELECT Id FROM Account WHERE NOT NOT Name = 'b'", "'NOT'"),
        ("SELECT Id FROM Account WHERE (Name = 'a'", "<EOF>"),
        ("SELECT Id FROM Account WHERE Name = 'a')", "')'"),
        ("SELECT Id FROM Account WHERE Name", "<EOF>"),
        ("SELECT Id FROM Account WHERE Name = ", "<EOF>"),
        ("SELECT Id FROM Account WHERE Name IN 'a'", "''a''"),
        ("SELECT Id FROM Account WHERE Name IN ()", "')'"),
        ("SELECT Id FROM Account WHERE Name NOT LIKE 'a'", "'NOT'"),
        ("SELECT Id FROM Account WHERE Name = :name", "':'"),
        ('SELECT Id FROM Account WHERE Name = "a"', "'\"a\"'"),
        ("SELECT Id FROM Account WHERE Name = Acme", "'Acme'"),
        ("SELECT Id FROM Account WHERE Name == 'a'", "'='"),
        ("SELECT Id FROM Account WHERE CreatedDate > LAST_N_DAYS", "<EOF>"),
        ("SELECT Id FROM Account WHERE CreatedDate > LAST_N_DAYS:x", "'x'"),
        ("SELECT Id FROM Account WHERE CreatedDate > 2026-11-22T10:00:00", "'2026-11-22T10:00:00'"),
        ("SELECT Id FROM Account GROUP BY Name", "'GROUP'"),
        ("SELECT Id FROM Account a", "'a'"),
        ("SELECT Id FROM Account FOR UPDATE", "'FOR'"),
        ("DELETE FROM Account", "'DELETE'"),
        ("", "<EOF>"),
    ],
)
def test_given_bad_syntax_when_parsed_then_malformed_query_names_the_token(text, token):
    with pytest.raises(SoqlError) as caught:
        parse(text)
    assert caught.value.error_code == "MALFORMED_QUERY"
    assert caught.value.detail == f"unexpected token: {token}"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("SELECT Id FROM Contact WHERE Account.Name = 'a'", "relationship fields"),
        ("SELECT Id FROM Contact ORDER BY Account.Name", "relationship fields"),
        ("SELECT Id, (SELECT Id FROM Contacts) FROM Account", "subqueries are not supported"),
        ("SELECT COUNT(Id) FROM Account", "aggregate and function calls are not supported"),
        ("SELECT MAX(Name) FROM Account", "aggregate and function calls"),
        ("SELECT toLabel(Name) FROM Account", "aggregate and function calls"),
        ("SELECT TYPEOF What WHEN Account THEN Name END FROM Event", "TYPEOF is not supported"),
        (
            "SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact)",
            "semi-join subqueries are not supported",
        ),
        ("SELECT Id FROM Account WHERE Name INCLUDES ('a')", "INCLUDES and EXCLUDES"),
        ("SELECT COUNT(), Id FROM Account", "COUNT() cannot be selected together with fields"),
        ("SELECT Id, COUNT() FROM Account", "COUNT() cannot be selected together with fields"),
        ("SELECT Id FROM Account WHERE Name = 'abc", "unterminated string"),
        ("SELECT Id FROM Account WHERE Name = 'a\\xb'", "Illegal character sequence '\\x'"),
        ("SELECT Id FROM Account WHERE Name = 'a\\u12'", "Illegal character sequence '\\u'"),
        ("SELECT Id FROM Account WHERE Name = 'a\\", "Illegal character sequence '\\'"),
        ("SELECT Id FROM Account WHERE CreatedDate > LAST_N_DAYS:100000", "at most 10000"),
    ],
)
def test_given_unsupported_or_bad_literal_when_parsed_then_malformed_query(text, fragment):
    with pytest.raises(SoqlError) as caught:
        parse(text)
    assert caught.value.error_code == "MALFORMED_QUERY"
    assert fragment in caught.value.detail


def test_given_keywords_in_mixed_case_when_parsed_then_accepted(db, schema):
    rows = run(
        db,
        schema,
        "sElEcT Name fRoM Account wHeRe (BillingCity = 'Paris' oR BillingCity = 'Berlin') "
        "AnD (nOt Name lIkE 'b%') OrDeR bY Name DeSc NuLlS lAsT lImIt 5 oFfSeT 0",
    )
    assert [r["Name"] for r in rows] == ["Acme", "100% Pure"]


def test_given_whitespace_and_newlines_when_parsed_then_accepted(db, schema):
    rows = run(db, schema, "\n  SELECT\tName\r\n  FROM  Account\n WHERE Name='Acme'  \n")
    assert rows == [{"Name": "Acme"}]


# --- comparison operators -------------------------------------------------------------


def test_given_equals_on_text_when_run_then_case_is_ignored(db, schema):
    assert names(db, schema, "Name = 'ACME'") == ["Acme"]
    assert names(db, schema, "BillingCity = 'PARIS'") == ["100% Pure", "Bob's BBQ"]


def test_given_not_equals_when_run_then_nulls_match_too(db, schema):
    expected = ["acme corp", "Acme", "Café", "underXscore", "under_score"]
    result = names(db, schema, "BillingCity != 'Paris' AND BillingCity != 'Oslo'")
    assert sorted(result) == sorted(expected)
    assert names(db, schema, "BillingCity <> 'Paris' AND BillingCity <> 'Oslo'") == result


def test_given_null_comparisons_when_run_then_is_null_and_is_not_null(db, schema):
    assert names(db, schema, "BillingCity = null") == ["acme corp", "under_score"]
    assert len(names(db, schema, "BillingCity != NULL")) == 6


def test_given_empty_string_when_compared_then_it_means_null(db, schema):
    assert names(db, schema, "BillingCity = ''") == ["acme corp", "under_score"]
    assert len(names(db, schema, "BillingCity != ''")) == 6


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("Apttus_Billing__TotalInvoiceAmount__c = 100", ["INV-1"]),
        ("Apttus_Billing__TotalInvoiceAmount__c = 100.0", ["INV-1"]),
        ("Apttus_Billing__TotalInvoiceAmount__c = -5.5", ["INV-2"]),
        ("Apttus_Billing__TotalInvoiceAmount__c < 0", ["INV-2"]),
        ("Apttus_Billing__TotalInvoiceAmount__c <= 100", ["INV-1", "INV-2"]),
        ("Apttus_Billing__TotalInvoiceAmount__c > 100", ["INV-4"]),
        ("Apttus_Billing__TotalInvoiceAmount__c >= 100", ["INV-1", "INV-4"]),
        ("Apttus_Billing__TotalInvoiceAmount__c > -5.50", ["INV-1", "INV-4"]),
        ("Apttus_Billing__TotalInvoiceAmount__c != 100", ["INV-2", "INV-3", "INV-4"]),
        ("Apttus_Billing__TotalInvoiceAmount__c = null", ["INV-3"]),
        ("Apttus_Billing__TotalInvoiceAmount__c IN (100, 2500.25)", ["INV-1", "INV-4"]),
        ("Apttus_Billing__TotalInvoiceAmount__c NOT IN (100, 2500.25)", ["INV-2", "INV-3"]),
        ("Apttus_Billing__TotalInvoiceAmount__c > +99.5", ["INV-1", "INV-4"]),
        ("Apttus_Billing__TotalInvoiceAmount__c > .5", ["INV-1", "INV-4"]),
    ],
)
def test_given_number_comparison_when_run_then_matches_salesforce(db, schema, where, expected):
    assert invoices(db, schema, where) == expected


def test_given_int_field_when_compared_then_integers_and_decimals_work(db, schema):
    text = (
        "SELECT Apttus_Billing__CardExpirationYear__c FROM Apttus_Billing__PaymentMethod__c "
        "WHERE Apttus_Billing__CardExpirationYear__c > {} ORDER BY Id"
    )
    assert run(db, schema, text.format("2027.5")) == [
        {"Apttus_Billing__CardExpirationYear__c": 2030}
    ]
    assert len(run(db, schema, text.format("2026"))) == 2


def test_given_boolean_comparisons_when_run_then_null_means_false(db, schema):
    assert invoices(db, schema, "Has_Attachment__c = true") == ["INV-1"]
    assert invoices(db, schema, "Has_Attachment__c = FALSE") == ["INV-2", "INV-3", "INV-4"]
    assert invoices(db, schema, "Has_Attachment__c = null") == ["INV-2", "INV-3", "INV-4"]
    assert invoices(db, schema, "Has_Attachment__c != null") == ["INV-1"]
    assert invoices(db, schema, "Has_Attachment__c != false") == ["INV-1"]


def test_given_in_and_not_in_when_run_then_not_in_keeps_nulls(db, schema):
    assert names(db, schema, "BillingCity IN ('paris', 'BERLIN')") == [
        "100% Pure",
        "Acme",
        "Bob's BBQ",
    ]
    assert sorted(names(db, schema, "BillingCity NOT IN ('Paris', 'Berlin', 'Oslo')")) == sorted(
        ["acme corp", "Café", "underXscore", "under_score"]
    )


def test_given_null_inside_in_lists_when_run_then_null_is_a_member(db, schema):
    assert names(db, schema, "BillingCity IN ('Berlin', null)") == [
        "Acme",
        "acme corp",
        "under_score",
    ]
    assert names(db, schema, "BillingCity IN (null)") == ["acme corp", "under_score"]
    not_in = names(db, schema, "BillingCity NOT IN ('Berlin', null, 'Paris', 'Oslo')")
    assert sorted(not_in) == ["Café", "underXscore"]
    assert len(names(db, schema, "BillingCity NOT IN (null)")) == 6


def test_given_in_with_duplicates_when_run_then_each_record_once(db, schema):
    assert names(db, schema, "Name IN ('Acme', 'acme', 'ACME')") == ["Acme"]


# --- LIKE and string escapes ----------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("'acme%'", ["acme corp", "Acme"]),
        ("'%CORP'", ["acme corp"]),
        ("'under_score'", ["underXscore", "under_score"]),
        ("'under\\_score'", ["under_score"]),
        ("'100\\%%'", ["100% Pure"]),
        ("'100%'", ["100% Pure"]),
        ("'%\\%%'", ["100% Pure"]),
        ("'Bob\\'s%'", ["Bob's BBQ"]),
        ("'%\\\"hi\\\"%'", ['Say "hi"\n\tbye']),
        ("'%\\n\\tbye'", ['Say "hi"\n\tbye']),
        ("'Caf\\u00e9'", ["Café"]),
        ("'_'", []),
        ("'%'", ["100% Pure", "acme corp", "Acme", "Bob's BBQ", "Café", 'Say "hi"\n\tbye']),
    ],
)
def test_given_like_when_run_then_wildcards_escapes_and_case_work(db, schema, pattern, expected):
    result = names(db, schema, f"Name LIKE {pattern}")
    if pattern == "'%'":
        result = [n for n in result if "score" not in n]
    assert sorted(result) == sorted(expected)


def test_given_backslash_in_like_when_run_then_matches_literal_backslash(db, schema):
    assert names(db, schema, "Name LIKE 'Back\\\\%'", include_deleted=True) == ["Back\\slash"]
    assert names(db, schema, "Name = 'Back\\\\slash'", include_deleted=True) == ["Back\\slash"]


def test_given_not_like_via_not_when_run_then_nulls_match(db, schema):
    assert sorted(names(db, schema, "NOT BillingCity LIKE '%r%'")) == sorted(
        ["acme corp", "under_score", 'Say "hi"\n\tbye', "Café"]
    )


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("'Bob\\'s BBQ'", "Bob's BBQ"),
        ("'Say \\\"hi\\\"\\n\\tbye'", 'Say "hi"\n\tbye'),
        ("'Say \\\"hi\\\"\\N\\Tbye'", 'Say "hi"\n\tbye'),
        ("'a\\r\\b\\f\\\\'", "a\r\b\f\\"),
        ("'\\u0041\\u00E9'", "Aé"),
    ],
)
def test_given_string_escapes_when_parsed_then_value_is_unescaped(literal, value):
    query = parse(f"SELECT Id FROM Account WHERE Name = {literal}")
    assert query.where is not None
    assert query.where.value.value == value  # type: ignore[union-attr]


def test_given_like_escape_outside_like_when_compiled_then_malformed(schema):
    error = soql_error(schema, "SELECT Id FROM Account WHERE Name = '100\\%'")
    assert error.error_code == "MALFORMED_QUERY"
    assert "LIKE expressions only" in error.detail


def test_given_like_on_non_text_field_when_compiled_then_invalid_field(schema):
    error = soql_error(
        schema,
        "SELECT Id FROM Apttus_Billing__Invoice__c WHERE Apttus_Billing__DueDate__c LIKE '2026%'",
    )
    assert error.error_code == "INVALID_FIELD"
    assert "LIKE applies to text fields only" in error.detail


def test_given_like_with_non_string_when_compiled_then_invalid_field(schema):
    error = soql_error(schema, "SELECT Id FROM Account WHERE Name LIKE 5")
    assert error.error_code == "INVALID_FIELD"


# --- dates and datetimes --------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("Apttus_Billing__DueDate__c = 2026-11-22", ["INV-1"]),
        ("Apttus_Billing__DueDate__c > 2026-11-21", ["INV-1", "INV-4"]),
        ("Apttus_Billing__DueDate__c <= 2026-11-22", ["INV-1", "INV-2"]),
        ("Apttus_Billing__DueDate__c != 2026-11-22", ["INV-2", "INV-3", "INV-4"]),
        ("Apttus_Billing__DueDate__c IN (2026-11-21, 2026-12-01)", ["INV-2", "INV-4"]),
        ("Apttus_Billing__InvoiceDate__c = 2026-11-22T10:00:00Z", ["INV-1"]),
        ("Apttus_Billing__InvoiceDate__c = 2026-11-22T10:00:00.000Z", ["INV-1"]),
        ("Apttus_Billing__InvoiceDate__c = 2026-11-22T12:00:00+02:00", ["INV-1"]),
        ("Apttus_Billing__InvoiceDate__c = 2026-11-22T05:00:00-05:00", ["INV-1"]),
        ("Apttus_Billing__InvoiceDate__c > 2026-11-22T00:00:00+00:00", ["INV-1", "INV-4"]),
        ("Apttus_Billing__InvoiceDate__c >= 2026-11-23T00:00:00.123Z", ["INV-4"]),
        ("Apttus_Billing__InvoiceDate__c > 2026-11-23T00:00:00.12Z", ["INV-4"]),
        ("Apttus_Billing__InvoiceDate__c > 2026-11-23T00:00:00.123Z", []),
        # 23:30 UTC on the 21st is 00:30 on the 22nd at +01:00.
        ("Apttus_Billing__InvoiceDate__c < 2026-11-22T00:30:00+01:00", []),
        ("Apttus_Billing__InvoiceDate__c <= 2026-11-22T00:30:00+01:00", ["INV-2"]),
        ("Apttus_Billing__InvoiceDate__c = null", ["INV-3"]),
        ("Apttus_Billing__InvoiceDate__c != null", ["INV-1", "INV-2", "INV-4"]),
    ],
)
def test_given_date_and_datetime_literals_when_run_then_compared_in_utc(
    db, schema, where, expected
):
    assert invoices(db, schema, where) == expected


def test_given_datetime_with_offset_when_compiled_then_parameter_is_utc_storage_format(schema):
    compiled = compile_text(
        schema,
        "SELECT Id FROM Account WHERE SystemModstamp > 2026-11-22T10:00:00.5+05:30",
    )
    assert compiled.where_params == ["2026-11-22T04:30:00.500+0000"]


@pytest.mark.parametrize(
    ("where", "field", "word"),
    [
        ("Apttus_Billing__DueDate__c = '2026-11-22'", "Apttus_Billing__DueDate__c", "date"),
        ("Apttus_Billing__DueDate__c = 2026-11-22T10:00:00Z", "Apttus_Billing__DueDate__c", "date"),
        ("Apttus_Billing__DueDate__c = 20261122", "Apttus_Billing__DueDate__c", "date"),
        (
            "Apttus_Billing__InvoiceDate__c = '2026-11-22T10:00:00Z'",
            "Apttus_Billing__InvoiceDate__c",
            "dateTime",
        ),
        (
            "Apttus_Billing__InvoiceDate__c > 2026-11-22",
            "Apttus_Billing__InvoiceDate__c",
            "dateTime",
        ),
        (
            "Apttus_Billing__InvoiceDate__c IN (2026-11-22T10:00:00Z, '2026-11-22')",
            "Apttus_Billing__InvoiceDate__c",
            "dateTime",
        ),
    ],
)
def test_given_quoted_or_wrong_kind_of_date_when_compiled_then_invalid_field(
    schema, where, field, word
):
    error = soql_error(schema, f"SELECT Id FROM Apttus_Billing__Invoice__c WHERE {where}")
    assert error.error_code == "INVALID_FIELD"
    assert error.detail == (
        f"value of filter criterion for field '{field}' must be of type {word} "
        "and should not be enclosed in quotes"
    )


@pytest.mark.parametrize(
    "where",
    [
        "Apttus_Billing__DueDate__c = 2026-02-30",
        "Apttus_Billing__DueDate__c = 1600-01-01",
        "Apttus_Billing__InvoiceDate__c = 2026-11-22T25:00:00Z",
        "Apttus_Billing__InvoiceDate__c = 2026-11-22T10:00:00+24:00",
    ],
)
def test_given_impossible_date_when_compiled_then_malformed(schema, where):
    error = soql_error(schema, f"SELECT Id FROM Apttus_Billing__Invoice__c WHERE {where}")
    assert error.error_code == "MALFORMED_QUERY"
    assert error.detail.startswith("invalid date")


@pytest.mark.parametrize(
    ("where", "expected"),
    # NOW is 2026-11-22 15:30 UTC.
    [
        ("Apttus_Billing__DueDate__c = TODAY", ["INV-1"]),
        ("Apttus_Billing__DueDate__c = YESTERDAY", ["INV-2"]),
        ("Apttus_Billing__DueDate__c < TODAY", ["INV-2"]),
        ("Apttus_Billing__DueDate__c <= TODAY", ["INV-1", "INV-2"]),
        ("Apttus_Billing__DueDate__c > TODAY", ["INV-4"]),
        ("Apttus_Billing__DueDate__c >= TODAY", ["INV-1", "INV-4"]),
        ("Apttus_Billing__DueDate__c != TODAY", ["INV-2", "INV-3", "INV-4"]),
        ("Apttus_Billing__DueDate__c IN (TODAY, YESTERDAY)", ["INV-1", "INV-2"]),
        ("Apttus_Billing__DueDate__c = LAST_N_DAYS:1", ["INV-1", "INV-2"]),
        ("Apttus_Billing__DueDate__c = NEXT_N_DAYS:9", ["INV-4"]),
        ("Apttus_Billing__DueDate__c = NEXT_N_DAYS:8", []),
        ("Apttus_Billing__DueDate__c = N_DAYS_AGO:1", ["INV-2"]),
        ("Apttus_Billing__InvoiceDate__c = TODAY", ["INV-1"]),
        ("Apttus_Billing__InvoiceDate__c = TOMORROW", ["INV-4"]),
        ("Apttus_Billing__InvoiceDate__c = YESTERDAY", ["INV-2"]),
        ("Apttus_Billing__InvoiceDate__c > TODAY", ["INV-4"]),
        ("Apttus_Billing__InvoiceDate__c >= YESTERDAY", ["INV-1", "INV-2", "INV-4"]),
        ("Apttus_Billing__InvoiceDate__c = LAST_N_DAYS:0", ["INV-1"]),
        ("NOT Apttus_Billing__InvoiceDate__c = LAST_N_DAYS:1", ["INV-3", "INV-4"]),
    ],
)
def test_given_relative_date_literals_when_run_then_whole_utc_days_from_now(
    db, schema, where, expected
):
    assert invoices(db, schema, where) == expected


def test_given_multi_day_literal_in_in_list_when_compiled_then_malformed(schema):
    error = soql_error(
        schema,
        "SELECT Id FROM Apttus_Billing__Invoice__c "
        "WHERE Apttus_Billing__DueDate__c IN (LAST_N_DAYS:3)",
    )
    assert error.error_code == "MALFORMED_QUERY"


def test_given_no_clock_when_compiled_then_today_is_the_current_day(schema):
    compiled = compile_select(
        parse("SELECT Id FROM Apttus_Billing__Invoice__c WHERE Apttus_Billing__DueDate__c = TODAY"),
        schema,
        include_deleted=False,
    )
    assert compiled.where_params[0] == datetime.now(UTC).date().isoformat()


# --- type checks ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "field", "word", "quoted"),
    [
        ("Name = 5", "Name", "string", True),
        ("Name = true", "Name", "string", True),
        ("Name = 2026-11-22", "Name", "string", True),
        ("Name IN ('a', 5)", "Name", "string", True),
        ("IsDeleted = 'true'", "IsDeleted", "boolean", False),
        ("IsDeleted = 1", "IsDeleted", "boolean", False),
        ("Id = 5", "Id", "id", True),
        ("CreatedDate = 5", "CreatedDate", "dateTime", False),
        ("Phone = 5", "Phone", "phone", True),
    ],
)
def test_given_value_of_wrong_type_when_compiled_then_invalid_field(
    schema, where, field, word, quoted
):
    error = soql_error(schema, f"SELECT Id FROM Account WHERE {where}")
    assert error.error_code == "INVALID_FIELD"
    tail = "should be enclosed in quotes" if quoted else "should not be enclosed in quotes"
    assert error.detail == (
        f"value of filter criterion for field '{field}' must be of type {word} and {tail}"
    )


def test_given_string_against_number_field_when_compiled_then_invalid_field(schema):
    error = soql_error(
        schema,
        "SELECT Id FROM Apttus_Billing__Invoice__c "
        "WHERE Apttus_Billing__TotalInvoiceAmount__c = '5'",
    )
    assert error.error_code == "INVALID_FIELD"
    assert "must be of type currency and should not be enclosed in quotes" in error.detail


@pytest.mark.parametrize("op", ["<", ">", "<=", ">="])
def test_given_null_with_ordering_operator_when_compiled_then_malformed(schema, op):
    error = soql_error(schema, f"SELECT Id FROM Account WHERE Name {op} null")
    assert error.error_code == "MALFORMED_QUERY"


# --- Ids ------------------------------------------------------------------------------


def test_given_15_character_id_when_compared_then_matches_the_18_character_id(db, schema):
    assert names(db, schema, f"Id = '{acc(1)[:15]}'") == ["Acme"]


def test_given_18_character_id_in_wrong_case_when_compared_then_matches(db, schema):
    assert names(db, schema, f"Id = '{acc(1).lower()}'") == ["Acme"]


def test_given_reference_in_list_when_run_then_children_of_those_parents(db, schema):
    where = f"Apttus_Billing__BillToAccountId__c IN ('{acc(1)}', '{acc(3)[:15]}')"
    assert invoices(db, schema, where) == ["INV-1", "INV-2", "INV-4"]


@pytest.mark.parametrize("value", ["abc", "001000000000001AA", "001000000000001ZZZ"])
def test_given_malformed_id_when_compiled_then_invalid_query_filter_operator(schema, value):
    error = soql_error(schema, f"SELECT Id FROM Account WHERE Id = '{value}'")
    assert error.error_code == "INVALID_QUERY_FILTER_OPERATOR"
    assert error.detail == f"invalid ID field: {value}"


# --- AND / OR / NOT -------------------------------------------------------------------


def test_given_parentheses_when_run_then_grouping_is_respected(db, schema):
    assert names(db, schema, "(Name = 'Acme' OR Name = 'Café') AND BillingCity = 'Lyon'") == [
        "Café"
    ]
    assert names(db, schema, "Name = 'Acme' OR (Name = 'Café' AND BillingCity = 'Berlin')") == [
        "Acme"
    ]
    assert names(db, schema, "((Name = 'Acme'))") == ["Acme"]


def test_given_same_operator_chains_when_run_then_no_parentheses_needed(db, schema):
    assert names(db, schema, "Name = 'Acme' OR Name = 'Café' OR Name = 'x'") == [
        "Acme",
        "Café",
    ]
    assert names(db, schema, "Name LIKE 'a%' AND Name LIKE '%e' AND BillingCity = 'Berlin'") == [
        "Acme"
    ]


def test_given_not_inside_parentheses_after_and_when_run_then_accepted(db, schema):
    assert names(db, schema, "BillingCity = 'Paris' AND (NOT Name LIKE 'Bob%')") == ["100% Pure"]


def test_given_not_over_group_when_run_then_de_morgan_with_null_semantics(db, schema):
    result = names(db, schema, "NOT (BillingCity = 'Paris' OR BillingCity = null)")
    assert sorted(result) == sorted(["Acme", "Café", 'Say "hi"\n\tbye', "underXscore"])
    result = names(db, schema, "NOT (BillingCity != null AND Name LIKE 'a%')")
    assert "acme corp" in result
    assert "Acme" not in result


def test_given_negated_comparisons_when_run_then_nulls_match(db, schema):
    assert invoices(db, schema, "NOT Apttus_Billing__TotalInvoiceAmount__c > 0") == [
        "INV-2",
        "INV-3",
    ]
    assert invoices(db, schema, "NOT Apttus_Billing__TotalInvoiceAmount__c != 100") == ["INV-1"]
    assert invoices(db, schema, "NOT Apttus_Billing__TotalInvoiceAmount__c IN (100)") == [
        "INV-2",
        "INV-3",
        "INV-4",
    ]
    assert invoices(db, schema, "NOT Apttus_Billing__TotalInvoiceAmount__c NOT IN (100)") == [
        "INV-1"
    ]
    assert invoices(db, schema, "NOT Apttus_Billing__TotalInvoiceAmount__c = null") == [
        "INV-1",
        "INV-2",
        "INV-4",
    ]


# --- ORDER BY, LIMIT, OFFSET ----------------------------------------------------------


def _cities(db, schema, order: str, **kw: Any) -> list[str | None]:
    rows = run(db, schema, f"SELECT BillingCity FROM Account ORDER BY {order}", **kw)
    return [r["BillingCity"] for r in rows]


def test_given_order_asc_when_run_then_nulls_first_and_case_ignored(db, schema):
    assert _cities(db, schema, "BillingCity, Name") == [
        None,
        None,
        "Amsterdam",
        "Berlin",
        "Lyon",
        "Oslo",
        "Paris",
        "paris",
    ]


def test_given_order_desc_when_run_then_nulls_last(db, schema):
    assert _cities(db, schema, "BillingCity DESC, Name DESC") == [
        "paris",
        "Paris",
        "Oslo",
        "Lyon",
        "Berlin",
        "Amsterdam",
        None,
        None,
    ]


def test_given_explicit_nulls_placement_when_run_then_honoured(db, schema):
    assert _cities(db, schema, "BillingCity ASC NULLS LAST, Name")[-2:] == [None, None]
    assert _cities(db, schema, "BillingCity DESC NULLS FIRST, Name")[:2] == [None, None]
    assert _cities(db, schema, "BillingCity ASC NULLS FIRST, Name")[:2] == [None, None]
    assert _cities(db, schema, "BillingCity DESC NULLS LAST, Name")[-2:] == [None, None]


def test_given_several_order_fields_when_run_then_later_fields_break_ties(db, schema):
    rows = run(
        db,
        schema,
        "SELECT Name FROM Account WHERE BillingCity = 'paris' ORDER BY BillingCity, Name DESC",
    )
    assert [r["Name"] for r in rows] == ["Bob's BBQ", "100% Pure"]


def test_given_picklist_order_when_run_then_in_picklist_value_order(db, schema):
    # "Other" is last of the picklist's values although it sorts first alphabetically.
    rows = run(db, schema, "SELECT Id, Role FROM AccountContactRole ORDER BY Role, Id")
    assert [(r["Id"][-4:-3], r["Role"]) for r in rows] == [
        ("3", None),
        ("2", "Billing Admin"),
        ("5", "Billing Admin"),
        ("4", "Evaluator"),
        ("1", "Other"),
    ]
    rows = run(db, schema, "SELECT Id, Role FROM AccountContactRole ORDER BY Role DESC, Id")
    assert [r["Role"] for r in rows] == [
        "Other",
        "Evaluator",
        "Billing Admin",
        "Billing Admin",
        None,
    ]


def test_given_limit_and_offset_when_run_then_offset_applies_before_limit(db, schema):
    ordered = [r["Name"] for r in run(db, schema, "SELECT Name FROM Account ORDER BY Name")]
    page = run(db, schema, "SELECT Name FROM Account ORDER BY Name LIMIT 3 OFFSET 2")
    assert [r["Name"] for r in page] == ordered[2:5]
    page = run(db, schema, "SELECT Name FROM Account ORDER BY Name OFFSET 6")
    assert [r["Name"] for r in page] == ordered[6:]
    assert run(db, schema, "SELECT Name FROM Account LIMIT 0") == []
    compiled = compile_text(schema, "SELECT Name FROM Account ORDER BY Name LIMIT 3 OFFSET 2")
    assert (compiled.limit, compiled.offset) == (3, 2)


def test_given_offset_over_2000_when_compiled_then_number_outside_valid_range(schema):
    compile_text(schema, "SELECT Id FROM Account OFFSET 2000")
    error = soql_error(schema, "SELECT Id FROM Account OFFSET 2001")
    assert error.error_code == "NUMBER_OUTSIDE_VALID_RANGE"
    assert error.message == "Maximum SOQL offset allowed is 2000"


# --- deleted rows, SQL shape, parameters ----------------------------------------------


def test_given_query_when_run_then_deleted_rows_are_left_out(db, schema):
    assert names(db, schema, "Name LIKE 'Back%'") == []
    assert names(db, schema, "Name LIKE 'Back%'", include_deleted=True) == ["Back\\slash"]
    rows = run(
        db,
        schema,
        "SELECT Name, IsDeleted FROM Account WHERE IsDeleted = true",
        include_deleted=True,
    )
    assert rows == [{"Name": "Back\\slash", "IsDeleted": True}]


def test_given_values_when_compiled_then_all_are_bound_parameters(schema):
    hostile = "x' OR 1=1 --"
    compiled = compile_text(
        schema,
        "SELECT Id FROM Account WHERE Name = 'x\\' OR 1=1 --' OR BillingCity IN ('a', 'b') "
        "ORDER BY Name LIMIT 10 OFFSET 5",
    )
    sql, params = compiled.sql()
    assert hostile not in sql
    assert "'a'" not in sql
    assert params == [hostile, "a", "b", 10, 5]
    assert sql == (
        'SELECT "Id" FROM "Account" WHERE ("Name" COLLATE NOCASE = ? OR '
        '"BillingCity" COLLATE NOCASE IN (?, ?)) AND "IsDeleted" = 0 '
        'ORDER BY "Name" COLLATE NOCASE LIMIT ? OFFSET ?'
    )


def test_given_custom_select_list_when_sql_then_it_replaces_the_columns(schema):
    compiled = compile_text(schema, "SELECT Id, Name FROM Account WHERE Name = 'a'")
    sql, params = compiled.sql("rowid")
    assert sql == (
        'SELECT rowid FROM "Account" WHERE "Name" COLLATE NOCASE = ? AND "IsDeleted" = 0'
    )
    assert params == ["a"]


def test_given_include_deleted_without_where_when_sql_then_no_where_clause(schema):
    sql, params = compile_text(schema, "SELECT Id FROM Account", include_deleted=True).sql()
    assert sql == 'SELECT "Id" FROM "Account"'
    assert params == []


def test_given_incremental_pull_query_when_planned_then_modstamp_index_is_used(db, schema):
    compiled = compile_text(
        schema,
        "SELECT Id, Name FROM Account WHERE SystemModstamp > 2026-01-01T00:00:00Z "
        "ORDER BY SystemModstamp, Id",
    )
    sql, params = compiled.sql()
    plan = " ".join(str(row[-1]) for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    assert "Account__modstamp_id" in plan
    assert "TEMP B-TREE" not in plan


# --- limits of the parser -------------------------------------------------------------


def test_given_deeply_nested_condition_when_parsed_then_malformed_not_recursion_error():
    where = "(" * 150 + "Name = 'a'" + ")" * 150
    with pytest.raises(SoqlError) as caught:
        parse(f"SELECT Id FROM Account WHERE {where}")
    assert caught.value.error_code == "MALFORMED_QUERY"
    assert "nested more than 100 levels" in caught.value.detail


def test_given_moderately_nested_condition_when_run_then_accepted(db, schema):
    where = "(" * 50 + "Name = 'Acme'" + ")" * 50
    assert names(db, schema, where) == ["Acme"]
    assert names(db, schema, "NOT (" * 3 + "Name != 'Acme'" + ")" * 3) == ["Acme"]


def test_given_query_longer_than_100000_characters_when_parsed_then_malformed():
    text = "SELECT Id FROM Account WHERE Name IN (" + ",".join(["'abcdefgh'"] * 10_000) + ")"
    with pytest.raises(SoqlError) as caught:
        parse(text)
    assert caught.value.error_code == "MALFORMED_QUERY"
    assert "100000 characters" in caught.value.message


def test_given_limit_beyond_int_range_when_parsed_then_malformed():
    with pytest.raises(SoqlError) as caught:
        parse("SELECT Id FROM Account LIMIT 99999999999")
    assert caught.value.error_code == "MALFORMED_QUERY"
    assert "number too large" in caught.value.detail


def test_given_integer_wider_than_64_bits_when_run_then_compared_as_real(db, schema):
    big = "9" * 30
    assert invoices(db, schema, f"Apttus_Billing__TotalInvoiceAmount__c < {big}") == [
        "INV-1",
        "INV-2",
        "INV-4",
    ]
    assert invoices(db, schema, f"Apttus_Billing__TotalInvoiceAmount__c > -{big}") == [
        "INV-1",
        "INV-2",
        "INV-4",
    ]
