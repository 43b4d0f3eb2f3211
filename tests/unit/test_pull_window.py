import datetime as dt

import pytest

from sync.pull.window import (
    MIN_LOOKBACK,
    Window,
    advance_watermark,
    eta,
    is_newer,
    lag,
    plan_window,
    retry_due,
)

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
MINUTE = dt.timedelta(minutes=1)


def test_given_no_watermark_when_planned_then_full_window_up_to_now():
    window = plan_window(None, now=NOW, lookback=MINUTE)

    assert window == Window(since=None, until=NOW, full=True)


def test_given_watermark_when_planned_then_window_starts_lookback_before_it():
    watermark = NOW - dt.timedelta(hours=1)

    window = plan_window(watermark, now=NOW, lookback=MINUTE)

    assert window == Window(since=watermark - MINUTE, until=NOW, full=False)


def test_given_zero_lookback_when_planned_then_at_least_one_second_is_reread():
    watermark = NOW - MINUTE

    window = plan_window(watermark, now=NOW, lookback=dt.timedelta(0))

    assert window.since == watermark - MIN_LOOKBACK


def test_given_full_when_planned_then_no_lower_bound():
    assert plan_window(NOW - MINUTE, now=NOW, lookback=MINUTE, full=True).since is None


def test_given_crm_clock_ahead_when_planned_then_window_reaches_crm_time():
    crm_time = NOW + dt.timedelta(seconds=30)

    window = plan_window(NOW - MINUTE, now=NOW, lookback=MINUTE, crm_time=crm_time)

    assert window.until == crm_time


def test_given_crm_clock_behind_when_planned_then_local_now_bounds():
    window = plan_window(NOW - MINUTE, now=NOW, lookback=MINUTE, crm_time=NOW - MINUTE)

    assert window.until == NOW


def test_given_naive_now_when_planned_then_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        plan_window(None, now=NOW.replace(tzinfo=None), lookback=MINUTE)


def test_given_incremental_page_when_advanced_then_watermark_moves_forward_only():
    window = Window(since=NOW - MINUTE, until=NOW, full=False)
    current = NOW - dt.timedelta(seconds=30)

    assert advance_watermark(current, NOW - dt.timedelta(seconds=10), window) == (
        NOW - dt.timedelta(seconds=10)
    )
    # The lookback re-reads records older than the watermark: it must not move back.
    assert advance_watermark(current, NOW - dt.timedelta(seconds=50), window) == current


def test_given_page_newer_than_window_end_when_advanced_then_capped():
    window = Window(since=None, until=NOW, full=True)

    assert advance_watermark(None, NOW + MINUTE, window) == NOW


def test_given_full_pass_when_advanced_then_watermark_follows_progress_even_backwards():
    window = Window(since=None, until=NOW, full=True)
    earlier = NOW - dt.timedelta(days=30)

    assert advance_watermark(NOW - MINUTE, earlier, window) == earlier


def test_given_empty_page_when_advanced_then_unchanged():
    window = Window(since=None, until=NOW, full=True)

    assert advance_watermark(NOW - MINUTE, None, window) == NOW - MINUTE


@pytest.mark.parametrize(
    ("modstamp", "watermark", "expected"),
    [
        (None, NOW, False),
        (NOW, NOW, False),
        (NOW + dt.timedelta(milliseconds=1), NOW, True),
        (NOW - MINUTE, NOW, False),
        (NOW, None, True),
    ],
)
def test_given_idle_check_answer_when_compared_then_newer_only_after_watermark(
    modstamp, watermark, expected
):
    assert is_newer(modstamp, watermark) is expected


@pytest.mark.parametrize(
    ("attempts", "waited", "due"),
    [
        (1, dt.timedelta(seconds=59), False),
        (1, dt.timedelta(seconds=60), True),
        (3, dt.timedelta(minutes=3), False),
        (3, dt.timedelta(minutes=4), True),
        (20, dt.timedelta(minutes=59), False),
        (20, dt.timedelta(hours=1), True),
    ],
)
def test_given_failed_record_when_checked_then_retry_backs_off_to_cap(attempts, waited, due):
    assert retry_due(NOW - waited, attempts, now=NOW, base=MINUTE, cap=dt.timedelta(hours=1)) is due


def test_given_progress_when_eta_computed_then_remaining_at_current_rate():
    assert eta(1000, 4000, 2.0) == pytest.approx(6.0)
    assert eta(0, 4000, 2.0) is None
    assert eta(4000, 4000, 2.0) == 0.0


def test_given_last_check_when_lag_computed_then_time_since():
    assert lag(NOW, NOW - MINUTE) == MINUTE
    assert lag(NOW, None) is None
    assert lag(NOW, NOW + MINUTE) == dt.timedelta(0)
