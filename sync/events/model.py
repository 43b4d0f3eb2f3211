"""Change events as the listener reads them: which object, what kind of change, which id.

Pure functions over the CometD message (``{"channel", "data": {"event": {"replayId"},
"payload": {"ChangeEventHeader": {...}, ...}}}``). The body's field values are never
used: an event only says *that* a mapping changed; the pull reads *what* changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GAP_TYPES = frozenset({"GAP_CREATE", "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE", "GAP_OVERFLOW"})


@dataclass(frozen=True)
class ChangeEvent:
    """The parts of one change event the listener acts on.

    Attributes:
        channel: the channel it arrived on.
        replay_id: ``data.event.replayId`` (None when missing).
        entity: ``ChangeEventHeader.entityName`` (None when missing).
        change_type: CREATE, UPDATE, DELETE, UNDELETE, GAP_* or GAP_OVERFLOW.
        record_ids: the changed records (empty for GAP_OVERFLOW).
        commit_ms: ``commitTimestamp`` in epoch milliseconds (None when missing).
    """

    channel: str
    replay_id: int | None
    entity: str | None
    change_type: str
    record_ids: tuple[str, ...] = ()
    commit_ms: int | None = None

    @property
    def is_gap(self) -> bool:
        """True for GAP_* and GAP_OVERFLOW events (header only, no field values)."""
        return self.change_type in GAP_TYPES

    @property
    def is_overflow(self) -> bool:
        """True for GAP_OVERFLOW: too many changes in one transaction; ids unknown."""
        return self.change_type == "GAP_OVERFLOW"


def parse_event(message: dict[str, Any]) -> ChangeEvent:
    """The :class:`ChangeEvent` of a delivered message (missing parts become None)."""
    data = message.get("data") if isinstance(message.get("data"), dict) else {}
    assert isinstance(data, dict)
    event = data.get("event") if isinstance(data.get("event"), dict) else {}
    payload = data.get("payload") if isinstance(data.get("payload"), dict) else {}
    assert isinstance(event, dict) and isinstance(payload, dict)
    header = payload.get("ChangeEventHeader")
    header = header if isinstance(header, dict) else {}
    replay_id = event.get("replayId")
    commit = header.get("commitTimestamp")
    ids = header.get("recordIds")
    return ChangeEvent(
        channel=str(message.get("channel") or ""),
        replay_id=replay_id
        if isinstance(replay_id, int) and not isinstance(replay_id, bool)
        else None,
        entity=str(header["entityName"]) if header.get("entityName") else None,
        change_type=str(header.get("changeType") or "UPDATE"),
        record_ids=tuple(str(i) for i in ids) if isinstance(ids, list) else (),
        commit_ms=commit if isinstance(commit, int) and not isinstance(commit, bool) else None,
    )
