"""The words the write side stores: change kinds, set states, item operations, outcomes.

They are ``str`` Enums whose values are the stored column values, so a row, a JSON
document or a metric label reads the same whether it was written from the enum or the
text. They sit at the database floor because the repositories compare and write them;
:mod:`sync.changes.rules` re-exports them for the layers above.
"""

from __future__ import annotations

from enum import StrEnum


class ChangeKind(StrEnum):
    """What a staged change does (``staged_changes.kind``)."""

    ACCOUNT_FIELD = "account_field"
    ADD_CARD = "add_card"
    MAKE_DEFAULT = "make_default"
    REMOVE_METHOD = "remove_method"
    ADD_LICENSES = "add_licenses"
    ADD_MINUTES = "add_minutes"


class ChangeState(StrEnum):
    """Where a change set stands (``change_sets.state``).

    Only ``accepted`` (and ``sending`` under an expired lease) sets are pushed.
    """

    ACCEPTED = "accepted"
    SENDING = "sending"
    APPLIED = "applied"
    CONFLICT = "conflict"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        """True when the push is done with the set."""
        return self in FINAL_STATES

    @property
    def problem(self) -> bool:
        """True when the set needs a person: the admin re-stages it, or ops acts on it."""
        return self in PROBLEM_STATES


#: States the push never leaves on its own.
FINAL_STATES = frozenset(
    {ChangeState.APPLIED, ChangeState.CONFLICT, ChangeState.FAILED, ChangeState.CANCELLED}
)
#: States of a set still waiting to reach the CRM.
PENDING_STATES = (ChangeState.ACCEPTED, ChangeState.SENDING)
#: States that need a person: the admin re-stages, or ops retries or cancels.
PROBLEM_STATES = (ChangeState.CONFLICT, ChangeState.FAILED)


class Operation(StrEnum):
    """What a change item asks of the CRM (``change_items.operation``)."""

    UPDATE = "update"
    CREATE = "create"
    CHECK = "check"
    """Read only: the CRM must still hold ``old_value`` (a price the admin accepted)."""


class ItemOutcome(StrEnum):
    """What the last push attempt did with one change item (``change_items.outcome``)."""

    APPLIED = "applied"
    """Written (an update sent, a create upserted, all or none with the set)."""
    UNCHANGED = "unchanged"
    """Nothing to send: the CRM already holds the new value (or still the checked one)."""
    CONFLICT = "conflict"
    """The CRM holds another value than the admin saw; ``crm_value`` keeps it."""
    NOT_SENT = "not_sent"
    """Held back because another item of the set conflicted or the write failed."""
