"""The portal's gate: who is asking (signed session cookie) and what they may see.

Every portal request goes through :meth:`PortalBase.authorize`: the cookie says who the
person is; the *current* mirrored roles say what they may see. A Billing Admin sees the
chosen account; anyone else gets the "new billing portal coming soon" page (403) and no
billing data; a missing or bad cookie gets the "sign in through the community portal"
page (401).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from sqlalchemy import Connection, Engine
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from sync.access import AdminAccount, ContactRef, contact_access
from sync.clock import utc_now
from sync.portal import formatting
from sync.portal.links import DEFAULT_SESSION_TTL, InvalidToken, PortalSession, PortalSigner
from sync.settings import Settings
from sync.telemetry import counters

log = logging.getLogger("sync.portal")

HERE = Path(__file__).resolve().parent
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


def _static_versions() -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:12]
        for p in (HERE / "static").iterdir()
        if p.is_file()
    }


class PortalBase:
    """What every portal page needs: templates, the session cookie and the access gate."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        session_ttl: float = DEFAULT_SESSION_TTL,
        clock: Clock = utc_now,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.signer = PortalSigner(settings.require_portal_secret(), session_ttl=session_ttl)
        self.clock = clock
        self.public_https = settings.public_url.startswith("https://")
        versions = _static_versions()
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            # Templates ship with the code: no need to stat them on every request.
            auto_reload=False,
        )
        self.env.globals.update(
            money=formatting.money,
            quantity=formatting.quantity,
            day=formatting.day,
            iso_day=formatting.iso_day,
            status_class=formatting.status_class,
            static=lambda name: f"/static/{name}?v={versions.get(name, '0')}",
        )

    # --- rendering --------------------------------------------------------------------

    def render(self, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        """Render a template into an HTML response."""
        context.setdefault("viewer", None)
        context.setdefault("tab", None)
        context.setdefault("csrf_token", "")
        context.setdefault("pending_count", 0)
        return HTMLResponse(self.env.get_template(name).render(**context), status_code)

    def page(self, viewer: Viewer, name: str, status_code: int = 200, **context: Any) -> Response:
        """Render a page of the signed-in portal (layout with tabs and sign-out form)."""
        return self.render(
            name,
            status_code,
            viewer=viewer,
            csrf_token=self.signer.csrf_token(viewer.session),
            **context,
        )

    def message(self, status_code: int, heading: str, *paragraphs: str) -> HTMLResponse:
        """A plain page with a heading and a few sentences."""
        return self.render("message.html", status_code, heading=heading, paragraphs=paragraphs)

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

    def csrf_ok(self, session: PortalSession, form: Any) -> bool:
        """True when a POSTed form carries ``session``'s CSRF token (``csrf_token``)."""
        token = form.get("csrf_token")
        return self.signer.check_csrf(session, token if isinstance(token, str) else None)

    def scoped(self, request: Request, conn: Connection) -> tuple[Viewer, str]:
        """:meth:`authorize` for pages of one account: the viewer and the account's Id."""
        viewer = self.authorize(request, conn)
        assert viewer.account is not None
        return viewer, viewer.account.sfid
