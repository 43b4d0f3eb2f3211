"""The budget guard's stored state and its policy from the settings.

:mod:`sync.service.budget` is the pure arithmetic; this module reads the one
``service_state`` document it keeps, so that status and monitoring can show the guard
without importing the jobs (and through them the CRM door).
"""

from __future__ import annotations

import math
from typing import Any

from sync.db import service_state
from sync.service import budget as budget_rules
from sync.settings import Settings


def budget_policy(settings: Settings, mapping_count: int) -> budget_rules.BudgetPolicy:
    """The guard's policy: configured interval, budget share, cost of one idle check."""
    return budget_rules.BudgetPolicy(
        base_interval=settings.pull_interval,
        share=settings.api_budget,
        # The idle check sends one /composite request per five mappings.
        poll_cost=float(max(1, math.ceil(mapping_count / 5))),
    )


def read_budget(engine: Any) -> budget_rules.BudgetState:
    """The stored budget state (fresh when none is stored yet)."""
    return budget_rules.BudgetState.from_dict(service_state.read(engine, service_state.BUDGET_KEY))
