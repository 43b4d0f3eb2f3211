"""Monitoring's read side: the Prometheus exposition and the ops dashboard's charts.

Both render the one status read model, :class:`sync.service.status.Status`, read at
scrape time from the database (watermarks, passes, record errors, the outbox, the budget
guard) and the broker. Counters that
processes produce (CRM calls and errors, portal requests) are tallied in memory by
:mod:`sync.telemetry.counters` and added to the ``metric_counters`` table every few
seconds by :mod:`sync.service.flush`, so any web process's ``/metrics`` answers for
every worker and web process of the deployment.
"""
