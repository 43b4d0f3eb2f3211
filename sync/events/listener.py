"""The listener: one Streaming API session per org, change events in, pull requests out.

It subscribes to the channel of every mapping with ``events: true``, each from the
replay id stored for it (or -1 the first time), holds the CometD long poll, and for each
delivered event asks the :class:`~sync.events.trigger.PullTrigger` for a pull of the
event's mappings; the replay id handled is stored per channel in the database.

- A channel the org refuses leaves its mappings on polling (logged once, in ``status``).
- An invalid replay id (events purged while the listener was away): subscribed at -1 and
  every listening mapping is pulled at once.
- GAP_* events trigger the pull like any event; GAP_OVERFLOW also queues a reconcile.
- At start, one idle check (one ``/composite`` call per five mappings) queues the
  mappings that changed while nobody listened.
- The allocation guard reads ``DailyDeliveredPlatformEvents`` from ``/limits`` (every
  30 minutes, every 5 below a quarter left): below :attr:`ListenerOptions.low_share`
  remaining, the busiest channels (together at least half of the recent deliveries)
  are unsubscribed and their mappings poll again; they come back above
  :attr:`ListenerOptions.resume_share`.
- Stream trouble backs off (1 s doubling to a minute); a 404 on ``/cometd`` (no
  Streaming API) retries every 5 minutes, a spent allocation every 15.

While it is not listening, :func:`sync.service.listener_status.listener_status` reports it and
the change check polls every mapping at the configured interval.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from sync import pull as pull_engine
from sync.clock import utc_now
from sync.crm.errors import CrmError
from sync.crm.streaming import (
    REPLAY_NEW,
    DeliveryLimitExceededError,
    Outcome,
    StreamingClient,
    StreamingUnavailableError,
    Subscription,
)
from sync.db.repo import events as replay_repo
from sync.events.channels import plan_channels
from sync.events.model import parse_event
from sync.events.trigger import PullTrigger
from sync.service.jobs import paused_mappings
from sync.service.listener_status import HEARTBEAT, ChannelState, ListenerState, write_status

if TYPE_CHECKING:
    from sync.context import SyncContext
    from sync.service.jobs import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ListenerOptions:
    """Pacing of the listener.

    Attributes:
        allocation_every: seconds between reads of the delivery allocation.
        allocation_low_every: the same while less than a quarter is left.
        low_share: below this share of the allocation left, channels are dropped.
        resume_share: above this share left, dropped channels come back.
        backoff_max: cap of the backoff after stream failures.
        unavailable_retry: seconds before trying again after a 404 on ``/cometd``.
        exhausted_retry: seconds before trying again after the allocation ran out.
        catch_up: run one idle check at start for changes nobody listened to.
    """

    allocation_every: float = 1800.0
    allocation_low_every: float = 300.0
    low_share: float = 0.10
    resume_share: float = 0.20
    backoff_max: float = 60.0
    unavailable_retry: float = 300.0
    exhausted_retry: float = 900.0
    catch_up: bool = True


@dataclass
class ChannelInfo:
    """What the listener knows about one channel."""

    mappings: list[str]
    state: ChannelState = ChannelState.PENDING
    error: str | None = None
    replay_id: int | None = None
    events: int = 0
    recent: int = 0  # events since the last allocation check
    last_event_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "mappings": list(self.mappings),
            "state": self.state.value,
            "error": self.error,
            "replay_id": self.replay_id,
            "events": self.events,
            "last_event_at": self.last_event_at,
        }


@dataclass
class _Counters:
    events: int = 0
    gaps: int = 0
    replay_fallbacks: int = 0
    handshakes: int = 0
    last_event_at: float | None = None
    deliveries: dict[str, Any] | None = None
    started_at: float = field(default_factory=time.time)


class Listener:
    """Holds the streaming session and turns events into pull requests.

    Args:
        ctx: the sync context (database, CRM client, mappings).
        trigger: where pull requests go.
        runtime: the jobs' runtime, to count the listener's API calls in the budget.
        options: pacing.
        client: the streaming client (default: one on ``ctx.crm``).
        clock: wall clock (status timestamps).
        monotonic: the allocation check's clock.
        holder: who runs this listener (host:pid), shown in status.
    """

    def __init__(
        self,
        ctx: SyncContext,
        trigger: PullTrigger,
        *,
        runtime: Runtime | None = None,
        options: ListenerOptions | None = None,
        client: StreamingClient | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        holder: str = "",
    ) -> None:
        self.ctx = ctx
        self.trigger = trigger
        self.runtime = runtime
        self.options = options or ListenerOptions()
        self.client = client or StreamingClient(ctx.crm)
        self._clock = clock
        self._monotonic = monotonic
        self.holder = holder
        self.channels: dict[str, ChannelInfo] = {
            channel: ChannelInfo(mappings)
            for channel, mappings in plan_channels(ctx.mappings).items()
        }
        self.state = ListenerState.STARTING
        self._closed = threading.Event()
        self.detail: str | None = None
        self.counters = _Counters()
        self._mutex = threading.Lock()
        self._next_allocation_check = 0.0
        self._caught_up = False
        self._written_state: tuple[str, str | None] | None = None

    # -- status ------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The status document (what :func:`sync.service.listener_status.listener_status` reads)."""
        with self._mutex:
            c = self.counters
            return {
                "state": self.state.value,
                "detail": self.detail,
                "holder": self.holder,
                "channels": {ch: info.to_dict() for ch, info in self.channels.items()},
                "events": c.events,
                "gaps": c.gaps,
                "replay_fallbacks": c.replay_fallbacks,
                "handshakes": self.client.handshakes,
                "last_event_at": c.last_event_at,
                "deliveries": c.deliveries,
                "pending_pulls": self.trigger.pending(),
                "pulls_queued": self.trigger.queued,
                "coalesced": self.trigger.coalesced,
                "started_at": c.started_at,
            }

    def _set_state(self, state: ListenerState, detail: str | None = None) -> None:
        with self._mutex:
            changed = (state, detail) != (self.state, self.detail)
            self.state, self.detail = state, detail
        if changed:
            # listening, or stopped because it was told to: nothing anyone must act on
            normal = state is ListenerState.LISTENING or (
                state is ListenerState.STOPPED and detail is None
            )
            level = logging.INFO if normal else logging.WARNING
            log.log(level, "events listener %s%s", state.value, f": {detail}" if detail else "")
            self.write_status()

    def write_status(self) -> None:
        """Store the status document now (errors are logged: the next heartbeat retries)."""
        try:
            write_status(self.ctx.engine, self.status(), self._clock())
        except (SQLAlchemyError, RuntimeError) as exc:
            log.warning("listener status not written: %s", exc)

    def _heartbeat(self, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT):
            self.write_status()

    # -- the loop ----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Listen until ``stop`` is set (returns within one long poll of it)."""
        beat_stop = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat, args=(beat_stop,), name="listener-heartbeat", daemon=True
        )
        beat.start()
        try:
            self._loop(stop)
        finally:
            beat_stop.set()
            self.client.disconnect()
            self._set_state(ListenerState.STOPPED, None)
            beat.join(timeout=5)

    def close(self) -> None:
        """Stop listening for good; called from another thread while :meth:`run` runs.

        The long poll the CRM holds (up to 110 s) is released at once (see
        :meth:`StreamingClient.close`): the events its answer carries are still handled,
        then :meth:`run` returns.
        """
        self._closed.set()
        self.client.close()

    def _loop(self, stop: threading.Event) -> None:
        if not self.channels:
            self._set_state(ListenerState.STOPPED, "no mapping listens to events")
            return
        backoff = 1.0
        while not (stop.is_set() or self._closed.is_set()):
            try:
                if self.client.client_id is None:
                    self._start()
                    backoff = 1.0
                self._check_allocation()
                if not self._subscribed():
                    self._set_state(ListenerState.LISTENING, "no channel subscribed")
                    stop.wait(min(60.0, self.options.allocation_low_every))
                    continue
                self._set_state(ListenerState.LISTENING)
                result = self.client.poll()
                self._on_subscriptions(result.resubscribed)
                self._set_state(ListenerState.LISTENING)
                self._on_events(result.events)
            except StreamingUnavailableError as exc:
                # start over (handshake, subscribe every channel) when it is back
                self.client.client_id = None
                self._all_channels(ChannelState.PENDING)
                self._set_state(ListenerState.UNAVAILABLE, str(exc))
                stop.wait(self.options.unavailable_retry)
            except DeliveryLimitExceededError as exc:
                self.client.client_id = None
                self._all_channels(ChannelState.PENDING)
                self._set_state(ListenerState.EXHAUSTED, str(exc))
                stop.wait(self.options.exhausted_retry)
            except (CrmError, SQLAlchemyError) as exc:
                self.client.client_id = None
                if self._closed.is_set():  # the CRM went away while we were leaving
                    break
                self._set_state(
                    ListenerState.RECONNECTING,
                    f"{type(exc).__name__}: {exc}; retry in {backoff:g} s",
                )
                stop.wait(backoff)
                backoff = min(backoff * 2.0, self.options.backoff_max)

    def _subscribed(self) -> bool:
        return any(i.state is ChannelState.LISTENING for i in self.channels.values())

    def _all_channels(self, state: ChannelState) -> None:
        with self._mutex:
            for info in self.channels.values():
                if info.state is ChannelState.LISTENING:
                    info.state = state

    def _start(self) -> None:
        """Hand shake, subscribe every wanted channel after its stored replay id."""
        stored = replay_repo.replay_ids(self.ctx.engine)
        wanted: dict[str, int] = {}
        for channel, info in self.channels.items():
            if info.state in (ChannelState.REFUSED, ChannelState.SUSPENDED):
                continue
            replay_id = stored.get(channel)
            wanted[channel] = replay_id if replay_id is not None else REPLAY_NEW
            info.replay_id = replay_id
        self._on_subscriptions(self.client.start(wanted))
        if self.options.catch_up and not self._caught_up:
            self._catch_up()

    def _catch_up(self) -> None:
        """One idle check for what changed while nobody listened; queues those pulls."""
        names = self.listening_mappings()
        # A listener killed between marking a pull queued and sending it leaves a marker
        # that would make requests look satisfied until it expires; a duplicate pull is
        # harmless (it skips a mapping whose pull runs), a missed one is not.
        for name in names:
            self.trigger.locks.clear_queued(name)
        if names:
            changed = pull_engine.changed_mappings(self.ctx, names, now=self._clock())
            self._account()
            if changed:
                log.info("events listener: catching up on %s", ", ".join(changed))
                self._request(list(changed))
        self._caught_up = True

    def listening_mappings(self) -> list[str]:
        """Mappings of the channels subscribed now."""
        with self._mutex:
            return sorted(
                {
                    m
                    for info in self.channels.values()
                    if info.state is ChannelState.LISTENING
                    for m in info.mappings
                }
            )

    def _on_subscriptions(self, subscriptions: list[Subscription]) -> None:
        pull_all = False
        for sub in subscriptions:
            info = self.channels.get(sub.channel)
            if info is None:
                continue
            if sub.outcome is Outcome.REFUSED:
                if info.state is not ChannelState.REFUSED:
                    log.warning(
                        "events: the CRM refuses %s (%s); %s stay on polling",
                        sub.channel,
                        sub.error,
                        ", ".join(info.mappings),
                    )
                with self._mutex:
                    info.state, info.error = ChannelState.REFUSED, sub.error
                continue
            with self._mutex:
                info.state, info.error = ChannelState.LISTENING, None
            if sub.outcome is Outcome.REPLAY_LOST:
                log.warning(
                    "events: %s: stored replay id %s is no longer available; "
                    "listening from new events and pulling every listening mapping",
                    sub.channel,
                    info.replay_id,
                )
                with self._mutex:
                    info.replay_id = None
                    self.counters.replay_fallbacks += 1
                replay_repo.save_replay_id(self.ctx.engine, sub.channel, None, self._clock())
                pull_all = True
        if pull_all:
            self._request(self.listening_mappings())

    def _on_events(self, messages: list[dict[str, Any]]) -> None:
        if not messages:
            return
        now = self._clock().timestamp()
        last_ids: dict[str, int] = {}
        wanted: dict[str, list[bool]] = {}  # channel -> [GAP_OVERFLOW seen]
        for message in messages:
            event = parse_event(message)
            info = self.channels.get(event.channel)
            if info is None:
                continue
            with self._mutex:
                info.events += 1
                info.recent += 1
                info.last_event_at = now
                self.counters.events += 1
                self.counters.last_event_at = now
                if event.is_gap:
                    self.counters.gaps += 1
            if event.is_gap:
                log.info(
                    "events: %s on %s (%d records); pulling %s",
                    event.change_type,
                    event.channel,
                    len(event.record_ids),
                    ", ".join(info.mappings),
                )
            wanted.setdefault(event.channel, [False])[0] |= event.is_overflow
            if event.replay_id is not None:
                last_ids[event.channel] = event.replay_id
        for channel, (overflow,) in wanted.items():
            self._request(self.channels[channel].mappings, reconcile=overflow)
        when = self._clock()
        for channel, replay_id in last_ids.items():
            replay_repo.save_replay_id(self.ctx.engine, channel, replay_id, when)
            with self._mutex:
                self.channels[channel].replay_id = replay_id
        self.write_status()

    def _request(self, names: list[str], *, reconcile: bool = False) -> None:
        """Ask for pulls of ``names``, leaving out paused mappings (pause holds)."""
        paused = paused_mappings(self.ctx)
        wanted = [n for n in names if n not in paused]
        if wanted or reconcile:
            self.trigger.request(wanted, reconcile=reconcile)

    # -- the allocation guard ----------------------------------------------------------

    def _account(self) -> None:
        if self.runtime is not None:
            self.runtime.account(one_off=True)

    def _check_allocation(self) -> None:
        now = self._monotonic()
        if now < self._next_allocation_check:
            return
        try:
            limits = self.ctx.crm.limits()
        except CrmError as exc:
            # the stream itself is fine: keep listening, look again soon
            log.warning("events: delivery allocation not read (%s); retry later", exc)
            self._next_allocation_check = now + self.options.allocation_low_every
            return
        finally:
            self._account()
        entry = limits.get("DailyDeliveredPlatformEvents")
        if not isinstance(entry, dict) or not entry.get("Max"):
            self._next_allocation_check = now + self.options.allocation_every
            return
        limit = int(entry["Max"])
        remaining = max(0, int(entry.get("Remaining") or 0))
        share = remaining / limit
        with self._mutex:
            self.counters.deliveries = {
                "used": limit - remaining,
                "max": limit,
                "remaining": remaining,
                "seen_at": self._clock().timestamp(),
            }
        self._next_allocation_check = now + (
            self.options.allocation_low_every if share < 0.25 else self.options.allocation_every
        )
        if share < self.options.low_share:
            self._suspend_busiest(remaining, limit)
        elif share >= self.options.resume_share:
            self._resume_suspended()
        with self._mutex:
            for info in self.channels.values():
                info.recent = 0

    def _suspend_busiest(self, remaining: int, limit: int) -> None:
        listening = [
            (info.recent, channel)
            for channel, info in self.channels.items()
            if info.state is ChannelState.LISTENING
        ]
        if not listening:
            return
        listening.sort(key=lambda item: (-item[0], item[1]))
        total = sum(count for count, _ in listening)
        dropped: list[str] = []
        taken = 0
        for count, channel in listening:
            dropped.append(channel)
            taken += count
            if taken * 2 >= total:
                break
        reason = f"{remaining:,} of {limit:,} daily event deliveries left"
        for channel in dropped:
            info = self.channels[channel]
            log.warning(
                "events: %s; unsubscribing %s (%d recent events); %s poll again",
                reason,
                channel,
                info.recent,
                ", ".join(info.mappings),
            )
            if self.client.client_id is not None:
                self.client.unsubscribe(channel)
            with self._mutex:
                info.state, info.error = ChannelState.SUSPENDED, reason
        self.write_status()

    def _resume_suspended(self) -> None:
        suspended = [c for c, i in self.channels.items() if i.state is ChannelState.SUSPENDED]
        if not suspended or self.client.client_id is None:
            return
        log.info("events: allocation recovered; subscribing %s again", ", ".join(suspended))
        results = [self.client.subscribe(channel, REPLAY_NEW) for channel in suspended]
        self._on_subscriptions(results)
        # their changes were polled meanwhile; a pull closes the gap since the last poll
        self._request([m for c in suspended for m in self.channels[c].mappings])
        self.write_status()


def run_exclusive(
    listener: Listener,
    stop: threading.Event,
    lock: Any,
    *,
    retry: float = 5.0,
    before_acquire: Callable[[], None] | None = None,
) -> None:
    """Run ``listener`` only while holding ``lock`` (one active listener per org).

    A standby process retries the lock every ``retry`` seconds and takes over when the
    active listener's lock expires (its process died). Losing the lock stops listening.
    ``before_acquire`` runs before each attempt (it may free a lock whose holder is
    known to be dead).
    """
    while not stop.is_set():
        if before_acquire is not None:
            before_acquire()
        if not lock.acquire():
            stop.wait(retry)
            continue
        log.info("events listener: this process is the active listener")
        combined = threading.Event()

        def watch(done: threading.Event = combined) -> None:
            while not done.is_set():
                if lock.lost:
                    log.error("events listener: lock lost to another process; standing by")
                    done.set()
                elif stop.is_set():
                    done.set()
                else:
                    stop.wait(0.5)

        threading.Thread(target=watch, daemon=True, name="listener-lock-watch").start()
        try:
            listener.run(combined)
        finally:
            combined.set()
            lock.release()
