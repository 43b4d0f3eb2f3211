"""Every SQL statement of the pull, in two modules re-exported here.

:mod:`sync.db.repo.rows`: the mirrored tables (bulk upserts, tombstones, Id streams).
:mod:`sync.db.repo.state`: the pull's own tables (sync state, pass history, record
errors).
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
    all_states,
    begin_pass,
    clear_record_errors,
    close_stale_passes,
    finish_pass,
    get_state,
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
    "UpsertPlan",
    "all_states",
    "begin_pass",
    "clear_record_errors",
    "close_stale_passes",
    "dialect_insert",
    "finish_pass",
    "get_state",
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
