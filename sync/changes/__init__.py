"""The write side: a Billing Admin's staged changes, their acceptance, and the outbox.

Every change the portal makes goes through here: it is *staged* (visible, discardable),
becomes real only when the admin accepts with their own first and last name (one
:class:`~sync.db.models.ChangeSet` with its items, in one transaction), and then waits in
the outbox for the push (:mod:`sync.push`). Pure rules (phone format, conflict decision,
external keys, wording) live in :mod:`sync.changes.rules`.
"""
