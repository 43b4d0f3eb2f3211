"""The one clock: the current time, timezone-aware UTC.

Time-dependent code takes a ``now`` argument (or a ``now`` callable) and defaults to
:func:`utc_now`, so tests pass a frozen time instead of sleeping.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

Now = Callable[[], dt.datetime]
"""A clock: returns the current time, aware, in UTC."""


def utc_now() -> dt.datetime:
    """The current time, aware, in UTC."""
    return dt.datetime.now(dt.UTC)
