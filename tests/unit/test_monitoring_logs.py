"""JSON logs with the ids of the work being done, and no secrets or card numbers."""

from __future__ import annotations

import io
import json
import logging

import pytest

from sync.crm.usage import endpoint_name
from sync.settings import Settings, SettingsError
from sync.telemetry import logs


@pytest.fixture
def json_log():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logs.install(handler, "json")
    logger = logging.getLogger("billing-sync-test-json")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield logger, lines
    logger.removeHandler(handler)


def test_given_json_format_when_logging_in_a_pass_then_one_object_a_line_with_ids(json_log):
    logger, lines = json_log
    with logs.log_context(mapping="invoices"):
        logs.bind(pass_id=42)
        logger.info("stored %d rows", 2000)
        with logs.log_context(request_id="abc123def456"):
            logger.warning("inside a request", extra={"change_set_id": 7})
    logger.info("after the pass")

    first, second, third = lines()
    assert first["message"] == "stored 2000 rows"
    assert first["level"] == "INFO" and first["logger"] == "billing-sync-test-json"
    assert first["mapping"] == "invoices" and first["pass_id"] == 42
    assert "time" in first
    assert second["request_id"] == "abc123def456" and second["change_set_id"] == 7
    assert second["mapping"] == "invoices"
    assert "mapping" not in third and "pass_id" not in third


@pytest.mark.parametrize(
    ("message", "secret"),
    [
        ("login with password=hunter2-secret", "hunter2-secret"),
        ("header Authorization: Bearer 00Dxx0000001gPF!AQ4AQHmvT1", "AQ4AQHmvT1"),
        ("session 00D5e000000ABCD!ARcAQPq.bZ1x_Yw9 expired", "ARcAQPq.bZ1x_Yw9"),
        ("card 4242 4242 4242 4242 declined", "4242 4242 4242 4242"),
        ("card 4111111111111111 declined", "4111111111111111"),
        ('{"security_token": "tok3n-value"}', "tok3n-value"),
        ("cvc=123 sent", "cvc=123"),
    ],
)
def test_given_a_secret_in_a_message_when_logged_then_it_never_appears(json_log, message, secret):
    logger, lines = json_log
    logger.info(message)
    logger.info("%s", message)  # also when it arrives as an argument

    for line in lines():
        assert secret not in line["message"]


def test_given_an_exception_with_a_secret_when_logged_then_the_traceback_is_redacted(json_log):
    logger, lines = json_log
    try:
        raise RuntimeError("refused: password=swordfish-123")
    except RuntimeError:
        logger.exception("login failed")

    (line,) = lines()
    assert "swordfish-123" not in json.dumps(line)
    assert "RuntimeError" in line["exc_info"]


def test_given_amounts_and_ids_when_logged_then_left_alone():
    text = "pulled 117000 records in 12.5 s; account 001000000000001AAA; $1,234.56"
    assert logs.redact(text) == text


def test_given_log_format_and_ops_token_settings_when_read_then_checked():
    settings = Settings.from_env(
        {"BILLING_SYNC_LOG_FORMAT": "JSON", "BILLING_SYNC_OPS_TOKEN": "x" * 16}
    )
    assert settings.log_format == "json" and settings.ops_token == "x" * 16
    assert "x" * 16 not in repr(settings)
    with pytest.raises(SettingsError, match="BILLING_SYNC_LOG_FORMAT"):
        Settings.from_env({"BILLING_SYNC_LOG_FORMAT": "xml"})
    with pytest.raises(SettingsError, match="BILLING_SYNC_OPS_TOKEN"):
        Settings.from_env({"BILLING_SYNC_OPS_TOKEN": "short"})


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/services/data/v59.0/query?q=SELECT+Id+FROM+Account", "query"),
        ("/services/data/v59.0/query/01gD0000002HU6KIAW-2000", "query"),
        ("/services/data/v59.0/queryAll?q=x", "queryAll"),
        ("/services/data/v59.0/composite", "composite"),
        ("/services/data/v59.0/composite/sobjects", "composite/sobjects"),
        (
            "/services/data/v59.0/composite/sobjects/Order__c/Billing_Sync_Key__c",
            "composite/sobjects",
        ),
        ("/services/data/v59.0/sobjects/Account/001000000000001AAA", "sobjects"),
        ("/services/data/v59.0/sobjects/Account/describe", "sobjects/describe"),
        ("/services/data/v59.0/sobjects/Account/deleted/?start=x", "sobjects/deleted"),
        ("/services/data/v59.0/limits", "limits"),
        ("/services/data/v59.0/jobs/query/750xx/results", "jobs"),
        ("/services/data/", "versions"),
        ("/services/apexrest/x", "other"),
    ],
)
def test_given_a_request_path_when_named_then_ids_and_objects_left_out(path, name):
    assert endpoint_name(path) == name
