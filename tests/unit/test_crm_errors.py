"""The classification table and the exceptions it produces (pure, no HTTP)."""

from __future__ import annotations

import pytest
import requests
import urllib3

from sync.crm.errors import (
    ERROR_RULES,
    ConflictError,
    CrmError,
    CrmRequestError,
    ErrorResolution,
    MalformedResponseError,
    RecordError,
    RequestLimitExceededError,
    SessionExpiredError,
    TransientCrmError,
    error_from_answer,
    error_from_transport,
    redact,
    resolve,
)


def errors(code: str, message: str = "msg", fields: list[str] | None = None) -> list[dict]:
    return [{"errorCode": code, "message": message, "fields": fields or []}]


@pytest.mark.parametrize(
    ("status", "code", "message", "resolution"),
    [
        (500, None, "", ErrorResolution.RETRY),
        (502, None, "", ErrorResolution.RETRY),
        (503, "SERVER_UNAVAILABLE", "", ErrorResolution.RETRY),
        (504, None, "", ErrorResolution.RETRY),
        (400, "UNABLE_TO_LOCK_ROW", "", ErrorResolution.RETRY),
        (None, "UNABLE_TO_LOCK_ROW", "", ErrorResolution.RETRY),
        (401, "INVALID_SESSION_ID", "", ErrorResolution.REFRESH_SESSION),
        (
            403,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
            ErrorResolution.RATE_LIMITED,
        ),
        (
            403,
            "REQUEST_LIMIT_EXCEEDED",
            "ConcurrentPerOrgLongTxn Limit exceeded.",
            ErrorResolution.RETRY,
        ),
        (400, "MALFORMED_QUERY", "", ErrorResolution.FAIL),
        (400, "INVALID_FIELD", "", ErrorResolution.FAIL),
        (401, "INVALID_AUTH_HEADER", "", ErrorResolution.FAIL),
        (403, "INSUFFICIENT_ACCESS", "", ErrorResolution.FAIL),
        (404, "NOT_FOUND", "", ErrorResolution.FAIL),
        (412, None, "", ErrorResolution.FAIL),
        (300, None, "", ErrorResolution.FAIL),
        (None, "FIELD_CUSTOM_VALIDATION_EXCEPTION", "", ErrorResolution.FAIL),
        (429, None, "", ErrorResolution.RETRY),
        (
            400,
            "QUERY_TIMEOUT",
            "Your query request was running for too long.",
            ErrorResolution.RETRY,
        ),
        (400, "INVALID_QUERY_LOCATOR", "invalid query locator", ErrorResolution.FAIL),
    ],
)
def test_given_failure_when_resolved_then_table_decides(
    status: int | None, code: str | None, message: str, resolution: ErrorResolution
) -> None:
    assert resolve(status, code, message).resolution is resolution


def test_given_the_table_when_read_then_every_rule_says_why() -> None:
    assert all(rule.reason for rule in ERROR_RULES)


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (503, errors("SERVER_UNAVAILABLE"), TransientCrmError),
        (400, errors("UNABLE_TO_LOCK_ROW"), TransientCrmError),
        (401, errors("INVALID_SESSION_ID"), SessionExpiredError),
        (
            403,
            errors("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
            RequestLimitExceededError,
        ),
        (400, errors("INVALID_FIELD"), CrmRequestError),
        (404, errors("NOT_FOUND"), CrmRequestError),
        (412, errors("PRECONDITION_FAILED"), ConflictError),
    ],
)
def test_given_error_answer_when_mapped_then_exception_class_and_attributes(
    status: int, body: list[dict], cls: type[CrmError]
) -> None:
    error = error_from_answer(status, body, method="GET", endpoint="/services/data/v59.0/x")

    assert type(error) is cls
    assert error.status == status
    assert error.error_code == body[0]["errorCode"]
    assert str(error).startswith("GET /services/data/v59.0/x: HTTP ")


def test_given_fields_and_several_errors_when_mapped_then_all_messages_and_fields_kept() -> None:
    body = errors("REQUIRED_FIELD_MISSING", "Required fields are missing: [Name]", ["Name"])
    body.append({"errorCode": "OTHER", "message": "second"})

    error = error_from_answer(400, body)

    assert error.fields == ["Name"]
    assert error.message == "Required fields are missing: [Name]; second"
    assert "(fields: Name)" in str(error)


def test_given_oauth_style_error_when_mapped_then_code_and_description_used() -> None:
    error = error_from_answer(400, {"error": "invalid_grant", "error_description": "expired"})

    assert error.error_code == "invalid_grant"
    assert error.message == "expired"


def test_given_unparsed_4xx_body_when_mapped_then_malformed_fail() -> None:
    error = error_from_answer(404, None, raw=b"<html>nope</html>", parsed=False)

    assert isinstance(error, MalformedResponseError)
    assert not error.retryable
    assert "<html>nope</html>" in error.message


def test_given_unparsed_5xx_body_when_mapped_then_transient_and_ambiguous() -> None:
    error = error_from_answer(502, None, raw=b"<html>bad gateway</html>", parsed=False)

    assert isinstance(error, TransientCrmError)
    assert error.retryable
    assert error.ambiguous


def test_given_record_error_json_when_built_then_transient_only_for_lock_rows() -> None:
    locked = RecordError.from_json({"statusCode": "UNABLE_TO_LOCK_ROW", "message": "x"})
    invalid = RecordError.from_json(
        {"statusCode": "INVALID_FIELD", "message": "y", "fields": ["A"]}
    )

    assert locked.transient
    assert not invalid.transient
    assert invalid.fields == ("A",)


@pytest.mark.parametrize(
    ("exc", "ambiguous"),
    [
        (requests.ConnectTimeout("t"), False),
        (requests.ReadTimeout("t"), True),
        (requests.ConnectionError(ConnectionRefusedError(111, "refused")), False),
        (
            requests.ConnectionError(
                urllib3.exceptions.MaxRetryError(
                    None,  # type: ignore[arg-type]
                    "/",
                    urllib3.exceptions.NewConnectionError(None, "refused"),  # type: ignore[arg-type]
                )
            ),
            False,
        ),
        (requests.ConnectionError(ConnectionResetError(104, "reset")), True),
        (requests.exceptions.ChunkedEncodingError("truncated"), True),
    ],
)
def test_given_transport_failure_when_mapped_then_transient_and_ambiguity_known(
    exc: Exception, ambiguous: bool
) -> None:
    error = error_from_transport(exc, method="POST", endpoint="/x")

    assert isinstance(error, TransientCrmError)
    assert error.ambiguous is ambiguous


def test_given_invalid_url_when_mapped_then_not_retryable() -> None:
    error = error_from_transport(requests.exceptions.InvalidURL("bad"))

    assert not error.retryable


def test_given_secrets_when_redacting_then_each_and_their_concatenation_vanish() -> None:
    text = "pw=hunter2 tok=abc both=hunter2abc"

    assert redact(text, ["hunter2", "abc", None, ""]) == "pw=*** tok=*** both=***"
