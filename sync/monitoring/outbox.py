"""What ops may do to the outbox from the dashboard: retry or cancel a change set.

- retry: a conflicted or failed set goes back to ``accepted`` and is pushed on the next
  pass (its CRM message stays until the push writes a new one);
- cancel: a conflicted, failed or not yet sent (``accepted``) set becomes ``cancelled``
  and is never pushed.

Each action writes an audit row with actor ``ops:<who>``.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine

from sync.db.repo import monitoring as repo

RETRYABLE = ("conflict", "failed")
CANCELLABLE = ("accepted", "conflict", "failed")


def retry(engine: Engine, change_set_id: int, *, who: str, now: dt.datetime) -> bool:
    """Send a conflicted or failed change set again.

    Returns:
        True when it moved back to ``accepted``; False when it was not conflicted or
        failed (or does not exist).
    """
    with engine.begin() as conn:
        moved = repo.set_change_set_state(
            conn,
            change_set_id,
            allowed_from=RETRYABLE,
            values={"state": "accepted", "next_attempt_at": None, "finished_at": None},
            actor=f"ops:{who}",
            action="ops_retry",
            now=now,
        )
    return moved is not None


def cancel(engine: Engine, change_set_id: int, *, who: str, now: dt.datetime) -> bool:
    """Never send this change set.

    Returns:
        True when it became ``cancelled``; False when it was in another state.
    """
    with engine.begin() as conn:
        moved = repo.set_change_set_state(
            conn,
            change_set_id,
            allowed_from=CANCELLABLE,
            values={"state": "cancelled", "finished_at": now, "next_attempt_at": None},
            actor=f"ops:{who}",
            action="ops_cancel",
            now=now,
        )
    return moved is not None
