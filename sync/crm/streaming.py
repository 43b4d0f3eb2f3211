"""The Streaming API client: Bayeux (CometD) long polling for Change Data Capture.

A small, synchronous Bayeux client over the CRM client's own HTTP session and login, so
the instance-URL rewriting, the timeouts and the session renewal of
:mod:`sync.crm.transport` apply to streaming too. It speaks what Salesforce's
``/cometd/{version}`` speaks (the rules it follows, each tested):

- ``/meta/handshake`` with ``ext: {"replay": true}``; the answer's ``clientId`` and the
  ``BAYEUX_BROWSER`` cookie (kept by the session) identify the client afterwards. An
  answer without ``ext.replay`` means the org cannot replay: refused.
- ``/meta/subscribe`` with ``ext: {"replay": {channel: id}}`` (-1 new events, -2 every
  retained one, N the events after N). An id the CRM no longer has (``400::The replayId
  ...``) is answered by subscribing at -1 and reporting the channel as *replay lost*; a
  channel the org refuses (not selected for Change Data Capture, no View All Data) is
  reported as *refused* and not retried.
- ``/meta/connect`` held by the server up to ``advice.timeout``; the HTTP read timeout is
  that plus a margin. ``advice.reconnect``: ``retry`` connects again (after
  ``advice.interval``), ``handshake`` (and ``403::Unknown client``) hands shakes again and
  resubscribes every channel after the last event it delivered, ``none`` gives up.
- ``401::`` answers (and ``403::Handshake denied`` whose reason is a ``401::``) log in
  again once, then hand shake again.
- HTTP 404 on ``/cometd``: the org has no Streaming API (:class:`StreamingUnavailableError`);
  ``403::Organization total events daily limit exceeded``:
  :class:`DeliveryLimitExceededError`.

Streaming requests are not API calls: they are never counted in :attr:`api_calls`.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson
import requests

from sync.crm.auth import Authentication
from sync.crm.errors import CrmError, ErrorResolution, TransientCrmError, error_from_transport
from sync.crm.transport import CrmTransport

logger = logging.getLogger("sync.crm.streaming")

REPLAY_NEW = -1
"""Subscribe for events published from now on."""
REPLAY_ALL = -2
"""Subscribe for every event the CRM still retains (72 hours for change events)."""

DEFAULT_CONNECT_TIMEOUT = 110.0
"""Salesforce holds a connect this long (``advice.timeout``) before answering empty."""
READ_MARGIN = 15.0
"""Seconds on top of ``advice.timeout`` before a held connect counts as lost."""
CLOSE_TIMEOUT = 2.0
"""Seconds :meth:`StreamingClient.close` waits to connect, and then for the answer: a
stop must not wait for a CRM that does not answer."""


class StreamingError(CrmError):
    """A Streaming API request failed in a way the listener must act on."""


class StreamingUnavailableError(StreamingError):
    """The org serves no Streaming API here (404 on ``/cometd``) or refuses replay."""

    default_resolution = ErrorResolution.FAIL


class DeliveryLimitExceededError(StreamingError):
    """The org's daily event delivery allocation is spent."""

    default_resolution = ErrorResolution.RATE_LIMITED


class HandshakeRefusedError(StreamingError):
    """The handshake was refused for a reason other than an expired session."""

    default_resolution = ErrorResolution.FAIL


class Outcome(StrEnum):
    """How a subscription request ended."""

    SUBSCRIBED = "subscribed"
    REPLAY_LOST = "replay_lost"  # the replay id was invalid; subscribed at -1 instead
    REFUSED = "refused"  # the org refuses the channel; not retried


@dataclass(frozen=True)
class Subscription:
    """The answer to one subscription: outcome and the CRM's error text."""

    channel: str
    outcome: Outcome
    error: str | None = None


@dataclass
class PollResult:
    """What one ``/meta/connect`` brought.

    Attributes:
        events: the delivered messages (``{"channel", "data": {...}}``), in order.
        resubscribed: subscriptions redone after a new handshake (empty otherwise).
    """

    events: list[dict[str, Any]] = field(default_factory=list)
    resubscribed: list[Subscription] = field(default_factory=list)


def is_invalid_replay(error: str | None) -> bool:
    """True for the CRM's "replayId ... you provided was invalid" subscribe error."""
    return bool(error) and str(error).startswith("400::The replayId ")


def replay_id_of(message: dict[str, Any]) -> int | None:
    """``data.event.replayId`` of a delivered message, or None."""
    data = message.get("data")
    if not isinstance(data, dict):
        return None
    event = data.get("event")
    value = event.get("replayId") if isinstance(event, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class StreamingClient:
    """One Bayeux client of the org, on the CRM client's session and login.

    Not thread-safe: one listener thread drives it. :attr:`channels` holds, per
    subscribed channel, the replay id to resume after (updated as events arrive), which
    is what a new handshake resubscribes with.

    Args:
        crm: the CRM client (its session, login and API version are used).
        sleep: waits between connects (tests pass a fake one).
    """

    def __init__(self, crm: CrmTransport, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.crm = crm
        self.channels: dict[str, int] = {}
        self.client_id: str | None = None
        self.connect_timeout = DEFAULT_CONNECT_TIMEOUT
        self.handshakes = 0
        self.relogins = 0
        self._interval = 0.0
        self._sleep = sleep
        self._ids = itertools.count(1)
        self._closed = threading.Event()

    @property
    def path(self) -> str:
        """``/cometd/{version}``."""
        return f"/cometd/{self.crm.api_version}"

    # -- HTTP ----------------------------------------------------------------------------

    def _post(
        self,
        messages: list[dict[str, Any]],
        *,
        read_timeout: float = 30.0,
        connect_timeout: float = 10.0,
    ) -> list[dict[str, Any]]:
        """POST one batch; logs in again once on HTTP 401. Returns the answered messages."""
        timeouts = (connect_timeout, read_timeout)
        auth = self.crm._current_auth()
        response = self._send(auth, messages, timeouts)
        if response.status_code == 401:
            logger.info("streaming: session expired; logging in again")
            auth = self.crm._renew(auth)
            self.relogins += 1
            response = self._send(auth, messages, timeouts)
        if response.status_code == 404:
            raise StreamingUnavailableError(
                "the org serves no Streaming API at this address (404)",
                status=404,
                method="POST",
                endpoint=self.path,
            )
        if response.status_code >= 500:
            raise TransientCrmError(
                f"streaming answered {response.status_code}",
                status=response.status_code,
                method="POST",
                endpoint=self.path,
            )
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise TransientCrmError(
                f"streaming answer is not JSON (HTTP {response.status_code})",
                status=response.status_code,
                method="POST",
                endpoint=self.path,
            ) from None
        if response.status_code >= 400:
            error = body[0].get("error") if isinstance(body, list) and body else None
            raise StreamingError(
                f"streaming refused the request: {error or response.status_code}",
                status=response.status_code,
                method="POST",
                endpoint=self.path,
                resolution=ErrorResolution.FAIL,
            )
        if not isinstance(body, list):
            raise TransientCrmError(
                "streaming answer is not a list of messages", method="POST", endpoint=self.path
            )
        return [m for m in body if isinstance(m, dict)]

    def _send(
        self,
        auth: Authentication,
        messages: list[dict[str, Any]],
        timeouts: tuple[float, float],
    ) -> requests.Response:
        try:
            return self.crm.session.request(
                "POST",
                f"https://{auth.instance}{self.path}",
                data=orjson.dumps(messages),
                headers={
                    "Authorization": f"Bearer {auth.session_id}",
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                },
                timeout=timeouts,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise error_from_transport(exc, method="POST", endpoint=self.path) from exc

    def _message(self, channel: str, **fields: Any) -> dict[str, Any]:
        message: dict[str, Any] = {"channel": channel, "id": str(next(self._ids))}
        if self.client_id is not None and channel != "/meta/handshake":
            message["clientId"] = self.client_id
        message.update(fields)
        return message

    @staticmethod
    def _answer(answers: list[dict[str, Any]], channel: str) -> dict[str, Any]:
        for answer in answers:
            if answer.get("channel") == channel:
                return answer
        raise TransientCrmError(f"no {channel} answer", method="POST", endpoint="/cometd")

    # -- protocol ------------------------------------------------------------------------

    def handshake(self) -> None:
        """Hand shake (once more after a 401-caused refusal, logged in again).

        Raises:
            HandshakeRefusedError: the CRM refused for another reason.
            StreamingUnavailableError: 404, or the org does not offer replay.
            TransientCrmError: the CRM could not be reached.
        """
        for attempt in range(2):
            self.client_id = None
            message = self._message(
                "/meta/handshake",
                version="1.0",
                minimumVersion="1.0",
                supportedConnectionTypes=["long-polling"],
                ext={"replay": True},
            )
            answer = self._answer(self._post([message]), "/meta/handshake")
            if answer.get("successful"):
                ext = answer.get("ext")
                if not (isinstance(ext, dict) and ext.get("replay") is True):
                    raise StreamingUnavailableError(
                        "the org's Streaming API does not offer replay",
                        method="POST",
                        endpoint=self.path,
                    )
                self.client_id = str(answer["clientId"])
                self.handshakes += 1
                self._interval = 0.0
                return
            reason = _failure_reason(answer)
            if reason.startswith("401::") and attempt == 0:
                logger.info("streaming: handshake refused (%s); logging in again", reason)
                self.crm._renew(self.crm._current_auth())
                self.relogins += 1
                continue
            raise HandshakeRefusedError(
                f"handshake refused: {reason}", method="POST", endpoint=self.path
            )

    def subscribe(self, channel: str, replay_id: int) -> Subscription:
        """Subscribe to ``channel`` from ``replay_id``; an invalid id falls back to -1.

        Raises:
            TransientCrmError: the CRM could not be reached.
        """
        return self._subscribe_many({channel: replay_id})[0]

    def _subscribe_many(self, wanted: dict[str, int]) -> list[Subscription]:
        if not wanted:
            return []
        messages = [
            self._message(
                "/meta/subscribe", subscription=channel, ext={"replay": {channel: replay_id}}
            )
            for channel, replay_id in wanted.items()
        ]
        answers = self._post(messages)
        by_channel = {
            a.get("subscription"): a for a in answers if a.get("channel") == "/meta/subscribe"
        }
        out: list[Subscription] = []
        retry_new: list[str] = []
        for channel, replay_id in wanted.items():
            answer = by_channel.get(channel)
            if answer is None:
                raise TransientCrmError(
                    f"no subscribe answer for {channel}", method="POST", endpoint=self.path
                )
            if answer.get("successful"):
                self.channels[channel] = replay_id
                out.append(Subscription(channel, Outcome.SUBSCRIBED))
                continue
            error = str(answer.get("error") or "")
            if is_invalid_replay(error) and replay_id != REPLAY_NEW:
                logger.warning(
                    "streaming: %s: replay id %s is gone (%s)", channel, replay_id, error
                )
                retry_new.append(channel)
                out.append(Subscription(channel, Outcome.REPLAY_LOST, error))
                continue
            if error.startswith("403::Unknown client"):
                raise _UnknownClient(error)
            if error.startswith("401::"):
                raise _Reauthenticate(error)
            self.channels.pop(channel, None)
            out.append(Subscription(channel, Outcome.REFUSED, error))
        for channel in retry_new:
            answer = self._answer(
                self._post(
                    [
                        self._message(
                            "/meta/subscribe",
                            subscription=channel,
                            ext={"replay": {channel: REPLAY_NEW}},
                        )
                    ]
                ),
                "/meta/subscribe",
            )
            if answer.get("successful"):
                self.channels[channel] = REPLAY_NEW
            else:
                self.channels.pop(channel, None)
                out = [
                    Subscription(channel, Outcome.REFUSED, str(answer.get("error")))
                    if s.channel == channel
                    else s
                    for s in out
                ]
        return out

    def start(self, wanted: dict[str, int]) -> list[Subscription]:
        """Hand shake and subscribe to every channel of ``wanted`` (channel: replay id).

        Raises:
            StreamingError: see :meth:`handshake`.
            TransientCrmError: the CRM could not be reached.
        """
        self.channels = {}
        self.handshake()
        try:
            return self._subscribe_many(dict(wanted))
        except (_UnknownClient, _Reauthenticate):
            # the session was dropped between the two requests: once more, from scratch
            self.handshake()
            return self._subscribe_many(dict(wanted))

    def unsubscribe(self, channel: str) -> None:
        """Stop receiving ``channel`` (a failed answer is logged: the channel is dropped)."""
        self.channels.pop(channel, None)
        if self.client_id is None:
            return
        answer = self._answer(
            self._post([self._message("/meta/unsubscribe", subscription=channel)]),
            "/meta/unsubscribe",
        )
        if not answer.get("successful"):
            logger.info("streaming: unsubscribe %s: %s", channel, answer.get("error"))

    def _rehandshake(self) -> list[Subscription]:
        remembered = dict(self.channels)
        logger.info("streaming: handshaking again; resubscribing %d channel(s)", len(remembered))
        self.handshake()
        return self._subscribe_many(remembered)

    def poll(self) -> PollResult:
        """One long poll (``/meta/connect``): the events it delivered.

        Follows the server's advice: waits ``advice.interval`` first, hand shakes and
        resubscribes after ``403::Unknown client`` or ``reconnect: handshake``, logs in
        again after ``401::``.

        Raises:
            DeliveryLimitExceededError: the org's event allocation is spent.
            StreamingError: ``reconnect: none`` for another reason, or refused handshake.
            TransientCrmError: the CRM could not be reached (the caller backs off).
        """
        result = PollResult()
        if self._closed.is_set():
            return result
        if self.client_id is None:
            result.resubscribed = self._rehandshake()
        if self._interval > 0:
            self._sleep(self._interval)
        message = self._message("/meta/connect", connectionType="long-polling")
        answers = self._post([message], read_timeout=self.connect_timeout + READ_MARGIN)
        closed = self._closed.is_set()
        for answer in answers:
            channel = str(answer.get("channel") or "")
            if channel.startswith("/meta/"):
                continue
            result.events.append(answer)
            replay_id = replay_id_of(answer)
            if replay_id is not None and channel in self.channels:
                self.channels[channel] = replay_id
        reply = self._answer(answers, "/meta/connect")
        advice = reply.get("advice") if isinstance(reply.get("advice"), dict) else {}
        assert isinstance(advice, dict)
        if isinstance(advice.get("timeout"), int | float) and advice["timeout"] > 0:
            self.connect_timeout = float(advice["timeout"]) / 1000.0
        if isinstance(advice.get("interval"), int | float):
            self._interval = max(0.0, float(advice["interval"]) / 1000.0)
        if closed or (reply.get("successful") and advice.get("reconnect", "retry") == "retry"):
            # closed: the answer to the disconnect of close(); the events it carried are
            # handed over, and there is nothing to reconnect
            return result
        error = str(reply.get("error") or "")
        reconnect = advice.get("reconnect")
        if error.startswith("403::Organization total events daily limit exceeded"):
            self.client_id = None
            raise DeliveryLimitExceededError(error, method="POST", endpoint=self.path)
        if error.startswith("401::"):
            logger.info("streaming: %s; logging in again", error)
            self.crm._renew(self.crm._current_auth())
            self.relogins += 1
            result.resubscribed = self._rehandshake()
            return result
        if reconnect == "handshake" or error.startswith("403::Unknown client"):
            result.resubscribed = self._rehandshake()
            return result
        if reconnect == "none":
            self.client_id = None
            raise StreamingError(
                f"the CRM ended the stream: {error or 'reconnect none'}",
                method="POST",
                endpoint=self.path,
                resolution=ErrorResolution.RETRY,
            )
        return result

    def close(self) -> None:
        """Release the long poll held for this client and refuse further polls.

        Unlike the rest of the client, this is called from another thread while
        :meth:`poll` waits: it sends ``/meta/disconnect`` for the current client, which
        makes the server answer the held ``/meta/connect`` at once, and :meth:`poll`
        then returns what that answer carried without reconnecting.
        """
        self._closed.set()
        client_id = self.client_id
        if client_id is None:
            return
        message = {"channel": "/meta/disconnect", "id": "close", "clientId": client_id}
        try:
            self._post([message], read_timeout=CLOSE_TIMEOUT, connect_timeout=CLOSE_TIMEOUT)
        except CrmError as exc:
            logger.debug("streaming: disconnect failed: %s", exc)

    def disconnect(self) -> None:
        """Say goodbye (best effort: a failure only means the server forgets us later)."""
        if self.client_id is None or self._closed.is_set():  # close() said it already
            self.client_id = None
            return
        try:
            self._post([self._message("/meta/disconnect")], read_timeout=5.0)
        except CrmError as exc:
            logger.debug("streaming: disconnect failed: %s", exc)
        self.client_id = None


class _UnknownClient(TransientCrmError):
    """The server forgot the client between handshake and subscribe."""


class _Reauthenticate(TransientCrmError):
    """A subscribe answered ``401::``."""


def _failure_reason(answer: dict[str, Any]) -> str:
    ext = answer.get("ext")
    if isinstance(ext, dict):
        sfdc = ext.get("sfdc")
        if isinstance(sfdc, dict) and sfdc.get("failureReason"):
            return str(sfdc["failureReason"])
    return str(answer.get("error") or "unknown reason")
