"""Timestamps of the sandbox: Salesforce's JSON datetime format and a modstamp clock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from sync.clock import utc_now

Now = Callable[[], datetime]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    """The aware UTC datetime ``ms`` milliseconds after the epoch."""
    return _EPOCH + timedelta(milliseconds=ms)


def format_ms(ms: int) -> str:
    """Salesforce's JSON datetime, e.g. ``2026-11-22T10:00:00.000+0000``."""
    moment = from_ms(ms)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}+0000"


def format_datetime(moment: datetime) -> str:
    """Salesforce's JSON datetime of an aware datetime (millisecond precision)."""
    return format_ms(to_ms(moment))


def parse_datetime(text: str) -> datetime | None:
    """An aware datetime from ISO 8601 text (``Z``, ``+hh:mm``, ``+hhmm``), or None."""
    try:
        moment = datetime.fromisoformat(text.strip().replace(" ", "+"))
        if moment.tzinfo is None:
            return None
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):  # not a datetime, or moved past year 1 or 9999
        return None


def parse_http_date(text: str) -> datetime | None:
    """An aware datetime from an HTTP date (``If-Unmodified-Since``) or ISO 8601 text."""
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return parse_datetime(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # the offset moves it past year 9999
        return None


class ModstampClock:
    """Millisecond timestamps that strictly increase across all writes.

    Salesforce's ``SystemModstamp`` is what incremental readers page on, so two writes
    never share one: when the wall clock has not moved on by a millisecond since the
    previous stamp, the stamp is the previous one plus 1 ms. Under more than 1000 writes
    a second the stamps therefore run slightly ahead of the wall clock, and fall back in
    step once the rate drops.
    """

    def __init__(self, now: Now = utc_now) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._last = 0

    def observe(self, ms: int) -> None:
        """Never hand out a stamp at or before ``ms`` (stamps already stored)."""
        with self._lock:
            self._last = max(self._last, ms)

    def wall_ms(self) -> int:
        """The wall clock in milliseconds (not a stamp: may repeat)."""
        return to_ms(self._now())

    def now(self) -> datetime:
        """The wall clock."""
        return self._now()

    def next_ms(self) -> int:
        """A fresh stamp, later than every stamp before it."""
        with self._lock:
            self._last = max(self._last + 1, to_ms(self._now()))
            return self._last

    @property
    def last_ms(self) -> int:
        """The latest stamp handed out (0 before the first)."""
        with self._lock:
            return self._last

    def reserve(self, count: int) -> tuple[int, int]:
        """Stamps for ``count`` records written together (seeding); returns (first, last).

        The range ends now and spans ``count`` milliseconds when that fits after the
        previous stamp, so records get distinct stamps in the past; when it does not fit,
        records share milliseconds rather than run ahead of the wall clock. Either way
        every later stamp is after the range.
        """
        with self._lock:
            last = max(to_ms(self._now()), self._last + 1)
            first = max(self._last + 1, last - count + 1)
            self._last = last
            return first, last
