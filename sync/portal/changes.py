"""The Account tab and every change a Billing Admin makes: stage, discard, accept.

Every state-changing request is a POST that passes, in this order: the signed session
and the *current* Billing Admin role (as every page does), the session's CSRF token, and
the Origin (or Referer) of the request. Only then is anything staged. Nothing here talks
to the CRM: an Accept writes the change set to the outbox and asks for a push.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, Engine
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from sync.access import is_crm_id
from sync.changes import outbox
from sync.changes.accept import Acceptance, accept, restage
from sync.changes.plan import WriteTargets
from sync.changes.purchases import pending_summary, price_changes
from sync.changes.rules import ChangeKind, ChangeState
from sync.changes.staging import (
    NotFoundError,
    StagingError,
    discard,
    list_staged,
    stage_account_fields,
    stage_card,
    stage_method_change,
)
from sync.changes.terms import Terms, load_terms
from sync.context import field_limits
from sync.db.shapes import MIRRORED_SHAPES
from sync.mapping.loader import default_mappings_dir, load_mappings
from sync.payments import CardError, PaymentGateway, load_gateway
from sync.portal import queries
from sync.portal.base import Clock, PortalBase, Viewer, utc_now
from sync.portal.forms import ACCOUNT_FIELDS, CardForm, parse_account_form, parse_card_form
from sync.portal.links import DEFAULT_SESSION_TTL
from sync.settings import Settings

log = logging.getLogger("sync.portal")

#: What the admin reads for each state of a change set.
STATE_LABELS = {
    ChangeState.ACCEPTED: "Sending",
    ChangeState.SENDING: "Sending",
    ChangeState.APPLIED: "Applied",
    ChangeState.CONFLICT: "Conflict",
    ChangeState.FAILED: "Failed",
    ChangeState.CANCELLED: "Cancelled",
}
NOTICES = {
    "staged": "Change staged. It takes effect only after you accept it below.",
    "discarded": "Change discarded.",
    "accepted": "Changes accepted. They are being sent to the billing system.",
    "restaged": "The changes were staged again with the billing system's current values.",
}
RECENT_SETS = 10


class Forbidden(Exception):
    """A POST without a valid CSRF token or from another origin."""


class ChangePages(PortalBase):
    """The Account tab with its forms, and the POST handlers of the change flow."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        session_ttl: float = DEFAULT_SESSION_TTL,
        clock: Clock = utc_now,
        push_trigger: Callable[[], None] | None = None,
        gateway: PaymentGateway | None = None,
    ) -> None:
        """Load the terms, the payment gateway and the write targets (from the mappings).

        Raises:
            SettingsError: the terms file or the gateway cannot be loaded.
            MappingError: the mapping files are unusable.
            PlanError: a table the portal writes has no mapping.
        """
        super().__init__(settings, engine, session_ttl=session_ttl, clock=clock)
        self.terms: Terms = load_terms(settings.terms_file)
        self.gateway: PaymentGateway = gateway or load_gateway(settings.payment_gateway)
        self.targets = WriteTargets.from_mappings(
            load_mappings(default_mappings_dir(settings.mappings_dir), MIRRORED_SHAPES)
        )
        self.push_trigger = push_trigger

    def page(self, viewer: Viewer, name: str, status_code: int = 200, **context: Any) -> Response:
        """A portal page, with the banner of pending changes on every tab."""
        context.setdefault("pending_count", self.pending_count(viewer))
        return super().page(viewer, name, status_code, **context)

    # --- checks every POST passes ---------------------------------------------------

    def origin_ok(self, request: Request) -> bool:
        """True when the request comes from the portal's own pages (Origin or Referer)."""
        source = request.headers.get("origin") or request.headers.get("referer")
        if not source:
            return True  # not a browser: the CSRF token alone decides
        parts = urlsplit(source)
        origin = f"{parts.scheme}://{parts.netloc}"
        own = f"{request.url.scheme}://{request.url.netloc}"
        public = urlsplit(self.settings.public_url)
        return origin in (own, f"{public.scheme}://{public.netloc}")

    def _post_viewer(self, request: Request, conn: Connection, form: FormData) -> Viewer:
        viewer = self.authorize(request, conn)
        if not self.csrf_ok(viewer.session, form) or not self.origin_ok(request):
            log.warning(
                "portal: refused a POST to %s from contact %s (CSRF token or origin)",
                request.url.path,
                viewer.contact.sfid,
            )
            raise Forbidden
        return viewer

    async def _post(
        self, request: Request, work: Callable[[Request, Connection, Viewer, FormData], Response]
    ) -> Response:
        form = await request.form()

        def run() -> Response:
            with self.engine.begin() as conn:
                try:
                    viewer = self._post_viewer(request, conn, form)
                except Forbidden:
                    return self.message(
                        403, "This form has expired", "Reload the page and try again."
                    )
                return work(request, conn, viewer, form)

        return await run_in_threadpool(run)

    # --- the Account tab ------------------------------------------------------------

    def account(self, request: Request) -> Response:
        """Account details, payment methods, pending changes, terms and Accept."""
        notice = NOTICES.get(request.query_params.get("done", ""))
        with self.engine.connect() as conn:
            viewer, _ = self.scoped(request, conn)
            return self.account_page(
                conn, viewer, notice=notice, add_card=request.query_params.get("add") == "card"
            )

    def account_page(
        self,
        conn: Connection,
        viewer: Viewer,
        *,
        status_code: int = 200,
        notice: str | None = None,
        errors: dict[str, str] | None = None,
        submitted: dict[str, str] | None = None,
        add_card: bool = False,
        card: CardForm | None = None,
    ) -> Response:
        """Render the Account tab (with the errors of a refused form, if any)."""
        assert viewer.account is not None
        account_sfid = viewer.account.sfid
        account = queries.get_account(conn, account_sfid)
        if account is None:
            return self.not_found(viewer)
        methods = queries.payment_methods(conn, account_sfid)
        summary = queries.purchased_products(conn, account_sfid)
        staged = list_staged(conn, viewer.contact.sfid, account_sfid)
        purchase = pending_summary(conn, account_sfid, staged, summary.recurring_total)
        price_notes = price_changes(conn, account_sfid, staged)
        sets = outbox.list_sets(conn, account_sfid=account_sfid, limit=RECENT_SETS)
        history = outbox.list_sets(conn, account_sfid=account_sfid, limit=50)
        staged_fields = {s.target: s.payload for s in staged if s.kind is ChangeKind.ACCOUNT_FIELD}
        fields = []
        for f in ACCOUNT_FIELDS:
            mirrored = getattr(account, f.column)
            pending = staged_fields.get(f.column)
            shown = pending["new"] if pending else mirrored
            value = (submitted or {}).get(f.name, shown or "")
            seen = pending["saw"] if pending else mirrored
            fields.append(
                {
                    "name": f.name,
                    "label": f.label,
                    "value": value,
                    "seen": shown or "",
                    "mirrored": seen,
                    "error": (errors or {}).get(f.name),
                    "kind": f.kind,
                }
            )
        pending_targets = {(s.kind, s.target) for s in staged}
        default_method = next((m for m in methods if m.is_default), None)
        recurring_count = sum(1 for a in summary.assets if a.price_type == queries.RECURRING)
        return self.page(
            viewer,
            "account.html",
            status_code,
            tab="account",
            account=account,
            fields=fields,
            methods=methods,
            summary=summary,
            purchase=purchase,
            price_notes=price_notes,
            recurring_count=recurring_count,
            default_method=default_method,
            staged=staged,
            pending_targets=pending_targets,
            sets=sets,
            history=[s for s in history if s.state is not ChangeState.CANCELLED],
            state_labels=STATE_LABELS,
            sending=any(not s.state.final for s in sets),
            terms=self.terms,
            notice=notice,
            errors=errors or {},
            add_card=add_card or card is not None,
            card=card,
            ChangeKind=ChangeKind,
            today=self.clock().date(),
        )

    def _done(self, what: str) -> Response:
        return RedirectResponse(f"/portal/account?done={what}#pending", 303)

    # --- staging ----------------------------------------------------------------------

    async def update_account(self, request: Request) -> Response:
        """The Update Account form: stage the account fields that changed."""

        def work(request: Request, conn: Connection, viewer: Viewer, form: FormData) -> Response:
            assert viewer.account is not None
            limits = field_limits(self.engine).get("accounts", {})
            edits, problems = parse_account_form(form, limits)
            submitted = {f.name: str(form.get(f.name) or "") for f in ACCOUNT_FIELDS}
            if problems:
                return self.account_page(
                    conn, viewer, status_code=400, errors=problems, submitted=submitted
                )
            try:
                stage_account_fields(
                    conn, viewer.contact.sfid, viewer.account.sfid, edits, self.clock()
                )
            except StagingError as exc:
                return self.account_page(
                    conn, viewer, status_code=409, errors={"form": str(exc)}, submitted=submitted
                )
            return self._done("staged")

        return await self._post(request, work)

    async def add_card(self, request: Request) -> Response:
        """The Add Card form: tokenize the card, stage the token (never the number or CVC)."""

        def work(request: Request, conn: Connection, viewer: Viewer, form: FormData) -> Response:
            assert viewer.account is not None
            today = self.clock().date()
            details, safe, problems = parse_card_form(form, today)
            if details is not None:
                try:
                    token = self.gateway.tokenize(details, today=today)
                except CardError as exc:
                    problems = {"card": str(exc)}
                else:
                    try:
                        stage_card(
                            conn,
                            viewer.contact.sfid,
                            viewer.account.sfid,
                            token,
                            is_default=safe.is_default,
                            is_one_time=safe.is_one_time,
                            now=self.clock(),
                        )
                    except StagingError as exc:
                        problems = {"card": str(exc)}
            if problems:
                return self.account_page(conn, viewer, status_code=400, errors=problems, card=safe)
            return self._done("staged")

        return await self._post(request, work)

    async def make_default(self, request: Request) -> Response:
        """Make one of the account's payment methods the default."""
        return await self._method_change(request, ChangeKind.MAKE_DEFAULT)

    async def remove_method(self, request: Request) -> Response:
        """Remove one of the account's payment methods (not the default)."""
        return await self._method_change(request, ChangeKind.REMOVE_METHOD)

    async def _method_change(self, request: Request, kind: ChangeKind) -> Response:
        sfid = request.path_params["sfid"]

        def work(request: Request, conn: Connection, viewer: Viewer, form: FormData) -> Response:
            assert viewer.account is not None
            if not is_crm_id(sfid):
                return self.not_found(viewer)
            try:
                stage_method_change(
                    conn, viewer.contact.sfid, viewer.account.sfid, kind, sfid, self.clock()
                )
            except NotFoundError:
                return self.not_found(viewer)
            except StagingError as exc:
                return self.account_page(
                    conn, viewer, status_code=409, errors={"methods": str(exc)}
                )
            return self._done("staged")

        return await self._post(request, work)

    async def discard_change(self, request: Request) -> Response:
        """Discard one staged change."""
        raw = request.path_params["id"]

        def work(request: Request, conn: Connection, viewer: Viewer, form: FormData) -> Response:
            assert viewer.account is not None
            try:
                discard(conn, viewer.contact.sfid, viewer.account.sfid, int(raw), self.clock())
            except (NotFoundError, ValueError):
                return self.not_found(viewer)
            return self._done("discarded")

        return await self._post(request, work)

    async def accept_changes(self, request: Request) -> Response:
        """Accept: the typed first and last name turn the staged changes into a change set."""

        def work(request: Request, conn: Connection, viewer: Viewer, form: FormData) -> Response:
            assert viewer.account is not None
            acceptance = Acceptance(
                contact=viewer.contact,
                account_sfid=viewer.account.sfid,
                first_name=str(form.get("first_name") or ""),
                last_name=str(form.get("last_name") or ""),
                terms=self.terms,
                client_ip=request.client.host if request.client else None,
                user_agent=request.headers.get("user-agent"),
            )
            try:
                set_id = accept(conn, acceptance, self.targets, self.clock())
            except StagingError as exc:
                return self.account_page(conn, viewer, status_code=400, errors={"accept": str(exc)})
            log.info(
                "portal: contact %s accepted change set %s for account %s",
                viewer.contact.sfid,
                set_id,
                viewer.account.sfid,
            )
            return self._done("accepted")

        response = await self._post(request, work)
        if response.status_code == 303 and self.push_trigger is not None:
            # after the commit: the push must find the set
            await run_in_threadpool(self._trigger_push)
        return response

    def _trigger_push(self) -> None:
        assert self.push_trigger is not None
        try:
            self.push_trigger()
        except Exception:  # the periodic push sends the set anyway
            log.exception("portal: could not start the push; the periodic push sends it")

    async def restage_set(self, request: Request) -> Response:
        """Stage again the changes of a conflicted or failed change set, at the CRM's values now."""
        raw = request.path_params["id"]

        def work(request: Request, conn: Connection, viewer: Viewer, form: FormData) -> Response:
            assert viewer.account is not None
            try:
                restage(
                    conn,
                    viewer.contact.sfid,
                    viewer.account.sfid,
                    int(raw),
                    self.targets,
                    self.clock(),
                )
            except (NotFoundError, ValueError):
                return self.not_found(viewer)
            return self._done("restaged")

        return await self._post(request, work)

    def pending_count(self, viewer: Viewer) -> int:
        """How many changes the viewer has staged for the chosen account."""
        if viewer.account is None:
            return 0
        with self.engine.connect() as conn:
            return len(list_staged(conn, viewer.contact.sfid, viewer.account.sfid))
