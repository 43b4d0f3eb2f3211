"""The pull: mirror each mapping's CRM object into its local table.

:func:`pull_all` runs one pass over the mappings, :func:`pull_mapping` one mapping,
:func:`changed_mappings` is the cheap idle check, :func:`reconcile_mapping` finds records
purged from the CRM. The window arithmetic lives in :mod:`sync.pull.window`.
"""

from sync.pull.engine import convert_page, pull_mapping, window_soql
from sync.pull.idle import changed_mappings
from sync.pull.reconcile import reconcile_mapping
from sync.pull.result import Outcome, PassResult, Progress, ReconcileResult
from sync.pull.runner import pull_all

__all__ = [
    "Outcome",
    "PassResult",
    "Progress",
    "ReconcileResult",
    "changed_mappings",
    "convert_page",
    "pull_all",
    "pull_mapping",
    "reconcile_mapping",
    "window_soql",
]
