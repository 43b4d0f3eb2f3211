"""The change flow on the Account tab: Accept, discard a staged change, stage a set again.

Accept turns the staged changes into a change set in the outbox, in the request's
transaction, signed by the first and last name the admin typed; then it asks for a push.
Nothing here talks to the CRM.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from sync.changes.accept import Acceptance, accept, restage
from sync.changes.plan import WriteTargets
from sync.changes.staging import NotFoundError, StagingError, discard
from sync.changes.terms import Terms
from sync.portal.kit import PortalKit, Viewer
from sync.portal.tabs.account import AccountTab, done

log = logging.getLogger("sync.portal")


class ChangeFlow:
    """The POST handlers that discard, accept or stage again the admin's changes."""

    def __init__(
        self,
        kit: PortalKit,
        account_tab: AccountTab,
        *,
        terms: Terms,
        targets: WriteTargets,
        push_trigger: Callable[[], None] | None = None,
    ) -> None:
        """Hand in the Account tab (refusals are shown on it) and the write side.

        Args:
            kit: the portal's shared kit.
            account_tab: draws the Account tab with the reason an Accept was refused.
            terms: the terms of use an Accept agrees to.
            targets: the CRM objects and fields the portal writes (from the mappings).
            push_trigger: starts a push at once after an Accept; None leaves accepted
                changes to the periodic push.
        """
        self.kit = kit
        self.account_tab = account_tab
        self.terms = terms
        self.targets = targets
        self.push_trigger = push_trigger

    async def discard_change(self, request: Request) -> Response:
        """Discard one staged change."""
        raw = request.path_params["id"]

        def work(request: Request, conn: Connection, viewer: Viewer, form: FormData) -> Response:
            assert viewer.account is not None
            try:
                discard(conn, viewer.contact.sfid, viewer.account.sfid, int(raw), self.kit.clock())
            except (NotFoundError, ValueError):
                return self.kit.not_found(viewer)
            return done("discarded")

        return await self.kit.post(request, work)

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
                set_id = accept(conn, acceptance, self.targets, self.kit.clock())
            except StagingError as exc:
                return self.account_tab.account_page(
                    conn, viewer, status_code=400, errors={"accept": str(exc)}
                )
            log.info(
                "portal: contact %s accepted change set %s for account %s",
                viewer.contact.sfid,
                set_id,
                viewer.account.sfid,
            )
            return done("accepted")

        response = await self.kit.post(request, work)
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
                    self.kit.clock(),
                )
            except (NotFoundError, ValueError):
                return self.kit.not_found(viewer)
            return done("restaged")

        return await self.kit.post(request, work)
