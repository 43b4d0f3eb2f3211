"""`billing-sync push [--json]`: one pass over accepted changes.

Accepted changes reach the CRM through an outbox that the portal's change flow fills
(a Billing Admin's edits, confirmed by typing first and last name). This installation
has no such flow yet, so there is never anything to push: the command says so and
succeeds, and its JSON has the shape monitoring scripts can already rely on.
"""

from __future__ import annotations

import argparse
import json
import sys

from sync.settings import Settings

MESSAGE = (
    "nothing to push: there are no accepted changes. Accepted changes are queued by the "
    "portal's change flow (edit, review, accept with first and last name), which this "
    "installation does not include yet."
)


def push_command(args: argparse.Namespace, settings: Settings) -> int:
    """Report that no accepted changes exist; exit 0."""
    if args.json:
        document = {"pushed": 0, "failed": 0, "conflicts": 0, "pending": 0, "message": MESSAGE}
        sys.stdout.write(json.dumps(document) + "\n")
    else:
        sys.stdout.write(f"billing-sync push: {MESSAGE}\n")
    return 0
