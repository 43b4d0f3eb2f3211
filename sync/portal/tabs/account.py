"""The Account tab: account details, payment methods, pending changes, terms and Accept.

Its forms stage changes (account fields, a new card, the default payment method, a
removed payment method); nothing is real until Accept (:mod:`sync.portal.tabs.changes`).
A card number and CVC go to the payment gateway and only its token is staged.
"""

from __future__ import annotations

from sqlalchemy import Connection
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from sync.access import is_crm_id
from sync.changes import outbox
from sync.changes.purchases import pending_summary, price_changes
from sync.changes.rules import ChangeKind, ChangeState
from sync.changes.staging import (
    NotFoundError,
    StagingError,
    list_staged,
    stage_account_fields,
    stage_card,
    stage_method_change,
)
from sync.changes.terms import Terms
from sync.db import service_state
from sync.payments import CardError, PaymentGateway
from sync.portal import queries
from sync.portal.forms import ACCOUNT_FIELDS, CardForm, parse_account_form, parse_card_form
from sync.portal.kit import PortalKit, Viewer

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


def done(what: str) -> Response:
    """Back to the pending changes on the Account tab, with the notice ``what``."""
    return RedirectResponse(f"/portal/account?done={what}#pending", 303)


class AccountTab:
    """The Account tab with its forms, and one payment method."""

    def __init__(self, kit: PortalKit, terms: Terms, gateway: PaymentGateway) -> None:
        self.kit = kit
        self.terms = terms
        self.gateway = gateway

    def account(self, request: Request) -> Response:
        """Account details, payment methods, pending changes, terms and Accept."""
        notice = NOTICES.get(request.query_params.get("done", ""))
        with self.kit.engine.connect() as conn:
            viewer, _ = self.kit.scoped(request, conn)
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
            return self.kit.not_found(viewer)
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
        return self.kit.page(
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
            today=self.kit.clock().date(),
        )

    def payment_method(self, request: Request) -> Response:
        """One payment method (masked)."""
        return self.kit.record_page(
            request,
            queries.get_payment_method,
            lambda viewer, method, pending: self.kit.page(
                viewer, "payment_method.html", tab="account", method=method, pending_count=pending
            ),
        )

    # --- staging ----------------------------------------------------------------------

    async def update_account(self, request: Request) -> Response:
        """The Update Account form: stage the account fields that changed."""

        def work(request: Request, conn: Connection, viewer: Viewer, form: FormData) -> Response:
            assert viewer.account is not None
            limits = service_state.field_limits(self.kit.engine).get("accounts", {})
            edits, problems = parse_account_form(form, limits)
            submitted = {f.name: str(form.get(f.name) or "") for f in ACCOUNT_FIELDS}
            if problems:
                return self.account_page(
                    conn, viewer, status_code=400, errors=problems, submitted=submitted
                )
            try:
                stage_account_fields(
                    conn, viewer.contact.sfid, viewer.account.sfid, edits, self.kit.clock()
                )
            except StagingError as exc:
                return self.account_page(
                    conn, viewer, status_code=409, errors={"form": str(exc)}, submitted=submitted
                )
            return done("staged")

        return await self.kit.post(request, work)

    async def add_card(self, request: Request) -> Response:
        """The Add Card form: tokenize the card, stage the token (never the number or CVC)."""

        def work(request: Request, conn: Connection, viewer: Viewer, form: FormData) -> Response:
            assert viewer.account is not None
            today = self.kit.clock().date()
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
                            now=self.kit.clock(),
                        )
                    except StagingError as exc:
                        problems = {"card": str(exc)}
            if problems:
                return self.account_page(conn, viewer, status_code=400, errors=problems, card=safe)
            return done("staged")

        return await self.kit.post(request, work)

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
                return self.kit.not_found(viewer)
            try:
                stage_method_change(
                    conn, viewer.contact.sfid, viewer.account.sfid, kind, sfid, self.kit.clock()
                )
            except NotFoundError:
                return self.kit.not_found(viewer)
            except StagingError as exc:
                return self.account_page(
                    conn, viewer, status_code=409, errors={"methods": str(exc)}
                )
            return done("staged")

        return await self.kit.post(request, work)
