"""The portal's tabs: one module each, sharing the app's one :class:`~sync.portal.kit.PortalKit`.

- :mod:`~sync.portal.tabs.entry`: the signed link (``/portal/enter``), sign-out and the
  account chooser (``/portal/accounts``).
- :mod:`~sync.portal.tabs.products`: Purchased Products (``/portal/``), one product
  (``/portal/products/{sfid}``), and the purchase forms Add licenses and Add Credit
  (``/portal/purchases/...``).
- :mod:`~sync.portal.tabs.orders`: Orders (``/portal/orders``), one order, and the orders
  accepted here that the mirror has not caught up with yet.
- :mod:`~sync.portal.tabs.account`: Account (``/portal/account``) with its forms (account
  details, cards, default and removed payment methods) and one payment method.
- :mod:`~sync.portal.tabs.changes`: the change flow shown on the Account tab: Accept,
  discard one staged change, stage a failed change set again.
- :mod:`~sync.portal.tabs.invoices`: Invoices (``/portal/invoices``), one invoice, its
  print page and its PDF.

Detail routes look ids up within the authorised account only, so another account's ids
answer 404, exactly like ids that do not exist. Nothing here talks to the CRM: an Accept
writes the change set to the outbox and asks for a push.
"""
