"""`billing-sync connect check [--json]`: is the CRM connection set up right?

A checklist a person runs once while setting up, and ops run when something is wrong.
Each line is ✔ or ✖ with what to change; the exit code is 0 only when every line holds.
The checks run in order, and those that need a login are skipped (✖, "not checked")
when the login fails:

1. login by the configured flow: which flow, as whom, the org id, the instance;
2. the API version the org offers;
3. ``/limits``: daily API requests and event deliveries left;
4. every mapped object and field readable (the describes, one ``/composite`` call);
5. every field of a ``read_write`` mapping updateable;
6. the Streaming API and each listening mapping's change-event channel;
7. the integration user's View All Data (change events need it).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from sync.context import crm_from_settings
from sync.crm.client import CrmClient
from sync.crm.errors import CrmError
from sync.crm.streaming import StreamingClient, StreamingError
from sync.db.shapes import MIRRORED_SHAPES
from sync.events.channels import plan_channels
from sync.mapping.loader import default_mappings_dir, load_mappings
from sync.mapping.spec import SYSTEM_FIELDS, Direction, MappingError, MappingSet
from sync.settings import Settings, SettingsError

FLOW_NAMES = {
    "jwt": "JWT bearer",
    "client_credentials": "client credentials",
    "password": "username-password (legacy)",
}
MAX_DESCRIBES_PER_CALL = 25


@dataclass
class Check:
    """One line of the checklist."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        """The line as printed: mark, name, detail, and the fix when it failed."""
        mark = "\u2714" if self.ok else "\u2716"
        text = f"{mark} {self.name}: {self.detail}"
        if not self.ok and self.fix:
            text += f"\n    fix: {self.fix}"
        return text


def _login(crm: CrmClient, checks: list[Check]) -> bool:
    flow = FLOW_NAMES.get(crm.credentials.flow, crm.credentials.flow)
    try:
        crm.login()
        auth = crm.authentication
        assert auth is not None
        who, org = crm.credentials.who, "unknown"
        if auth.identity_url:
            identity = crm.identity()
            who = str(identity.get("username") or who)
            org = str(identity.get("organization_id") or org)
    except CrmError as exc:
        checks.append(
            Check("login", False, f"{flow} as {crm.credentials.who} failed", fix=exc.message)
        )
        return False
    detail = f"{flow} as {who}, org {org}, instance {auth.instance}"
    if crm.credentials.flow == "password":
        detail += " (this flow ends for Connected Apps on 2027-02-20: move to SALESFORCE_AUTH=jwt)"
    checks.append(Check("login", True, detail))
    return True


def _version(crm: CrmClient, checks: list[Check]) -> None:
    try:
        newer = crm.check_api_version()
    except SettingsError as exc:
        checks.append(Check("API version", False, str(exc), fix="set SALESFORCE_API_VERSION"))
        return
    detail = f"{crm.api_version} offered"
    if newer:
        detail += f" (the org also offers {newer})"
    checks.append(Check("API version", True, detail))


def _limits(crm: CrmClient, checks: list[Check]) -> None:
    limits = crm.limits()
    for key, label, fix in (
        (
            "DailyApiRequests",
            "daily API requests",
            "wait for the rolling 24 hours to free calls, or raise the org's API allocation",
        ),
        (
            "DailyDeliveredPlatformEvents",
            "event deliveries",
            "raise the org's event delivery allocation (add-on), or set BILLING_SYNC_EVENTS=off",
        ),
    ):
        entry = limits.get(key)
        if not isinstance(entry, dict):
            checks.append(Check(label, False, f"/limits has no {key}", fix=fix))
            continue
        remaining, most = entry.get("Remaining", 0), entry.get("Max", 0)
        checks.append(Check(label, remaining > 0, f"{remaining} of {most} left", fix=fix))


def _describes(crm: CrmClient, objects: list[str]) -> dict[str, dict[str, Any] | str]:
    """Object -> its describe, or the CRM's words when it refused; one call per 25."""
    out: dict[str, dict[str, Any] | str] = {}
    for start in range(0, len(objects), MAX_DESCRIBES_PER_CALL):
        chunk = objects[start : start + MAX_DESCRIBES_PER_CALL]
        items = crm.composite(
            [
                {
                    "method": "GET",
                    "url": crm.sobject_url(name, "describe"),
                    "referenceId": f"d{index}",
                }
                for index, name in enumerate(chunk)
            ]
        )
        for name, item in zip(chunk, items, strict=True):
            body = item.get("body")
            if item.get("httpStatusCode") == 200 and isinstance(body, dict):
                out[name] = body
            else:
                words = body[0].get("message") if isinstance(body, list) and body else body
                out[name] = str(words)
    return out


def _fields(crm: CrmClient, mappings: MappingSet, checks: list[Check]) -> None:
    objects = list(dict.fromkeys(m.crm_object for m in mappings))
    described = _describes(crm, objects)
    unreadable: list[str] = []
    not_updateable: list[str] = []
    for mapping in mappings:
        answer = described[mapping.crm_object]
        if isinstance(answer, str):
            unreadable.append(f"{mapping.crm_object} ({answer})")
            continue
        fields = {str(f.get("name", "")).lower(): f for f in answer.get("fields", [])}
        for name in mapping.crm_fields:
            spec = fields.get(name.lower())
            if spec is None:
                unreadable.append(f"{mapping.crm_object}.{name}")
            elif (
                mapping.direction is Direction.READ_WRITE
                and name not in SYSTEM_FIELDS
                and not spec.get("updateable")
                and not spec.get("createable")
            ):
                not_updateable.append(f"{mapping.crm_object}.{name}")
    checks.append(
        Check(
            "mapped objects and fields readable",
            not unreadable,
            f"{len(objects)} objects, {sum(len(m.crm_fields) for m in mappings)} fields"
            if not unreadable
            else "not readable: " + ", ".join(sorted(set(unreadable))),
            fix="give the integration user's permission set Read on these objects and "
            "field-level security Read on these fields",
        )
    )
    writable = [m for m in mappings if m.direction is Direction.READ_WRITE]
    checks.append(
        Check(
            "read_write fields updateable",
            not not_updateable,
            f"{len(writable)} read_write mappings"
            if not not_updateable
            else "not updateable: " + ", ".join(sorted(set(not_updateable))),
            fix="give the integration user's permission set Edit on these objects and "
            "field-level security Edit on these fields",
        )
    )


def _streaming(crm: CrmClient, mappings: MappingSet, checks: list[Check]) -> None:
    plan = plan_channels(mappings)
    client = StreamingClient(crm)
    try:
        answers = client.start(dict.fromkeys(plan, -1))
    except (StreamingError, CrmError) as exc:
        checks.append(
            Check(
                "Streaming API",
                False,
                str(exc),
                fix="enable the Streaming API for the org and API Enabled for the user",
            )
        )
        return
    # The CometD session ends by itself if the disconnect fails; the answers are in.
    with contextlib.suppress(CrmError):
        client.disconnect()
    checks.append(Check("Streaming API", True, "handshake accepted"))
    refused = [f"{a.channel} ({a.error})" for a in answers if a.outcome.value == "refused"]
    checks.append(
        Check(
            "change-event channels",
            not refused,
            f"{len(plan)} channels subscribed" if not refused else "refused: " + ", ".join(refused),
            fix="select these objects under Setup > Change Data Capture (5 entities without "
            "the add-on), or set `events: false` on their mappings",
        )
    )


def _view_all_data(crm: CrmClient, checks: list[Check]) -> None:
    fix = (
        "give the integration user View All Data (a permission set): change events are "
        "delivered only to users who may see every record"
    )
    try:
        rows = crm.query_all("SELECT PermissionsViewAllData FROM UserPermissionAccess")
    except CrmError as exc:
        checks.append(Check("View All Data", False, f"cannot read it: {exc.message}", fix=fix))
        return
    granted = bool(rows) and rows[0].get("PermissionsViewAllData") is True
    checks.append(
        Check(
            "View All Data",
            granted,
            "granted to the integration user" if granted else "not granted",
            fix=fix,
        )
    )


def run_checks(crm: CrmClient, mappings: MappingSet) -> list[Check]:
    """Every check of the list, in order; the later ones only after a login."""
    checks: list[Check] = []
    if not _login(crm, checks):
        for name in ("API version", "limits", "fields", "streaming", "View All Data"):
            checks.append(Check(name, False, "not checked: the login failed"))
        return checks
    steps: list[tuple[str, Callable[[], None]]] = [
        ("API version", lambda: _version(crm, checks)),
        ("limits", lambda: _limits(crm, checks)),
        ("fields", lambda: _fields(crm, mappings, checks)),
        ("Streaming API", lambda: _streaming(crm, mappings, checks)),
        ("View All Data", lambda: _view_all_data(crm, checks)),
    ]
    for name, step in steps:
        try:
            step()
        except CrmError as exc:
            checks.append(Check(name, False, exc.message, fix="see the message; run it again"))
        if name == "API version" and not checks[-1].ok:
            # Every later request names the version: they would only fail the same way.
            checks.extend(
                Check(n, False, "not checked: the API version is not offered") for n, _ in steps[1:]
            )
            break
    return checks


def connect_command(args: argparse.Namespace, settings: Settings) -> int:
    """Print the checklist; exit 0 only when every line is ✔."""
    try:
        mappings = load_mappings(default_mappings_dir(settings.mappings_dir), MIRRORED_SHAPES)
        crm = crm_from_settings(settings)
    except (SettingsError, MappingError) as exc:
        sys.stderr.write(f"billing-sync connect check: {exc}\n")
        return 2
    with crm:
        checks = run_checks(crm, mappings)
    if args.json:
        sys.stdout.write(
            orjson.dumps(
                {"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]},
                option=orjson.OPT_INDENT_2,
            ).decode()
            + "\n"
        )
    else:
        sys.stdout.write("\n".join(c.line() for c in checks) + "\n")
    return 0 if all(c.ok for c in checks) else 1
