"""Change Data Capture: CRM change events trigger the pulls; polling is the safety net.

:mod:`sync.events.model` reads change events, :mod:`sync.events.channels` maps mappings
to channels, :mod:`sync.events.trigger` turns events into coalesced pull requests,
:mod:`sync.events.listener` holds the streaming session and :mod:`sync.events.runner`
runs it on threads. The listener reports its state into the service
(:mod:`sync.service.listener_status`), which is what ``status``, ``/readyz``, metrics and
the change check read.
"""
