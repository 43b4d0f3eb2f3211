"""The way into the portal: the signed link, sign-out, and the account chooser."""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from sync.portal.kit import PortalKit
from sync.portal.links import InvalidToken

log = logging.getLogger("sync.portal")


class Entry:
    """Sign-in by signed link, sign-out, and the choice of account."""

    def __init__(self, kit: PortalKit) -> None:
        self.kit = kit

    def enter(self, request: Request) -> Response:
        """Open a signed link: start a session and go to the portal."""
        kit = self.kit
        token = request.query_params.get("token", "")
        try:
            link = kit.signer.verify_link_token(token, now=kit.clock())
        except InvalidToken as exc:
            log.info("portal: link refused (%s)", exc)
            return kit.sign_in_page(request)
        session = kit.signer.new_session(link.contact_sfid, now=kit.clock())
        # Redirect so the token leaves the address bar and the browser history.
        response = RedirectResponse("/portal/", 303)
        kit.set_session_cookie(request, response, session)
        return response

    async def sign_out(self, request: Request) -> Response:
        """Forget the session (a POST with the session's CSRF token)."""
        kit = self.kit
        try:
            session = kit.signer.load_session(
                request.cookies.get(kit.cookie_name(request)), now=kit.clock()
            )
        except InvalidToken:
            return kit.sign_in_page(request)
        form = await request.form()
        if not kit.csrf_ok(session, form):
            return kit.form_expired()
        response = kit.message(
            200,
            "You have signed out",
            "Open the Billing Portal from the community portal to sign in again.",
        )
        kit.clear_session_cookie(request, response)
        return response

    def choose_account_page(self, request: Request) -> Response:
        """The list of accounts a contact is Billing Admin of."""
        viewer = self.kit.authorize(request, need_account=False)
        return self.kit.page(viewer, "choose_account.html")

    async def choose_account(self, request: Request) -> Response:
        """Remember the chosen account in the session (POST with CSRF token)."""
        kit = self.kit
        viewer = await run_in_threadpool(kit.authorize, request, need_account=False)
        form = await request.form()
        account = form.get("account")
        if not kit.csrf_ok(viewer.session, form):
            return kit.form_expired()
        if not isinstance(account, str) or account not in {a.sfid for a in viewer.accounts}:
            return kit.not_found(viewer)
        response = RedirectResponse("/portal/", 303)
        kit.set_session_cookie(request, response, viewer.session.with_account(account))
        return response
