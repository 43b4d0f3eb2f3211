"""The sandbox CRM: a local server that answers as a current Salesforce org does.

REST (query, sObjects, composite, describe, limits), SOAP login, OAuth, Bulk API 2.0 and
CometD change events over real HTTP, backed by SQLite, with seeded Apttus billing data
and fault injection under ``/_sandbox``. It stands apart from the library: only its own
package imports it; everything else reaches it over sockets
(:mod:`sync.commands.launcher` starts it as ``billing-sync sandbox``).
"""
