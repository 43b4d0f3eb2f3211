"""The pull: mirror each mapping's CRM object into its local table.

:func:`pull_all` runs one pass over the mappings, :func:`pull_mapping` one mapping,
:func:`check_changes` is the cheap idle check (its :class:`ChangeCheck` is handed to the
passes that follow), :func:`reconcile_mapping` finds records purged from the CRM. The row
builder that turns a page of records into bound rows lives in :mod:`sync.pull.rows`, the
window arithmetic in :mod:`sync.pull.window`.
"""

from sync.pull.engine import convert_page, pull_mapping, window_soql
from sync.pull.idle import ChangeCheck, PassHints, changed_mappings, check_changes
from sync.pull.reconcile import reconcile_mapping
from sync.pull.result import Outcome, PassResult, Progress, ReconcileResult
from sync.pull.runner import pull_all

__all__ = [
    "ChangeCheck",
    "Outcome",
    "PassHints",
    "PassResult",
    "Progress",
    "ReconcileResult",
    "changed_mappings",
    "check_changes",
    "convert_page",
    "pull_all",
    "pull_mapping",
    "reconcile_mapping",
    "window_soql",
]
