"""Monitoring's read side: Prometheus exposition, the ops dashboard's data, charts.

State that lives in the database (watermarks, passes, record errors, the outbox, the
budget guard) is read at scrape time (:mod:`sync.monitoring.snapshot`). Counters that
processes produce (CRM calls and errors, portal requests) are tallied in memory by
:mod:`sync.telemetry.counters` and added to the ``metric_counters`` table every few
seconds by :mod:`sync.service.flush`, so any web process's ``/metrics`` answers for
every worker and web process of the deployment.
"""
