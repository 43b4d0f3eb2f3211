"""The push: accepted change sets go to the CRM, once, without overwriting newer edits.

:func:`push_pending` runs one pass over the outbox (see :mod:`sync.push.engine`).
"""

from sync.push.engine import PushReport, push_pending

__all__ = ["PushReport", "push_pending"]
