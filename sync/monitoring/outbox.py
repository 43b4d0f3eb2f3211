"""What ops may do to the outbox from the dashboard: retry or cancel a change set.

The moves themselves are the outbox's (:func:`sync.changes.outbox.retry` and
:func:`~sync.changes.outbox.cancel`, the same as ``billing-sync changes retry|cancel``):

- retry: a conflicted or failed set goes back to ``accepted`` and is pushed on the next
  pass;
- cancel: a conflicted, failed or not yet sent (``accepted``) set becomes ``cancelled``
  and is never pushed.

Each action writes an audit row with actor ``ops:<who>``.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine

from sync.changes import outbox


def retry(engine: Engine, change_set_id: int, *, who: str, now: dt.datetime) -> bool:
    """Send a conflicted or failed change set again.

    Returns:
        True when it moved back to ``accepted``; False when it was not conflicted or
        failed (or does not exist).
    """
    try:
        with engine.begin() as conn:
            outbox.retry(conn, change_set_id, f"ops:{who}", now)
    except outbox.OutboxError:
        return False
    return True


def cancel(engine: Engine, change_set_id: int, *, who: str, now: dt.datetime) -> bool:
    """Never send this change set.

    Returns:
        True when it became ``cancelled``; False when it was in another state.
    """
    try:
        with engine.begin() as conn:
            outbox.cancel(conn, change_set_id, f"ops:{who}", now)
    except outbox.OutboxError:
        return False
    return True
