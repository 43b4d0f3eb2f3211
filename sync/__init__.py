"""billing-sync, the library: everything that is not Celery plumbing.

From the top floor down: the commands (:mod:`sync.commands`) and the web app
(:mod:`sync.portal`); monitoring's read side and the change-event listener; the
background service (:mod:`sync.service`, with the one status read model); the pull and
the push; the write side's rules (:mod:`sync.changes`), Bulk loads and the unit of work's
context; access and payments; the CRM door (:mod:`sync.crm`) and the mappings; the
database (:mod:`sync.db`); and on the ground floor the instruments (:mod:`sync.telemetry`),
the clock and the settings. :mod:`sync.sandbox` is the local CRM, apart from the rest.
The README's "Layout" names each part; pyproject.toml's import contracts keep the floors.
"""
