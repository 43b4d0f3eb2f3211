"""The portal's shared kit: who is asking, what they may see, and how pages are drawn.

Every tab handler of :mod:`sync.portal.tabs` holds the one :class:`PortalKit` of the
app and goes through :meth:`PortalKit.authorize` on every request: the signed session
cookie says who the person is; the *current* mirrored roles say what they may see. A
Billing Admin sees the chosen account; anyone else gets the "new billing portal coming
soon" page (403) and no billing data; a missing or bad cookie gets the "sign in through
the community portal" page (401).

Every state-changing request goes through :meth:`PortalKit.post`, which checks, in this
order: the signed session and the *current* Billing Admin role, the session's CSRF
token, and the Origin (or Referer) of the request. Only then does the handler's work run.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, Engine
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from sync.access import AdminAccount, ContactRef, contact_access, is_crm_id
from sync.changes.staging import count_staged
from sync.clock import utc_now
from sync.portal.links import DEFAULT_SESSION_TTL, InvalidToken, PortalSession, PortalSigner
from sync.portal.rendering import Templates
from sync.settings import Settings
from sync.telemetry import counters

log = logging.getLogger("sync.portal")

COOKIE_NAME = "billing_portal"
# Over https the cookie gets the __Host- prefix: browsers then insist on Secure, Path=/
# and no Domain, so no sibling subdomain can plant or overwrite it.
SECURE_COOKIE_NAME = "__Host-billing_portal"

Clock = Callable[[], dt.datetime]


@dataclass(frozen=True)
class Viewer:
    """The signed-in Billing Admin and the account this request is about."""

    session: PortalSession
    contact: ContactRef
    accounts: list[AdminAccount]
    account: AdminAccount | None


class Denied(Exception):
    """Stops a request with a ready response (401, 403, or a redirect to the chooser)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class Forbidden(Exception):
    """A POST without a valid CSRF token or from another origin."""


#: The work of a POST handler, run once every check has passed, inside the request's
#: database transaction.
PostWork = Callable[[Request, Connection, Viewer, FormData], Response]


class PortalKit:
    """What every portal page needs: the database, templates, the session and the gate."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        templates: Templates,
        *,
        session_ttl: float = DEFAULT_SESSION_TTL,
        clock: Clock = utc_now,
    ) -> None:
        """Hold the settings, the database and the templates; sign with the portal secret.

        Raises:
            SettingsError: ``BILLING_SYNC_PORTAL_SECRET`` is unset or too short.
        """
        self.settings = settings
        self.engine = engine
        self.templates = templates
        self.signer = PortalSigner(settings.require_portal_secret(), session_ttl=session_ttl)
        self.clock = clock
        self.public_https = settings.public_url.startswith("https://")

    # --- rendering --------------------------------------------------------------------

    def render(self, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        """Render a template into an HTML response."""
        context.setdefault("viewer", None)
        context.setdefault("tab", None)
        context.setdefault("csrf_token", "")
        context.setdefault("pending_count", 0)
        return self.templates.response(name, status_code, **context)

    def page(self, viewer: Viewer, name: str, status_code: int = 200, **context: Any) -> Response:
        """Render a page of the signed-in portal: tabs, pending changes, sign-out form."""
        if "pending_count" not in context:
            context["pending_count"] = self.pending_count(viewer)
        return self.render(
            name,
            status_code,
            viewer=viewer,
            csrf_token=self.signer.csrf_token(viewer.session),
            **context,
        )

    def pending_count(self, viewer: Viewer, conn: Connection | None = None) -> int:
        """How many changes the viewer has staged for the chosen account.

        Pages that read the database pass their connection (one checkout per request);
        without one, a connection is opened for this count.
        """
        if viewer.account is None:
            return 0
        if conn is not None:
            return count_staged(conn, viewer.contact.sfid, viewer.account.sfid)
        with self.engine.connect() as own:
            return count_staged(own, viewer.contact.sfid, viewer.account.sfid)

    def message(self, status_code: int, heading: str, *paragraphs: str) -> HTMLResponse:
        """A plain page with a heading and a few sentences."""
        return self.render("message.html", status_code, heading=heading, paragraphs=paragraphs)

    def form_expired(self) -> HTMLResponse:
        """403: a form whose CSRF token (or origin) is not the session's."""
        return self.message(403, "This form has expired", "Reload the page and try again.")

    def sign_in_page(self, request: Request) -> Response:
        """401: the person must come in through the community portal."""
        counters.BUFFER.inc(counters.PORTAL_DENIED, {"reason": "unauthenticated"})
        response = self.message(
            401,
            "Sign in through the community portal",
            "Your sign-in link is missing, has expired or is not valid.",
            "Open the Billing Portal from the community portal to sign in again.",
        )
        if self.cookie_name(request) in request.cookies:
            self.clear_session_cookie(request, response)
        return response

    def coming_soon(self) -> HTMLResponse:
        """403: the page everyone who is not a Billing Admin sees, and nothing else."""
        counters.BUFFER.inc(counters.PORTAL_DENIED, {"reason": "not_admin"})
        return self.render("coming_soon.html", 403)

    def not_found(self, viewer: Viewer) -> Response:
        """404 inside the portal layout, showing nothing about what was asked for."""
        counters.BUFFER.inc(counters.PORTAL_DENIED, {"reason": "not_found"})
        return self.page(viewer, "not_found.html", 404, tab=None)

    # --- sessions ---------------------------------------------------------------------

    def is_secure(self, request: Request) -> bool:
        """True when the cookie must be Secure (https request or https public URL)."""
        return request.url.scheme == "https" or self.public_https

    def cookie_name(self, request: Request) -> str:
        """The session cookie's name (``__Host-`` prefixed when secure)."""
        return SECURE_COOKIE_NAME if self.is_secure(request) else COOKIE_NAME

    def set_session_cookie(
        self, request: Request, response: Response, session: PortalSession
    ) -> None:
        """Attach ``session`` as the signed cookie, living until the session expires."""
        max_age = int((session.expires_at - self.clock()).total_seconds())
        response.set_cookie(
            self.cookie_name(request),
            self.signer.dump_session(session),
            max_age=max(max_age, 0),
            path="/",
            secure=self.is_secure(request),
            httponly=True,
            samesite="lax",
        )

    def clear_session_cookie(self, request: Request, response: Response) -> None:
        """Tell the browser to drop the session cookie."""
        response.delete_cookie(
            self.cookie_name(request),
            path="/",
            secure=self.is_secure(request),
            httponly=True,
            samesite="lax",
        )

    # --- the gate ---------------------------------------------------------------------

    def authorize(
        self, request: Request, conn: Connection | None = None, *, need_account: bool = True
    ) -> Viewer:
        """Who is asking, and which account they may see, from the *current* roles.

        Args:
            request: the request, with its session cookie.
            conn: the request's database connection (one is opened when None).
            need_account: False for pages that work before an account is chosen.

        Raises:
            Denied: no valid session (401), not a Billing Admin (403), or a Billing
                Admin of several accounts who has not chosen one yet (303 to the chooser).
        """
        try:
            session = self.signer.load_session(
                request.cookies.get(self.cookie_name(request)), now=self.clock()
            )
        except InvalidToken as exc:
            log.info("portal: session refused (%s) for %s", exc, request.url.path)
            raise Denied(self.sign_in_page(request)) from None
        role = self.settings.billing_admin_role
        if conn is None:
            with self.engine.connect() as own:
                contact, accounts = contact_access(own, session.contact_sfid, role)
        else:
            contact, accounts = contact_access(conn, session.contact_sfid, role)
        if contact is None or not accounts:
            log.info("portal: contact %s is not a Billing Admin", session.contact_sfid)
            raise Denied(self.coming_soon())
        chosen = next((a for a in accounts if a.sfid == session.account_sfid), None)
        if chosen is None and len(accounts) == 1:
            chosen = accounts[0]
        if chosen is None and need_account:
            raise Denied(RedirectResponse("/portal/accounts", 303))
        return Viewer(session, contact, accounts, chosen)

    def scoped(self, request: Request, conn: Connection) -> tuple[Viewer, str]:
        """:meth:`authorize` for pages of one account: the viewer and the account's Id."""
        viewer = self.authorize(request, conn)
        assert viewer.account is not None
        return viewer, viewer.account.sfid

    def record_page(
        self,
        request: Request,
        load: Callable[[Connection, str, str], Any | None],
        render: Callable[[Viewer, Any, int], Response],
    ) -> Response:
        """A page of one record of the viewer's account, named by the ``sfid`` path part.

        ``load(conn, account_sfid, sfid)`` reads it (None: not this account's, or gone);
        a malformed Id is not looked up. Either way the answer is the portal's 404.
        ``render(viewer, record, pending_count)`` draws the page; the pending-change count
        is read on the same connection as the record.
        """
        sfid = request.path_params["sfid"]
        with self.engine.connect() as conn:
            viewer, account = self.scoped(request, conn)
            found = load(conn, account, sfid) if is_crm_id(sfid) else None
            pending = self.pending_count(viewer, conn)
        if found is None:
            return self.not_found(viewer)
        return render(viewer, found, pending)

    # --- checks every POST passes -----------------------------------------------------

    def csrf_ok(self, session: PortalSession, form: Any) -> bool:
        """True when a POSTed form carries ``session``'s CSRF token (``csrf_token``)."""
        token = form.get("csrf_token")
        return self.signer.check_csrf(session, token if isinstance(token, str) else None)

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

    async def post(self, request: Request, work: PostWork) -> Response:
        """Run ``work`` for a POST that passed every check, in one database transaction.

        Returns:
            What ``work`` answers, or the "form has expired" page (403) when the CSRF
            token or the origin is wrong.

        Raises:
            Denied: no valid session, or not a Billing Admin of an account (as
                :meth:`authorize`).
        """
        form = await request.form()

        def run() -> Response:
            with self.engine.begin() as conn:
                try:
                    viewer = self._post_viewer(request, conn, form)
                except Forbidden:
                    return self.form_expired()
                return work(request, conn, viewer, form)

        return await run_in_threadpool(run)
