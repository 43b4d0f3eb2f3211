"""The pull's time arithmetic, as pure functions of their arguments (the clock passed in).

How the window is chosen, and why it is safe whatever the clocks do:

* A pass reads ``watermark - lookback < SystemModstamp <= until``, ordered by
  SystemModstamp then Id. ``until`` is the pass's start on the local clock, or the newest
  SystemModstamp the idle check saw in the CRM if that is later (a CRM clock ahead of
  ours). It only bounds the window so that it is stable while paged.
* The watermark becomes the newest SystemModstamp actually *read* (never a clock
  reading), capped by ``until``. So a local clock behind the CRM's merely delays records
  stamped after ``until`` to the next pass, and a local clock ahead of it loses nothing:
  the watermark only ever holds CRM time.
* The lookback re-reads the last moments before the watermark on every pass: records
  whose transaction committed after a later one was read (SystemModstamp is taken before
  commit), and records sharing the watermark's second (SOQL datetime literals have whole
  seconds). Re-read rows that did not change are not rewritten. It is at least one
  second for that reason.
* A full pass has no lower bound. Its watermark follows its pages, even backwards, so a
  full reload that was interrupted resumes where it stopped on the next pass.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

MIN_LOOKBACK = dt.timedelta(seconds=1)


@dataclass(frozen=True)
class Window:
    """The SystemModstamp range one pass reads.

    Attributes:
        since: exclusive lower bound, None for a full read.
        until: inclusive upper bound.
        full: True when the pass reads everything (no watermark yet, or ``--full``).
    """

    since: dt.datetime | None
    until: dt.datetime
    full: bool


def _aware(value: dt.datetime, name: str) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value!r}")
    return value


def plan_window(
    watermark: dt.datetime | None,
    *,
    now: dt.datetime,
    lookback: dt.timedelta,
    full: bool = False,
    crm_time: dt.datetime | None = None,
) -> Window:
    """The window of the next pass.

    Args:
        watermark: the newest SystemModstamp already stored, None before the first pass.
        now: the pass's start on the local clock.
        lookback: how far before the watermark to read again (at least one second).
        full: read everything regardless of the watermark.
        crm_time: the newest SystemModstamp seen in the CRM just before, if known.

    Raises:
        ValueError: a naive datetime or a negative lookback.
    """
    _aware(now, "now")
    if lookback < dt.timedelta(0):
        raise ValueError(f"lookback must not be negative, got {lookback}")
    until = now if crm_time is None else max(now, _aware(crm_time, "crm_time"))
    if full or watermark is None:
        return Window(since=None, until=until, full=True)
    since = _aware(watermark, "watermark") - max(lookback, MIN_LOOKBACK)
    return Window(since=since, until=until, full=False)


def advance_watermark(
    current: dt.datetime | None, page_newest: dt.datetime | None, window: Window
) -> dt.datetime | None:
    """The watermark after a page whose newest SystemModstamp is ``page_newest``.

    Incremental passes only move it forward; a full pass sets it to its progress (which
    may be earlier than before), so that an interrupted reload resumes there.
    """
    if page_newest is None:
        return current
    capped = min(page_newest, window.until)
    if window.full or current is None:
        return capped
    return max(current, capped)


def is_newer(modstamp: dt.datetime | None, watermark: dt.datetime | None) -> bool:
    """True when the CRM holds a change after the watermark (the idle check's verdict)."""
    if modstamp is None:
        return False
    return watermark is None or modstamp > watermark


def retry_due(
    last_seen: dt.datetime,
    attempts: int,
    *,
    now: dt.datetime,
    base: dt.timedelta,
    cap: dt.timedelta,
) -> bool:
    """True when a record that failed ``attempts`` times should be fetched again.

    The wait doubles with each attempt, from ``base`` up to ``cap``. (A record that
    changes in the CRM is read again by the next pass anyway; this covers records that
    did not change, e.g. after a mapping was corrected.)
    """
    exponent = min(max(attempts - 1, 0), 30)
    wait = min(base * (2**exponent), cap)
    return now - last_seen >= wait


def lag(now: dt.datetime, last_checked: dt.datetime | None) -> dt.timedelta | None:
    """How old the mirror may be: time since the start of the last successful pass."""
    if last_checked is None:
        return None
    return max(now - last_checked, dt.timedelta(0))


def eta(done: int, total: int, elapsed: float) -> float | None:
    """Seconds left at the current rate, or None before there is a rate."""
    if done <= 0 or elapsed <= 0 or total <= done:
        return None if done <= 0 or elapsed <= 0 else 0.0
    return (total - done) * elapsed / done
