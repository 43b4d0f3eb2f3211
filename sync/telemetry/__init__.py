"""Instruments on the ground floor: counters and logging, which every layer may use.

:mod:`sync.telemetry.counters` tallies what a process does (CRM calls and errors, portal
requests, passes) in memory; :mod:`sync.telemetry.logs` sets up plain or JSON logging
with bound ids and redaction of secrets. Only the standard library and the logging
formatter are imported here, never another part of billing-sync, so that the CRM door,
the database repositories and the pull can all record without an import running back up.
The tallies reach the database through :mod:`sync.service.flush`; the ops read side
(snapshots, ``/metrics``, charts) is :mod:`sync.monitoring`.
"""
