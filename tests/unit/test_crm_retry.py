"""The retry policy on its own: caps, backoff, logging, non-idempotent writes."""

from __future__ import annotations

import logging

import pytest

from sync.crm.errors import CrmRequestError, RequestLimitExceededError, TransientCrmError
from sync.crm.retry import RetryPolicy, should_retry


class Flaky:
    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


def test_given_two_transient_failures_when_called_then_third_attempt_succeeds() -> None:
    sleeps: list[float] = []
    fn = Flaky([TransientCrmError("a"), TransientCrmError("b")])

    result = RetryPolicy(max_attempts=3, sleep=sleeps.append).retrying()(fn)

    assert result == "ok"
    assert fn.calls == 3
    assert len(sleeps) == 2


def test_given_backoff_settings_when_waiting_then_waits_stay_within_the_exponential_cap() -> None:
    sleeps: list[float] = []
    fn = Flaky([TransientCrmError("x") for _ in range(6)])
    policy = RetryPolicy(max_attempts=7, initial_wait=0.5, max_wait=2.0, sleep=sleeps.append)

    policy.retrying()(fn)

    caps = [0.5, 1.0, 2.0, 2.0, 2.0, 2.0]
    assert len(sleeps) == 6
    assert all(0 <= wait <= cap for wait, cap in zip(sleeps, caps, strict=True))


def test_given_persistent_failure_when_called_then_stops_at_max_attempts_and_reraises() -> None:
    fn = Flaky([TransientCrmError(str(n)) for n in range(10)])

    with pytest.raises(TransientCrmError, match=r"^3$"):
        RetryPolicy(max_attempts=4, sleep=lambda _: None).retrying()(fn)

    assert fn.calls == 4


def test_given_time_cap_reached_when_failing_then_stops_before_max_attempts() -> None:
    fn = Flaky([TransientCrmError(str(n)) for n in range(10)])

    with pytest.raises(TransientCrmError):
        RetryPolicy(max_attempts=10, max_seconds=0.0, sleep=lambda _: None).retrying()(fn)

    assert fn.calls == 1


@pytest.mark.parametrize(
    "exc",
    [RequestLimitExceededError("limit"), CrmRequestError("bad field"), ValueError("bug")],
)
def test_given_non_retryable_failure_when_called_then_raised_at_once(exc: Exception) -> None:
    fn = Flaky([exc])

    with pytest.raises(type(exc)):
        RetryPolicy(max_attempts=5, sleep=lambda _: None).retrying()(fn)

    assert fn.calls == 1


def test_given_ambiguous_failure_when_not_idempotent_then_not_retried() -> None:
    ambiguous = TransientCrmError("read timeout", ambiguous=True)

    assert should_retry(ambiguous, idempotent=True)
    assert not should_retry(ambiguous, idempotent=False)
    assert should_retry(TransientCrmError("refused"), idempotent=False)


def test_given_a_retry_when_sleeping_then_a_warning_is_logged_first(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="sync.crm")
    fn = Flaky([TransientCrmError("GET /services/data/v59.0/limits: HTTP 503")])

    RetryPolicy(sleep=lambda _: None).retrying()(fn)

    assert "Retrying" in caplog.text
    assert "HTTP 503" in caplog.text


def test_given_invalid_caps_when_building_then_value_error() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(max_wait=-1)
