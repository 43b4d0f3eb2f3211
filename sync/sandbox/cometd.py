"""The Streaming API of the sandbox: CometD (Bayeux) long polling at ``/cometd/{version}``.

What a Salesforce org does, as far as a Change Data Capture subscriber can tell:

- ``POST /cometd/{version}`` (37.0 or later) with a JSON array of Bayeux messages and
  ``Authorization: Bearer <session>`` (or ``OAuth <session>``); a bare object, a body
  over 32,768 bytes or an old version is refused with Salesforce's texts.
- ``/meta/handshake`` answers a ``clientId``, ``supportedConnectionTypes:
  ["long-polling"]`` and ``ext: {"replay": true, "payload.format": true}``, and sets the
  ``BAYEUX_BROWSER`` cookie that every later request of that client must send back.
- ``/meta/connect`` (long-polling only) is held until events arrive or
  ``connect_timeout`` passes (110 s in Salesforce, short in tests), and answers the
  events plus ``advice: {"reconnect": "retry", "interval": 0, "timeout": ...}``. A client
  that sends nothing for ``idle_timeout`` (40 s) after an answer is forgotten: its next
  message gets ``403::Unknown client`` with ``advice.reconnect: "handshake"``.
- ``/meta/subscribe`` takes ``ext.replay`` per channel: -1 new events only, -2 every
  retained event, N the events strictly after N; an N the log no longer holds gets the
  exact ``400::The replayId ... was invalid`` text. A channel of an object not selected
  for Change Data Capture does not exist for the org (``400::The channel you requested
  to subscribe to doesn't exist``).
- Deliveries are counted per subscriber over a rolling 24 hours
  (``DailyDeliveredPlatformEvents`` in ``/limits``); past the allocation, connect gets
  ``403::Organization total events daily limit exceeded`` and the client is dropped.
- A revoked session: connect gets ``401::Authentication invalid`` (``reconnect:
  "none"``), a handshake ``403::Handshake denied`` with ``ext.sfdc.failureReason``.

CometD requests are not API calls: they never count against ``DailyApiRequests``.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from sync.sandbox import events as cdc
from sync.sandbox.auth import SessionStore, bearer_token
from sync.sandbox.store import Store

MIN_VERSION = 37.0
MAX_BODY = 32_768
COOKIE = "BAYEUX_BROWSER"
EVENTS_PER_ANSWER = 1000
_WINDOW = 86400.0
_BUCKET = 60.0

INVALID_REPLAY = (
    "400::The replayId {0} you provided was invalid.  Please provide a valid ID, -2 to "
    "replay all events, or -1 to replay only new events."
)
NO_CHANNEL = "400::The channel you requested to subscribe to doesn't exist {0}"
UNKNOWN_CLIENT = "403::Unknown client"
DAILY_LIMIT = "403::Organization total events daily limit exceeded"
CONCURRENT_LIMIT = "403::Organization concurrent user limit exceeded"
NO_VIEW_ALL_DATA = "403::User not allowed to subscribe CDC without View All Data permissions"
AUTH_INVALID = "401::Authentication invalid"
AUTH_MISSING = "401::Request requires authentication"


@dataclass
class CometdSettings:
    """The knobs of the streaming endpoint (``/_sandbox/cometd`` changes them live).

    Attributes:
        connect_timeout: seconds a ``/meta/connect`` is held without events.
        idle_timeout: seconds after an answer within which the client must reconnect.
        delivery_limit: delivered events allowed per rolling 24 hours.
        max_clients: concurrent CometD clients of the org.
        view_all_data: whether the user may subscribe to change events at all.
        unavailable: answer 404 on ``/cometd`` (an org without the Streaming API).
    """

    connect_timeout: float = 110.0
    idle_timeout: float = 40.0
    delivery_limit: int = 50_000
    max_clients: int = 1000
    view_all_data: bool = True
    unavailable: bool = False


class DeliveryCounter:
    """Delivered events over a rolling 24 hours (one-minute buckets), thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: deque[list[float]] = deque()
        self._used = 0

    def _expire(self, now: float) -> None:
        while self._buckets and self._buckets[0][0] <= now - _WINDOW:
            self._used -= int(self._buckets.popleft()[1])

    @property
    def used(self) -> int:
        """Deliveries in the last 24 hours."""
        with self._lock:
            self._expire(self._clock())
            return self._used

    def add(self, count: int) -> None:
        """Count ``count`` deliveries now."""
        if count <= 0:
            return
        now = self._clock()
        with self._lock:
            self._expire(now)
            start = now - now % _BUCKET
            if self._buckets and self._buckets[-1][0] == start:
                self._buckets[-1][1] += count
            else:
                self._buckets.append([start, count])
            self._used += count

    def set_used(self, count: int) -> None:
        """Forget the history and count ``count`` deliveries now (test hook)."""
        with self._lock:
            self._buckets.clear()
            self._used = 0
        self.add(count)


@dataclass
class Client:
    """One handshaken CometD client."""

    client_id: str
    cookie: str
    subscriptions: dict[str, int] = field(default_factory=dict)  # channel -> cursor
    last_seen: float = 0.0
    holding: int = 0  # connects being held
    connected: bool = False  # answered a first connect
    delivered: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: str | None = None  # why the server forgot it


def _reply(message: dict[str, Any], **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"channel": message.get("channel")}
    if "id" in message:
        out["id"] = message["id"]
    out.update(fields)
    return out


def _failure(message: dict[str, Any], error: str, **fields: Any) -> dict[str, Any]:
    return _reply(message, successful=False, error=error, **fields)


def _entity_of(channel: str, store: Store) -> str | None:
    """The object a ``/data/...ChangeEvent`` channel carries, when the org has it."""
    if not channel.startswith("/data/") or not channel.endswith("ChangeEvent"):
        return None
    stem = channel[len("/data/") : -len("ChangeEvent")]
    name = stem + "c" if stem.endswith("__") else stem
    obj = store.schema.get(name)
    if obj is None or channel != cdc.channel_of(obj.name):
        return None
    return obj.name


@dataclass
class Answer:
    """What one POST to ``/cometd`` answers: HTTP status, body, cookie to set."""

    status: int
    body: Any
    set_cookie: str | None = None


class CometdServer:
    """The Bayeux endpoint over a sandbox store and its sessions.

    Args:
        store: the records and the change event log.
        sessions: the login sessions (bearer tokens).
        settings: timeouts and allocations.
        clock: monotonic seconds (idle expiry).
    """

    def __init__(
        self,
        store: Store,
        sessions: SessionStore,
        settings: CometdSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.sessions = sessions
        self.settings = settings or CometdSettings()
        self.deliveries = DeliveryCounter()
        self._clock = clock
        self._clients: dict[str, Client] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closing = False  # the server is stopping: connects are answered at once
        store.commit_listeners.append(self._on_commit)

    # -- wake-ups ----------------------------------------------------------------------

    def _on_commit(self) -> None:
        # Runs in whichever thread committed; held connects live on the server's loop.
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop stopped meanwhile
            loop.call_soon_threadsafe(self._wake_all)

    def _wake_all(self) -> None:
        with self._lock:
            clients = list(self._clients.values())
        for client in clients:
            client.wake.set()

    # -- clients -----------------------------------------------------------------------

    def clients(self) -> int:
        """How many clients are known now."""
        with self._lock:
            self._expire()
            return len(self._clients)

    def drop_all(self, reason: str = UNKNOWN_CLIENT) -> int:
        """Forget every client (the org dropped its CometD sessions); returns how many."""
        with self._lock:
            dropped = list(self._clients.values())
            self._clients.clear()
        for client in dropped:
            client.dropped = reason
            self._wake_threadsafe(client)
        return len(dropped)

    def release(self) -> int:
        """Answer every held connect now and hold no more (the server is stopping).

        Each held ``/meta/connect`` gets its usual successful answer (``reconnect:
        "retry"``), as when ``connect_timeout`` passes, so its client reconnects to
        whichever server serves next. Thread-safe; returns how many clients were woken.
        """
        self.closing = True
        with self._lock:
            clients = list(self._clients.values())
        for client in clients:
            self._wake_threadsafe(client)
        return len(clients)

    def _wake_threadsafe(self, client: Client) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(client.wake.set)

    def _expire(self) -> None:
        now = self._clock()
        for cid, client in list(self._clients.items()):
            if client.holding == 0 and now - client.last_seen > self.settings.idle_timeout:
                client.dropped = UNKNOWN_CLIENT
                del self._clients[cid]

    def _client(self, client_id: Any) -> Client | None:
        with self._lock:
            self._expire()
            return self._clients.get(client_id) if isinstance(client_id, str) else None

    def limits(self) -> dict[str, Any]:
        """The ``/limits`` entry of the event delivery allocation."""
        limit = self.settings.delivery_limit
        return {
            "DailyDeliveredPlatformEvents": {
                "Max": limit,
                "Remaining": max(0, limit - self.deliveries.used),
            }
        }

    def describe(self) -> dict[str, Any]:
        """Settings and counters, as ``/_sandbox/cometd`` reports them."""
        s = self.settings
        with self._lock:
            self._expire()
            per_client = {c.client_id: c.delivered for c in self._clients.values()}
            subscriptions = sorted({ch for c in self._clients.values() for ch in c.subscriptions})
        return {
            "connect_timeout": s.connect_timeout,
            "idle_timeout": s.idle_timeout,
            "delivery_limit": s.delivery_limit,
            "deliveries_used": self.deliveries.used,
            "max_clients": s.max_clients,
            "view_all_data": s.view_all_data,
            "unavailable": s.unavailable,
            "event_retention": self.store.event_retention,
            "cdc_entities": None
            if self.store.cdc_entities is None
            else sorted(self.store.cdc_entities),
            "clients": len(per_client),
            "delivered_by_client": per_client,
            "subscriptions": subscriptions,
            "newest_replay_id": self.store.newest_replay_id(),
        }

    # -- the endpoint --------------------------------------------------------------------

    async def handle(
        self,
        version: str | None,
        body: bytes,
        authorization: str | None,
        cookies: dict[str, str],
    ) -> Answer:
        """Answer one POST to ``/cometd/{version}``."""
        self._loop = asyncio.get_running_loop()
        if not version:
            return Answer(
                400,
                self._http_error(
                    "400::API version in the URI is mandatory. URI format: '/cometd/43.0'"
                ),
            )
        try:
            number = float(version)
        except ValueError:
            number = 0.0
        if number < MIN_VERSION:
            return Answer(
                400,
                self._http_error(
                    "400::Unsupported API version. Only API versions '37.0' and later are "
                    "supported."
                ),
            )
        if len(body) > MAX_BODY:
            return Answer(413, self._http_error("413::Maximum Request Size Exceeded"))
        try:
            messages = orjson.loads(body)
        except orjson.JSONDecodeError:
            return Answer(400, self._http_error("400::Malformed JSON"))
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            return Answer(400, self._http_error("400::The body must be a JSON array of messages"))
        token = bearer_token(authorization)
        authenticated = self.sessions.check(token)
        replies: list[dict[str, Any] | None] = [None] * len(messages)
        set_cookie = None
        connects: list[int] = []
        for i, message in enumerate(messages):
            channel = message.get("channel")
            if channel == "/meta/connect":
                connects.append(i)
                continue
            if not authenticated:
                replies[i] = self._unauthenticated(message, token)
                continue
            if channel == "/meta/handshake":
                reply, set_cookie = self._handshake(message)
                replies[i] = reply
                continue
            client, problem = self._known(message, cookies)
            if client is None:
                replies[i] = problem
                continue
            client.last_seen = self._clock()
            if channel == "/meta/subscribe":
                replies[i] = self._subscribe(client, message)
            elif channel == "/meta/unsubscribe":
                replies[i] = self._unsubscribe(client, message)
            elif channel == "/meta/disconnect":
                with self._lock:
                    self._clients.pop(client.client_id, None)
                client.dropped = "disconnected"
                client.wake.set()
                replies[i] = _reply(message, clientId=client.client_id, successful=True)
            else:
                replies[i] = _failure(message, f"400::Unknown channel {channel}")
        out: list[dict[str, Any]] = []
        delivered: list[dict[str, Any]] = []
        for i in connects:
            message = messages[i]
            if not authenticated:
                replies[i] = self._unauthenticated(message, token)
                continue
            events, reply = await self._connect(message, cookies)
            delivered.extend(events)
            replies[i] = reply
        out.extend(delivered)
        out.extend(r for r in replies if r is not None)
        return Answer(200, out, set_cookie)

    @staticmethod
    def _http_error(error: str) -> list[dict[str, Any]]:
        return [{"successful": False, "error": error}]

    def _unauthenticated(self, message: dict[str, Any], token: str | None) -> dict[str, Any]:
        reason = AUTH_MISSING if token is None else AUTH_INVALID
        if message.get("channel") == "/meta/handshake":
            return _failure(
                message,
                "403::Handshake denied",
                ext={"sfdc": {"failureReason": reason}},
                advice={"reconnect": "none"},
            )
        return _failure(
            message,
            reason,
            clientId=message.get("clientId"),
            advice={"reconnect": "none", "interval": 0},
        )

    def _handshake(self, message: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        types = message.get("supportedConnectionTypes")
        if not isinstance(types, list) or "long-polling" not in types:
            return (
                _failure(
                    message,
                    f"400::Invalid connection type {types}",
                    supportedConnectionTypes=["long-polling"],
                ),
                None,
            )
        with self._lock:
            self._expire()
            if len(self._clients) >= self.settings.max_clients:
                return (
                    _failure(
                        message,
                        "403::Handshake denied",
                        ext={"sfdc": {"failureReason": CONCURRENT_LIMIT}},
                        advice={"reconnect": "none"},
                    ),
                    None,
                )
            client = Client(
                client_id=secrets.token_urlsafe(24),
                cookie=secrets.token_hex(16),
                last_seen=self._clock(),
            )
            self._clients[client.client_id] = client
        reply = _reply(
            message,
            version="1.0",
            minimumVersion="1.0",
            clientId=client.client_id,
            supportedConnectionTypes=["long-polling"],
            ext={"replay": True, "payload.format": True},
            successful=True,
            reestablish=False,
        )
        return reply, client.cookie

    def _known(
        self, message: dict[str, Any], cookies: dict[str, str]
    ) -> tuple[Client | None, dict[str, Any] | None]:
        client = self._client(message.get("clientId"))
        if client is None:
            return None, _failure(
                message,
                UNKNOWN_CLIENT,
                clientId=message.get("clientId"),
                advice={"reconnect": "handshake", "interval": 0},
                **({"subscription": message["subscription"]} if "subscription" in message else {}),
            )
        if cookies.get(COOKIE) != client.cookie:
            return None, _failure(
                message,
                f"400::Client {client.client_id} has established a session, but no "
                f"{COOKIE} cookie present",
                clientId=client.client_id,
            )
        return client, None

    def _subscribe(self, client: Client, message: dict[str, Any]) -> dict[str, Any]:
        channel = message.get("subscription")
        where = {"clientId": client.client_id, "subscription": channel}
        if not isinstance(channel, str):
            return _failure(message, "400::Missing subscription", **where)
        if channel != cdc.ALL_CHANNEL:
            entity = _entity_of(channel, self.store)
            if entity is None or not self.store.cdc_selected(entity):
                return _failure(message, NO_CHANNEL.format(channel), **where)
        if not self.settings.view_all_data:
            return _failure(message, NO_VIEW_ALL_DATA, **where)
        ext = message.get("ext")
        replay_map = ext.get("replay") if isinstance(ext, dict) else None
        wanted: Any = -1
        if isinstance(replay_map, dict) and channel in replay_map:
            wanted = replay_map[channel]
        if wanted == -2 or wanted == "-2":
            cursor = 0
        elif wanted == -1:
            cursor = self.store.newest_replay_id()
        elif isinstance(wanted, int) and not isinstance(wanted, bool) and wanted > 0:
            if not self.store.event_exists(wanted):
                return _failure(message, INVALID_REPLAY.format(wanted), **where)
            cursor = wanted
        else:
            return _failure(message, INVALID_REPLAY.format(wanted), **where)
        with self._lock:
            client.subscriptions[channel] = cursor
        client.wake.set()
        return _reply(message, successful=True, **where)

    def _unsubscribe(self, client: Client, message: dict[str, Any]) -> dict[str, Any]:
        channel = message.get("subscription")
        with self._lock:
            client.subscriptions.pop(channel, None) if isinstance(channel, str) else None
        return _reply(message, clientId=client.client_id, subscription=channel, successful=True)

    def _pending(self, client: Client) -> list[dict[str, Any]]:
        """Events due to ``client``, advancing its cursors (not yet counted)."""
        out: list[dict[str, Any]] = []
        with self._lock:
            subscriptions = dict(client.subscriptions)
        for channel, cursor in subscriptions.items():
            entities = None if channel == cdc.ALL_CHANNEL else [_entity_of(channel, self.store)]
            found = self.store.events_after(
                cursor, None if entities is None else [e for e in entities if e], EVENTS_PER_ANSWER
            )
            if not found:
                continue
            out.extend(event.message(channel) for event in found)
            with self._lock:
                if channel in client.subscriptions:
                    client.subscriptions[channel] = found[-1].replay_id
        return out

    async def _connect(
        self, message: dict[str, Any], cookies: dict[str, str]
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        client, problem = self._known(message, cookies)
        if client is None:
            assert problem is not None
            return [], problem
        kind = message.get("connectionType")
        if kind != "long-polling":
            client.last_seen = self._clock()
            return [], _failure(
                message, f"400::Invalid connection type {kind}", clientId=client.client_id
            )
        advice = {
            "reconnect": "retry",
            "interval": 0,
            "timeout": int(self.settings.connect_timeout * 1000),
        }
        client.holding += 1
        try:
            held = client.connected and not self.closing
            deadline = self._clock() + (self.settings.connect_timeout if held else 0)
            client.connected = True
            while True:
                client.wake.clear()
                if client.dropped is not None:
                    return [], _failure(
                        message,
                        UNKNOWN_CLIENT,
                        clientId=client.client_id,
                        advice={"reconnect": "handshake", "interval": 0},
                    )
                if self.deliveries.used >= self.settings.delivery_limit:
                    with self._lock:
                        self._clients.pop(client.client_id, None)
                    client.dropped = DAILY_LIMIT
                    return [], _failure(
                        message,
                        DAILY_LIMIT,
                        clientId=client.client_id,
                        advice={"reconnect": "none", "interval": 0},
                    )
                # the event log is read under the store's lock: off the event loop
                events = await asyncio.to_thread(self._pending, client)
                if events:
                    room = self.settings.delivery_limit - self.deliveries.used
                    events = events[: max(0, room)]
                    self.deliveries.add(len(events))
                    client.delivered += len(events)
                    break
                remaining = deadline - self._clock()
                if remaining <= 0 or self.closing:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(client.wake.wait(), timeout=remaining)
        finally:
            client.holding -= 1
            client.last_seen = self._clock()
        return events, _reply(message, clientId=client.client_id, successful=True, advice=advice)

    # -- test hook -------------------------------------------------------------------------

    def configure(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Apply ``/_sandbox/cometd`` settings and actions; returns what was done.

        Keys: ``connect_timeout``, ``idle_timeout``, ``delivery_limit``,
        ``deliveries_used``, ``max_clients``, ``view_all_data``, ``unavailable``,
        ``event_retention`` (purges at once), ``cdc_entities`` (list or null),
        ``drop_sessions`` (true), ``gap`` (``{"object", "change_type", "record_ids"}``).

        Raises:
            ValueError: a key or value is not understood.
        """
        known = {
            "connect_timeout",
            "idle_timeout",
            "delivery_limit",
            "deliveries_used",
            "max_clients",
            "view_all_data",
            "unavailable",
            "event_retention",
            "cdc_entities",
            "drop_sessions",
            "gap",
        }
        unknown = set(spec) - known
        if unknown:
            raise ValueError(f"unknown streaming settings: {sorted(unknown)}")
        s = self.settings
        for name in ("connect_timeout", "idle_timeout"):
            if name in spec:
                value = float(spec[name])
                if value < 0:
                    raise ValueError(f"{name} must not be negative")
                setattr(s, name, value)
        for name in ("delivery_limit", "max_clients"):
            if name in spec:
                number = int(spec[name])
                if number < 0:
                    raise ValueError(f"{name} must not be negative")
                setattr(s, name, number)
        for name in ("view_all_data", "unavailable"):
            if name in spec:
                setattr(s, name, bool(spec[name]))
        if "deliveries_used" in spec:
            self.deliveries.set_used(max(0, int(spec["deliveries_used"])))
        if "cdc_entities" in spec:
            entities = spec["cdc_entities"]
            if entities is not None and not isinstance(entities, list):
                raise ValueError("cdc_entities must be a list of object names or null")
            for name in entities or []:
                if self.store.schema.get(str(name)) is None:
                    raise ValueError(f"no object {name!r}")
            self.store.cdc_entities = (
                None if entities is None else {str(e).lower() for e in entities}
            )
        if "event_retention" in spec:
            retention = float(spec["event_retention"])
            if retention < 0:
                raise ValueError("event_retention must not be negative")
            self.store.event_retention = retention
            self.store.purge_events()
        done: dict[str, Any] = {}
        if spec.get("drop_sessions"):
            done["dropped"] = self.drop_all()
        if "gap" in spec:
            gap = spec["gap"]
            if not isinstance(gap, dict):
                raise ValueError("gap must be an object")
            obj = self.store.schema.get(str(gap.get("object", "")))
            if obj is None:
                raise ValueError(f"no object {gap.get('object')!r}")
            change_type = str(gap.get("change_type", "GAP_UPDATE"))
            record_ids = gap.get("record_ids") or []
            if not isinstance(record_ids, list):
                raise ValueError("record_ids must be a list")
            done["gap_replay_id"] = self.store.emit_gap(
                obj, change_type, [str(r) for r in record_ids]
            )
        return done
