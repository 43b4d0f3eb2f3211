"""History hooks: tables whose changes the pull records as it stores a page.

A hook reads the rows a page touches before the page is written and compares them
after, on the page's own connection, so the history commits with the rows or not at
all. Which tables have one is decided here, by table, so the mappings stay plain data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from sqlalchemy import Connection, Table

from sync.db import repo
from sync.db.repo.admins import RoleHistory
from sync.mapping.spec import Mapping
from sync.settings import Settings


class PageHistory(Protocol):
    """What the pull calls around each write to a table with history."""

    def before_page(
        self, conn: Connection, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> Any:
        """Read what the history compares, before a page's upsert (``columns`` order)."""

    def before_tombstone(self, conn: Connection, sfids: Sequence[str]) -> Any:
        """Read what the history compares, before the rows ``sfids`` are tombstoned."""

    def after(self, conn: Connection, before: Any, now: dt.datetime) -> int:
        """Write the entries of the rows that changed since ``before``; returns how many."""


# table -> the hook of a mapping that stores into it
_HOOKS: dict[str, Callable[[Settings], PageHistory]] = {
    # the Billing Admin history: who was given, or lost, the portal of an account
    "account_contact_roles": lambda settings: RoleHistory(settings.billing_admin_role),
}


def history_for(mapping: Mapping, settings: Settings) -> PageHistory | None:
    """The history hook of ``mapping``'s table, or None when it keeps no history."""
    make = _HOOKS.get(mapping.table)
    return make(settings) if make is not None else None


def tombstone(
    conn: Connection,
    table: Table,
    sfids: list[str],
    history: PageHistory | None,
    *,
    now: dt.datetime,
    not_after: dt.datetime | None = None,
) -> int:
    """:func:`sync.db.repo.tombstone`, with the table's history written alongside."""
    before = history.before_tombstone(conn, sfids) if history is not None else None
    count = repo.tombstone(conn, table, sfids, now=now, not_after=not_after)
    if history is not None and count:
        history.after(conn, before, now)
    return count
