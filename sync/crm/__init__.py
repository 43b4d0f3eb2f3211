"""The only code that talks to the CRM.

- :mod:`sync.crm.client`: :class:`~sync.crm.client.CrmClient`, typed, retried, metered
  access to the REST API (queries, /composite, records, sObject Collections).
- :mod:`sync.crm.composite`: typed calls over /composite (``query_many``,
  ``describe_many``, ``get_many``) and ``write_atomic``, which sends a
  :mod:`sync.crm.graph` :class:`~sync.crm.graph.AtomicWrite` as one /composite/graph.
- :mod:`sync.crm.graph`: the atomic write builder, the Composite Graph limits, typed
  per-node results.
- :mod:`sync.crm.transport`: login, sending, sorting failures, retrying, metering.
- :mod:`sync.crm.errors`: the one classification table and the exceptions.
- :mod:`sync.crm.retry`: the one retry policy.
- :mod:`sync.crm.auth`: logging in (simple-salesforce's SOAP login).
- :mod:`sync.crm.session`: the HTTP session (instance-URL rewriting, default timeout).
- :mod:`sync.crm.soql`: building SOQL safely; the CRM's datetime formats.
- :mod:`sync.crm.answers`: the shapes of the CRM's answers; :mod:`sync.crm.usage`: the
  org's API allowance.
"""
