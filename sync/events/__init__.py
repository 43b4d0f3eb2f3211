"""Change Data Capture: CRM change events trigger the pulls; polling is the safety net.

:mod:`sync.events.model` reads change events, :mod:`sync.events.channels` maps mappings
to channels, :mod:`sync.events.trigger` turns events into coalesced pull requests,
:mod:`sync.events.listener` holds the streaming session, :mod:`sync.events.status` is
what ``status``, ``/readyz``, metrics and the change check read about the listener.
"""

from sync.events.status import ListenerState, listener_status, listening_mappings

__all__ = ["ListenerState", "listener_status", "listening_mappings"]
