"""``billing-sync portal-link CONTACT``: print a signed portal URL for a contact."""

from __future__ import annotations

import argparse
import sys

from sync.access import ContactLookupError, billing_admin_accounts, find_contact
from sync.db.engine import current_revision, make_engine
from sync.portal.links import MAX_LINK_TTL, signed_link
from sync.settings import Settings, SettingsError


def _fail(message: str) -> int:
    sys.stderr.write(f"billing-sync portal-link: {message}\n")
    return 2


def portal_link_command(args: argparse.Namespace, settings: Settings) -> int:
    """Print the signed URL that opens the portal as ``args.contact`` (Id or email).

    The URL is based on ``BILLING_SYNC_PUBLIC_URL`` and valid for ``args.ttl`` seconds.
    Exit 0 with the URL on stdout; exit 2 with a message on stderr when the secret is
    missing, the database has no schema, or no single contact matches.
    """
    try:
        settings.require_portal_secret()
    except SettingsError as exc:
        return _fail(str(exc))
    ttl = float(args.ttl)
    if not 0 < ttl <= MAX_LINK_TTL:
        return _fail(f"--ttl must be between 0 and {MAX_LINK_TTL:g} seconds")
    engine = make_engine(settings.database_url)
    try:
        if current_revision(engine) is None:
            return _fail(
                "the billing database has no schema yet: run `billing-sync db upgrade` "
                "and `billing-sync sync` first"
            )
        try:
            contact = find_contact(engine, args.contact)
        except ContactLookupError as exc:
            return _fail(str(exc))
        with engine.connect() as conn:
            accounts = billing_admin_accounts(conn, contact.sfid, settings.billing_admin_role)
    finally:
        engine.dispose()
    url = signed_link(settings, contact.sfid, ttl=ttl)
    sys.stdout.write(url + "\n")
    if not accounts:
        sys.stderr.write(
            f"note: {contact.display_name} ({contact.sfid}) is not a "
            f"{settings.billing_admin_role} of any account: the link shows the "
            "coming-soon page\n"
        )
    return 0
