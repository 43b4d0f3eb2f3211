"""The web process: the Billing Portal, the ops dashboard, ``/metrics`` and the probes.

Where each page lives:

- :mod:`sync.portal.app`: :func:`~sync.portal.app.create_app` wires every route below.
- :mod:`sync.portal.kit`: the one :class:`~sync.portal.kit.PortalKit` every tab holds:
  the database, the templates, the session cookie, the access check on every request,
  the CSRF and Origin checks on every POST, and the shared pages (401 sign-in, 403
  coming soon, 404, messages).
- :mod:`sync.portal.tabs`: one module per tab of the portal (sign-in and account
  choice, Purchased Products with its purchase forms, Orders, Account, the change flow
  of Accept, Invoices); see its docstring for their routes.
- :mod:`sync.portal.ops`: the ops dashboard ``/ops/`` (behind ``BILLING_SYNC_OPS_TOKEN``).
- :mod:`sync.portal.monitoring`: ``/metrics`` and the request metrics and ids.
- :mod:`sync.portal.health`: ``/healthz`` and ``/readyz``.
- :mod:`sync.portal.rendering`: the templates (``templates/``) and static files
  (``static/``) of all of them.

Beside them: :mod:`~sync.portal.queries` (the read side of the mirrored tables),
:mod:`~sync.portal.views` (what pages show), :mod:`~sync.portal.filters` and
:mod:`~sync.portal.forms` (what requests ask), :mod:`~sync.portal.formatting` and
:mod:`~sync.portal.pdf` (how it is written), :mod:`~sync.portal.links` (signed links and
sessions), :mod:`~sync.portal.middleware` (security headers, timing, error page),
:mod:`~sync.portal.server` (uvicorn) and :mod:`~sync.portal.cli` (``portal-link``).

The portal never calls the CRM: what a Billing Admin accepts goes to the outbox, and
the push sends it.
"""
