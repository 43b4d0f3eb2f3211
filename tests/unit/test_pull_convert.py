import datetime as dt
import io

from sync.commands.pull import (
    EXIT_FAILED,
    EXIT_LIMIT,
    EXIT_OK,
    ProgressLine,
    exit_code,
    summary_line,
)
from sync.db.shapes import MIRRORED_SHAPES
from sync.mapping import load_mappings
from sync.mapping.loader import PROJECT_MAPPINGS
from sync.pull import Outcome, PassResult, Progress, convert_page

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
CONTACTS = load_mappings(PROJECT_MAPPINGS, MIRRORED_SHAPES)["contacts"]


def contact(n, *, stamp="2026-11-22T10:00:00.000+0000", **values):
    return {
        "attributes": {"type": "Contact"},
        "Id": f"003000000000{n:03d}AAA",
        "IsDeleted": False,
        "SystemModstamp": stamp,
        "AccountId": "001000000000001AAA",
        "FirstName": "Ada",
        "LastName": f"Person {n}",
        "Email": f"p{n}@example.com",
        **values,
    }


def test_given_page_with_bad_record_when_converted_then_others_kept_and_error_named():
    records = [
        contact(1),
        contact(2, FirstName="x" * 41, stamp="2026-11-22T10:00:05.000+0000"),
        contact(3, stamp="2026-11-22T10:00:02.000+0000"),
    ]

    page = convert_page(CONTACTS, records, NOW)

    assert [row["sfid"] for row in page.rows] == ["003000000000001AAA", "003000000000003AAA"]
    assert list(page.failed) == ["003000000000002AAA"]
    assert (
        "FirstName: 41 characters do not fit column first_name" in page.failed["003000000000002AAA"]
    )
    # the failed record's stamp still counts: the watermark may pass it (it is retried by Id)
    assert page.newest == dt.datetime(2026, 11, 22, 10, 0, 5, tzinfo=UTC)


def test_given_record_without_id_when_converted_then_counted_unreadable():
    record = contact(1)
    del record["Id"]

    page = convert_page(CONTACTS, [record], NOW)

    assert page.rows == []
    assert page.failed == {}
    assert page.unreadable == 1


def result(outcome, **extra):
    return PassResult(
        mapping="contacts",
        outcome=outcome,
        records=extra.pop("records", 0),
        api_calls=extra.pop("api_calls", 1),
        error=extra.pop("error", None),
        watermark=None,
        started_at=NOW,
        finished_at=NOW + dt.timedelta(seconds=2),
        **extra,
    )


def test_given_outcomes_when_exit_code_computed_then_limit_is_distinct():
    assert exit_code([result(Outcome.OK), result(Outcome.UNCHANGED)]) == EXIT_OK
    assert exit_code([result(Outcome.OK), result(Outcome.FAILED)]) == EXIT_FAILED
    assert exit_code([result(Outcome.FAILED), result(Outcome.LIMIT_EXCEEDED)]) == EXIT_LIMIT


def test_given_result_when_summarised_then_one_line_with_counts_and_error():
    line = summary_line(
        result(Outcome.FAILED, records=2500, api_calls=2, record_errors=1, error="HTTP 503")
    )

    first, second = line.splitlines()
    assert first.startswith("contacts ")
    assert "failed" in first and "2,500 records" in first and "2 API calls" in first
    assert "1 record error(s)" in first
    assert second.strip() == "HTTP 503"


def test_given_progress_when_shown_then_records_rate_and_eta():
    stream = io.StringIO()
    line = ProgressLine(stream, min_interval=0)

    line(Progress("invoices", 4000, 10000, 2.0))

    text = stream.getvalue()
    assert "invoices: 4,000/10,000 records, 2,000/s, ETA 3.0s" in text
    line.clear()
    assert stream.getvalue().endswith("\r\x1b[2K")
