"""Repositories: the SQL of billing-sync, one module per group of tables.

The pull's two modules are re-exported here:
:mod:`sync.db.repo.rows`: the mirrored tables (bulk upserts, tombstones, Id streams).
:mod:`sync.db.repo.state`: the pull's own tables (a mapping's one state row, pass
history, record errors).

The write side's are used as modules (``from sync.db.repo import outbox``):
:mod:`sync.db.repo.changes` (staged changes, new change sets, the audit log),
:mod:`sync.db.repo.outbox` (change sets, claims under a lease, state moves) and
:mod:`sync.db.repo.prices` (what purchases read from the mirror). Monitoring's scrape
queries are :mod:`sync.db.repo.monitoring`.
"""

from sync.db.repo.rows import (
    UpsertPlan,
    dialect_insert,
    mirrored_table,
    relax_commit_wait,
    row_counts,
    stream_live_sfids,
    tombstone,
    upsert_plan,
    upsert_rows,
    upsert_values,
)
from sync.db.repo.state import (
    ERRORS,
    PASSES,
    STATE,
    MappingState,
    PassRow,
    RecordErrorRow,
    StoredLoad,
    all_states,
    begin_pass,
    clear_record_errors,
    close_mapping_pass,
    close_stale_passes,
    count_pass,
    finish_pass,
    get_state,
    mark_in_step,
    pass_progress,
    recent_passes,
    record_error_counts,
    record_errors,
    records_since,
    save_record_errors,
    save_state,
    set_paused,
)

__all__ = [
    "ERRORS",
    "PASSES",
    "STATE",
    "MappingState",
    "PassRow",
    "RecordErrorRow",
    "StoredLoad",
    "UpsertPlan",
    "all_states",
    "begin_pass",
    "clear_record_errors",
    "close_mapping_pass",
    "close_stale_passes",
    "count_pass",
    "dialect_insert",
    "finish_pass",
    "get_state",
    "mark_in_step",
    "mirrored_table",
    "pass_progress",
    "recent_passes",
    "record_error_counts",
    "record_errors",
    "records_since",
    "relax_commit_wait",
    "row_counts",
    "save_record_errors",
    "save_state",
    "set_paused",
    "stream_live_sfids",
    "tombstone",
    "upsert_plan",
    "upsert_rows",
    "upsert_values",
]
