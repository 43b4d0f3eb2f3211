"""The cheap check that lets an idle pass cost ceil(M/5) API calls for M mappings.

For each incremental mapping one query asks the CRM for its newest record changed after
the watermark (``queryAll``, so a delete counts as a change). Queries go five to a
/composite call, the most Salesforce allows, and a /composite call counts as one API call.

The check compares with the watermark itself, not with the lookback before it (that
window always holds the last records already read). So a record whose transaction
committed late, stamped before the watermark, does not make its mapping "changed" on
its own; the lookback of the mapping's next pass reads it, and the next change to the
object triggers that pass.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping as ReadOnly
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from simple_salesforce import format_soql

from sync.bulk.choice import count_soql, threshold
from sync.context import SyncContext
from sync.crm.soql import and_, select, soql_datetime
from sync.db import repo
from sync.mapping.spec import Mapping
from sync.mapping.transform import parse_sf_datetime
from sync.pull.window import is_newer, retry_due

logger = logging.getLogger("sync.pull")

RETRY_BASE = dt.timedelta(minutes=1)
RETRY_CAP = dt.timedelta(hours=1)


@dataclass(frozen=True)
class PassHints:
    """What a change check learned about one mapping's next pass.

    Attributes:
        crm_time: the newest SystemModstamp the check saw in the CRM; the pass's window
            reaches at least that far (a CRM clock ahead of ours).
        counted: the records of the mapping's full window, counted by the check (for
            the choice between REST and Bulk); None when not counted.
    """

    crm_time: dt.datetime | None = None
    counted: int | None = None


NO_HINTS = PassHints()


def _frozen(hints: dict[str, PassHints]) -> ReadOnly[str, PassHints]:
    return MappingProxyType(dict(hints))


@dataclass(frozen=True)
class ChangeCheck:
    """The verdict of a change check, handed to the passes that follow it.

    Attributes:
        changed: the mappings that have something to pull, in the order asked.
        hints: per mapping, what the check learned for its pass (see :class:`PassHints`).
    """

    changed: tuple[str, ...] = ()
    hints: ReadOnly[str, PassHints] = field(default_factory=lambda: _frozen({}))

    def hint(self, name: str) -> PassHints:
        """The hints for ``name``'s pass (none when the check learned nothing)."""
        return self.hints.get(name, NO_HINTS)


def newest_change_soql(mapping: Mapping, watermark: dt.datetime | None) -> str:
    """SOQL for the newest record of ``mapping`` stamped after ``watermark`` (if any).

    SOQL datetimes have whole seconds, so the bound is the watermark's second rounded
    down and the answer's SystemModstamp is compared with the exact watermark here.
    """
    bound = (
        format_soql("SystemModstamp > {since:literal}", since=soql_datetime(watermark))
        if watermark is not None
        else None
    )
    return select(
        mapping.crm_object,
        ["Id", "SystemModstamp"],
        where=and_(mapping.filter, bound),
        order_by=["SystemModstamp DESC"],
        limit=1,
    )


def changed_mappings(
    ctx: SyncContext, names: Sequence[str] | None = None, *, now: dt.datetime | None = None
) -> list[str]:
    """The names of :func:`check_changes`'s changed mappings, for callers that queue pulls.

    A queued pull runs in another task (often another process), so the check's hints
    stay here; its pass plans its own window.

    Raises:
        CrmError: as :func:`check_changes`.
    """
    return list(check_changes(ctx, names, now=now).changed)


def check_changes(
    ctx: SyncContext, names: Sequence[str] | None = None, *, now: dt.datetime | None = None
) -> ChangeCheck:
    """Which mappings (of ``names``, default all) have something to pull.

    A mapping has something to pull when no pass of it ever completed, when the CRM holds
    a record stamped after its watermark (any record, for a mapping whose object was
    empty), when the mapping itself changed since its rows were stored (its state row's
    fingerprint differs: it is reloaded), or when records that failed to convert are due
    for another attempt. Paused mappings are left out. One /composite call per five
    mappings that need asking; the newest SystemModstamp seen, and the count of a full
    load's window, come back as hints for the passes that follow.

    Raises:
        CrmError: the /composite call failed (REQUEST_LIMIT_EXCEEDED included).
    """
    now = now or ctx.now()
    wanted = list(names) if names is not None else ctx.mappings.names
    with ctx.engine.connect() as conn:
        states = repo.all_states(conn)
        failing = repo.record_errors(conn)
    due: set[str] = {
        e.mapping
        for e in failing
        if retry_due(e.last_seen, e.attempts, now=now, base=RETRY_BASE, cap=RETRY_CAP)
    }
    changed: set[str] = set()
    crm_times: dict[str, dt.datetime] = {}
    counts: dict[str, int] = {}
    to_ask: list[tuple[Mapping, dt.datetime | None]] = []
    to_count: list[Mapping] = []
    for name in wanted:
        mapping = ctx.mapping(name)
        state = states.get(name)
        if state is not None and state.paused:
            continue
        never_completed = state is None or (
            state.watermark is None and state.last_pass_finished_at is None
        )
        reload = (state.fingerprint if state else None) != mapping.fingerprint
        if never_completed or reload or name in due:
            changed.add(name)
            if (never_completed or reload) and threshold(mapping, ctx.settings) > 0:
                # its pass is a full load: count it here, riding the same calls
                to_count.append(mapping)
            continue
        assert state is not None
        to_ask.append((mapping, state.watermark))

    # Counts go first in the calls, so they share a call with the asks when they fit.
    work: list[tuple[Mapping, dt.datetime | None, bool]] = [(m, None, True) for m in to_count]
    work += [(m, w, False) for m, w in to_ask]
    soqls = [
        count_soql(mapping) if count else newest_change_soql(mapping, watermark)
        for mapping, watermark, count in work
    ]
    # query_many sends five queries per /composite call, in this order.
    answers = ctx.crm.query_many(soqls, include_deleted=True)
    for (mapping, watermark, count), answer in zip(work, answers, strict=True):
        if count:
            if answer.page is not None:
                counts[mapping.name] = answer.page.total_size
            continue
        if answer.page is None:
            # The pass will meet the same error and record it where status shows it.
            logger.warning("idle check of %s failed: %s", mapping.name, answer.text)
            changed.add(mapping.name)
            continue
        records = answer.page.records
        newest: dt.datetime | None = None
        if records:
            try:
                newest = parse_sf_datetime(str(records[0].get("SystemModstamp")))
            except ValueError:
                changed.add(mapping.name)
                continue
        if is_newer(newest, watermark):
            changed.add(mapping.name)
            assert newest is not None
            crm_times[mapping.name] = newest
    hints = {
        name: PassHints(crm_time=crm_times.get(name), counted=counts.get(name))
        for name in wanted
        if name in crm_times or name in counts
    }
    return ChangeCheck(tuple(name for name in wanted if name in changed), _frozen(hints))


def count_full_windows(ctx: SyncContext, names: Sequence[str]) -> ChangeCheck:
    """Count the windows of full loads ahead of a ``--full`` run, five per call.

    Returns:
        Every mapping of ``names`` as changed (a full run reloads them all), with each
        count as its pass's hint for the choice between REST and Bulk; a mapping whose
        count fails is counted by its own pass instead.

    Raises:
        CrmError: a /composite call failed as a whole.
    """
    counts: dict[str, int] = {}
    mappings = [m for m in map(ctx.mapping, names) if threshold(m, ctx.settings) > 0]
    answers = ctx.crm.query_many([count_soql(m) for m in mappings], include_deleted=True)
    for mapping, answer in zip(mappings, answers, strict=True):
        if answer.page is not None:
            counts[mapping.name] = answer.page.total_size
    hints = {name: PassHints(counted=n) for name, n in counts.items()}
    return ChangeCheck(tuple(names), _frozen(hints))
