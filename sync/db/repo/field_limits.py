"""The CRM's text field lengths, kept for the portal's input checks.

Written once per start from the describes (:func:`sync.context.save_field_limits`), read
by the portal's forms, which never ask the CRM themselves.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine

from sync.db import service_state

FIELD_LIMITS_KEY = "crm:field-limits"


def write_field_limits(engine: Engine, limits: dict[str, dict[str, int]], now: dt.datetime) -> None:
    """Replace the lengths: ``{table: {column: characters}}``."""
    service_state.write(engine, FIELD_LIMITS_KEY, limits, now)


def field_limits(engine: Engine) -> dict[str, dict[str, int]]:
    """The CRM's text field lengths by table and column (empty before the first start)."""
    doc = service_state.read(engine, FIELD_LIMITS_KEY) or {}
    return {str(t): {str(c): int(n) for c, n in cols.items()} for t, cols in doc.items()}
