"""The sandbox's web application (Starlette): login, the REST API and the test hooks.

Request flow for ``/services/data/vXX.X/...``: injected latency, then the session check
(401 INVALID_SESSION_ID), then the daily limit (403 REQUEST_LIMIT_EXCEEDED, not
counted), then the call is counted, then an injected fault may answer instead (counted:
it reached the API, as a real lock timeout does), then the resource runs in a worker
thread (SQLite work never blocks the event loop). Logins are not API calls (Salesforce
does not count them against ``DailyApiRequests``) and faults do not apply to them; the
statistics still list them under ``login``. ``/_sandbox/*`` hooks need no session and
are never counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from sync.sandbox import auth, oauth, soap
from sync.sandbox.bulk2 import BulkFaults, BulkQueries
from sync.sandbox.cometd import COOKIE, CometdServer, CometdSettings
from sync.sandbox.composite import Composite
from sync.sandbox.config import SandboxConfig
from sync.sandbox.errors import ApiError, invalid_session, limit_exceeded, not_found
from sync.sandbox.graph import CompositeGraph
from sync.sandbox.limits import ApiUsage, Faults, Stats
from sync.sandbox.queries import LocatorCache, QueryService
from sync.sandbox.rest import (
    ApiRequest,
    ApiResponse,
    RestApi,
    endpoint_of,
    parse_version,
    retired,
    retired_version,
)
from sync.sandbox.rest import versions as api_versions
from sync.sandbox.schema import load_schema
from sync.sandbox.seed import seed
from sync.sandbox.store import CHANGE_ORIGIN, Store, ValidationRule

log = logging.getLogger(__name__)

JSON_TYPE = "application/json;charset=UTF-8"
ALL_METHODS = ["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "OPTIONS"]
MAX_SEED_ACCOUNTS = 20_000  # about 2 million records: more than any test or benchmark uses


class Sandbox:
    """Everything one sandbox holds: data, sessions, usage, faults and statistics."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.schema = load_schema()
        self.store = Store(
            self.schema,
            db_path=config.db_path,
            retention=config.retention,
            event_retention=config.event_retention,
            cdc_entities=config.cdc_entities,
        )
        self.locators = LocatorCache()
        self.queries = QueryService(self.store, self.schema, self.locators)
        self.usage = ApiUsage(config.daily_limit)
        self.api = RestApi(self.store, self.schema, self.queries, self.usage)
        CompositeGraph(self.api, self.store, Composite(self.api, self.store))
        self.sessions = auth.SessionStore(config.session_ttl)
        self.credentials = auth.Credentials(
            username=config.username,
            password=config.password,
            security_token=config.security_token,
            client_id=config.client_id,
            client_secret=config.client_secret,
        )
        self.login_policy = self._login_policy()
        self.tokens = oauth.TokenEndpoint(self.credentials, self.sessions, self.login_policy)
        self.api.permissions = lambda: {
            "PermissionsViewAllData": self.login_policy.view_all_data,
            "PermissionsApiEnabled": True,
            "PermissionsModifyAllData": False,
        }
        self.faults = Faults()
        self.bulk_faults = BulkFaults()
        self.bulk = BulkQueries(self.api, self.store, self.schema, self.bulk_faults)
        self.stats = Stats()
        self.cometd = CometdServer(self.store, self.sessions, self._cometd_settings())
        self.api.extra_limits = self.cometd.limits

    def _login_policy(self) -> oauth.LoginPolicy:
        config = self.config
        return oauth.LoginPolicy(
            my_domain=config.my_domain,
            jwt_key=oauth.load_certificate(config.jwt_cert) if config.jwt_cert else None,
            soap_login=config.soap_login,
            allow_password_flow=config.allow_password_flow,
        )

    def reset_login_policy(self) -> None:
        """The login policy back to the configuration (the certificate stays)."""
        fresh = self._login_policy()
        for name in (
            "soap_login",
            "allow_password_flow",
            "approval",
            "user_active",
            "run_as_user",
            "view_all_data",
        ):
            setattr(self.login_policy, name, getattr(fresh, name))

    def _cometd_settings(self) -> CometdSettings:
        return CometdSettings(
            connect_timeout=self.config.cometd_timeout,
            idle_timeout=self.config.cometd_idle_timeout,
            delivery_limit=self.config.event_delivery_limit,
        )

    def reset_streaming(self) -> None:
        """Streaming settings and CDC selection back to the configuration."""
        self.cometd.settings = self._cometd_settings()
        self.store.cdc_entities = (
            None
            if self.config.cdc_entities is None
            else {e.lower() for e in self.config.cdc_entities}
        )
        self.store.event_retention = self.config.event_retention

    def start(self) -> dict[str, int]:
        """Seed an empty database when asked to, and remember the state for resets.

        Returns:
            Records created per object (empty when nothing was seeded).
        """
        counts: dict[str, int] = {}
        if self.config.seed > 0 and self.store.is_empty():
            counts = seed(self.store, self.config.seed, self.config.seed_random)
        self.store.take_snapshot()
        return counts

    def reset(self) -> None:
        """Back to the state at startup: data, locators, faults, usage and statistics.

        Sessions stay valid: a reset is about data, and clients keep their login.
        """
        self.store.restore_snapshot()
        self.store.validation_rules.clear()
        self.locators.clear()
        self.bulk.clear()
        self.faults.clear()
        self.bulk_faults.clear()
        self.usage.daily_limit = self.config.daily_limit
        self.usage.reset()
        self.stats.reset()
        self.reset_streaming()
        self.reset_login_policy()
        self.cometd.deliveries.set_used(0)

    def reseed(self, accounts: int, random_seed: int) -> dict[str, int]:
        """Replace all data with ``accounts`` freshly generated accounts."""
        self.store.wipe()
        self.locators.clear()
        self.bulk.clear()
        return seed(self.store, accounts, random_seed)

    def close(self) -> None:
        """Release the database."""
        self.store.close()


# -- responses ----------------------------------------------------------------------------


def _json(
    sandbox: Sandbox, status: int, body: Any, headers: dict[str, str] | None = None
) -> Response:
    out = {"Sforce-Limit-Info": sandbox.usage.header()}
    if headers:
        out.update(headers)
    if body is None:
        return Response(status_code=status, headers=out)
    return Response(orjson.dumps(body), status_code=status, media_type=JSON_TYPE, headers=out)


def _error(sandbox: Sandbox, exc: ApiError) -> Response:
    return _json(sandbox, exc.status, exc.body())


def _xml(body: str, status: int) -> Response:
    return Response(body, status_code=status, media_type="text/xml;charset=UTF-8")


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


# -- application -------------------------------------------------------------------------


def create_app(sandbox: Sandbox) -> Starlette:
    """The ASGI application serving ``sandbox``."""

    async def soap_login(request: Request) -> Response:
        version = request.path_params["version"]
        envelope = await request.body()
        undelete = soap.parse_undelete(envelope)
        if undelete is not None:
            return await soap_undelete(version, *undelete)
        sandbox.stats.record("login", api_call=False)
        number = float(version) if auth.VERSION_NUMBER.match(version) else 0.0
        if number >= auth.FIRST_VERSION_WITHOUT_SOAP_LOGIN:
            message = auth.SOAP_LOGIN_GONE.format(version=version)
            return _xml(auth.soap_fault("INVALID_OPERATION", message), 500)
        if not sandbox.login_policy.soap_login:
            return _xml(auth.soap_fault("INVALID_OPERATION", auth.SOAP_LOGIN_DISABLED), 500)
        username, password = auth.parse_soap_login(envelope)
        if not sandbox.credentials.password_ok(username, password):
            return _xml(auth.soap_fault(), 500)
        token = sandbox.sessions.issue()
        body = auth.soap_login_response(token, _base_url(request), version, sandbox.sessions.ttl)
        return _xml(body, 200)

    async def soap_undelete(version: str, session_id: str | None, ids: list[str]) -> Response:
        if not sandbox.sessions.check(session_id):
            return _xml(soap.invalid_session_fault(), 500)
        if not sandbox.usage.try_count():
            sandbox.stats.record("undelete", api_call=False)
            return _xml(
                soap.invalid_session_fault().replace(
                    "INVALID_SESSION_ID", "REQUEST_LIMIT_EXCEEDED"
                ),
                500,
            )
        sandbox.stats.record("undelete", api_call=True)

        def run() -> Response:
            CHANGE_ORIGIN.set(f"com/salesforce/api/soap/{version}")
            results: list[tuple[str, str | None, str | None]] = []
            for raw_id in ids[: soap.MAX_UNDELETE]:
                obj = sandbox.schema.by_prefix(raw_id[:3])
                try:
                    if obj is None:
                        raise ApiError(400, "INVALID_ID_FIELD", f"invalid record id: {raw_id}")
                    results.append((sandbox.store.undelete(obj, raw_id), None, None))
                except ApiError as exc:
                    results.append((raw_id, exc.error_code, exc.message))
            return _xml(soap.undelete_response(results), 200)

        return await run_in_threadpool(run)

    async def cometd(request: Request) -> Response:
        sandbox.stats.record("cometd", api_call=False)
        if sandbox.cometd.settings.unavailable:
            return _error(sandbox, not_found())
        answer = await sandbox.cometd.handle(
            request.path_params.get("version"),
            await request.body(),
            request.headers.get("authorization"),
            dict(request.cookies),
        )
        response = Response(
            orjson.dumps(answer.body), status_code=answer.status, media_type=JSON_TYPE
        )
        if answer.set_cookie is not None:
            response.set_cookie(COOKIE, answer.set_cookie, path="/", httponly=True)
        return response

    async def cometd_hook(request: Request) -> Response:
        if request.method == "DELETE":
            sandbox.reset_streaming()
            return _json(sandbox, 200, sandbox.cometd.describe())
        done: dict[str, Any] = {}
        if request.method == "POST":
            try:
                spec = orjson.loads(await request.body() or b"{}")
                if not isinstance(spec, dict):
                    raise ValueError("the body must be a JSON object")
                done = await run_in_threadpool(sandbox.cometd.configure, spec)
            except (ValueError, TypeError) as exc:
                return _json(sandbox, 400, {"error": str(exc)})
        return _json(sandbox, 200, {**sandbox.cometd.describe(), **done})

    async def oauth_token(request: Request) -> Response:
        sandbox.stats.record("login", api_call=False)
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        headers = {k.lower(): v for k, v in request.headers.items()}
        status, body = sandbox.tokens.token(form, headers, _base_url(request))
        return Response(orjson.dumps(body), status_code=status, media_type=JSON_TYPE)

    async def identity(request: Request) -> Response:
        if not sandbox.sessions.check(auth.bearer_token(request.headers.get("authorization"))):
            return Response(b"Bad_OAuth_Token", status_code=403, media_type="text/plain")
        status, body = sandbox.tokens.identity(
            request.path_params["org"], request.path_params["user"], _base_url(request)
        )
        return Response(orjson.dumps(body), status_code=status, media_type=JSON_TYPE)

    async def versions(request: Request) -> Response:
        return _json(sandbox, 200, api_versions())

    async def login_hook(request: Request) -> Response:
        if request.method == "DELETE":
            sandbox.reset_login_policy()
        elif request.method == "POST":
            try:
                spec = orjson.loads(await request.body() or b"{}")
                if not isinstance(spec, dict):
                    raise ValueError("the body must be a JSON object")
                sandbox.login_policy.configure(spec)
            except (ValueError, TypeError) as exc:
                return _json(sandbox, 400, {"error": str(exc)})
        return _json(sandbox, 200, sandbox.login_policy.describe())

    async def refresh_token_hook(request: Request) -> Response:
        # Stands for the web server flow's consent, which issues refresh tokens.
        return _json(sandbox, 200, {"refresh_token": sandbox.tokens.refresh.issue()})

    async def data(request: Request) -> Response:
        segment = request.path_params["version"]
        version = parse_version(segment)
        if version is None:
            if retired_version(segment):
                return _error(sandbox, retired(segment))
            return _error(sandbox, not_found())
        if sandbox.faults.latency_ms:
            await asyncio.sleep(sandbox.faults.latency_ms / 1000.0)
        if not sandbox.sessions.check(auth.bearer_token(request.headers.get("authorization"))):
            return _error(sandbox, invalid_session())
        path = request.path_params.get("path", "")
        endpoint = endpoint_of(path)
        if not sandbox.usage.try_count():
            sandbox.stats.record(endpoint, api_call=False)
            return _error(sandbox, limit_exceeded())
        sandbox.stats.record(endpoint, api_call=True)
        fault = sandbox.faults.draw()
        if fault is not None:
            return _error(sandbox, fault)
        api_request = ApiRequest(
            method=request.method,
            path=path,
            version=version,
            params=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=await request.body(),
        )
        return await run_in_threadpool(_run, api_request)

    def _run(api_request: ApiRequest) -> Response:
        # runs in a worker thread: the database work and the encoding of large pages
        sandbox.store.maybe_purge()
        answer: ApiResponse = sandbox.api.handle(api_request)
        if answer.raw is not None:
            headers = {"Sforce-Limit-Info": sandbox.usage.header(), **answer.headers}
            return Response(
                answer.raw,
                status_code=answer.status,
                media_type=answer.media_type,
                headers=headers,
            )
        return _json(sandbox, answer.status, answer.body, answer.headers)

    # -- test hooks --------------------------------------------------------------------

    async def faults(request: Request) -> Response:
        if request.method == "DELETE":
            sandbox.faults.clear()
            sandbox.bulk_faults.clear()
            sandbox.usage.daily_limit = sandbox.config.daily_limit
        elif request.method == "POST":
            try:
                spec = orjson.loads(await request.body() or b"{}")
                if not isinstance(spec, dict):
                    raise ValueError("the body must be a JSON object")
                bulk_spec = {k: v for k, v in spec.items() if k in BulkFaults.KEYS}
                sandbox.faults.configure({k: v for k, v in spec.items() if k not in bulk_spec})
                sandbox.bulk_faults.configure(bulk_spec)
                if "seed" in spec:
                    sandbox.bulk_faults.rng.seed(int(spec["seed"]))
                if "daily_limit" in spec:
                    limit = int(spec["daily_limit"])
                    if limit < 0:
                        raise ValueError("daily_limit must not be negative")
                    sandbox.usage.daily_limit = limit
            except (ValueError, TypeError) as exc:
                return _json(sandbox, 400, {"error": str(exc)})
        described = sandbox.faults.describe(sandbox.usage.daily_limit)
        described.update(sandbox.bulk_faults.describe())
        return _json(sandbox, 200, described)

    async def validation_rules(request: Request) -> Response:
        if request.method == "DELETE":
            sandbox.store.validation_rules.clear()
        elif request.method == "POST":
            try:
                spec = orjson.loads(await request.body() or b"{}")
                rule = ValidationRule(
                    object=str(spec["object"]),
                    field=str(spec["field"]),
                    equals=spec["equals"],
                    message=str(spec.get("message") or "A validation rule refused the value"),
                )
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                return _json(sandbox, 400, {"error": f"object, field and equals needed: {exc}"})
            sandbox.store.validation_rules.append(rule)
        return _json(sandbox, 200, {"rules": [vars(r) for r in sandbox.store.validation_rules]})

    async def expire_sessions(request: Request) -> Response:
        return _json(sandbox, 200, {"expired": sandbox.sessions.expire_all()})

    async def reset(request: Request) -> Response:
        await run_in_threadpool(sandbox.reset)
        return _json(sandbox, 200, {"reset": True})

    async def stats(request: Request) -> Response:
        body = sandbox.stats.snapshot()
        body["api_usage"] = {"used": sandbox.usage.used, "max": sandbox.usage.daily_limit}
        body["locators"] = len(sandbox.locators)
        body["bulk_jobs"] = len(sandbox.bulk)
        return _json(sandbox, 200, body)

    async def reseed(request: Request) -> Response:
        try:
            spec = orjson.loads(await request.body() or b"{}")
            accounts = int(spec.get("accounts", sandbox.config.seed))
            random_seed = int(spec.get("random", sandbox.config.seed_random))
            if not 0 <= accounts <= MAX_SEED_ACCOUNTS:
                raise ValueError(f"accounts must be between 0 and {MAX_SEED_ACCOUNTS}")
        except (ValueError, TypeError, AttributeError) as exc:
            return _json(sandbox, 400, {"error": str(exc)})
        started = time.perf_counter()
        counts = await run_in_threadpool(sandbox.reseed, accounts, random_seed)
        return _json(
            sandbox,
            200,
            {
                "accounts": accounts,
                "records": sum(counts.values()),
                "by_object": counts,
                "seconds": round(time.perf_counter() - started, 3),
            },
        )

    async def unknown(request: Request) -> Response:
        return _error(sandbox, not_found())

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 405:
            return _error(
                sandbox,
                ApiError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{request.method}' not allowed"),
            )
        if status == 404:
            return _error(sandbox, not_found())
        return _error(sandbox, ApiError(status, "UNKNOWN_EXCEPTION", str(exc)))

    async def server_error(request: Request, exc: Exception) -> Response:
        if isinstance(exc, ClientDisconnect):
            # The client went away mid-request (a killed sync, a timeout): nobody is
            # left to answer, and it is no fault of the sandbox's.
            log.info("client disconnected: %s %s", request.method, request.url.path)
            return Response(status_code=499)
        log.error("sandbox request failed: %s %s", request.method, request.url.path, exc_info=exc)
        sandbox.stats.record_unhandled(
            f"{request.method} {request.url.path}: {type(exc).__name__}: {exc}"[:500]
        )
        return _error(
            sandbox,
            ApiError(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred. Please try again."),
        )

    routes = [
        Route("/services/Soap/u/{version}", soap_login, methods=["POST"]),
        Route("/services/oauth2/token", oauth_token, methods=["POST"]),
        Route("/id/{org}/{user}", identity, methods=["GET"]),
        Route("/services/data", versions, methods=["GET"]),
        Route("/services/data/", versions, methods=["GET"]),
        Route("/services/data/{version}", data, methods=ALL_METHODS),
        Route("/services/data/{version}/{path:path}", data, methods=ALL_METHODS),
        Route("/cometd", cometd, methods=["POST"]),
        Route("/cometd/", cometd, methods=["POST"]),
        Route("/cometd/{version}", cometd, methods=["POST"]),
        Route("/_sandbox/cometd", cometd_hook, methods=["GET", "POST", "DELETE"]),
        Route("/_sandbox/auth", login_hook, methods=["GET", "POST", "DELETE"]),
        Route("/_sandbox/refresh-token", refresh_token_hook, methods=["POST"]),
        Route("/_sandbox/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/_sandbox/expire-sessions", expire_sessions, methods=["POST"]),
        Route("/_sandbox/validation-rules", validation_rules, methods=["GET", "POST", "DELETE"]),
        Route("/_sandbox/reset", reset, methods=["POST"]),
        Route("/_sandbox/stats", stats, methods=["GET"]),
        Route("/_sandbox/seed", reseed, methods=["POST"]),
        Route("/{path:path}", unknown, methods=ALL_METHODS),
    ]
    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
