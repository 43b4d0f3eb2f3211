"""`billing-sync run`, `pause` and `resume`.

``run`` is the whole service in one process when no broker is configured: the portal on
``--host``/``--port`` and, on threads beside it, the same periodic jobs Celery beat and
workers run (change check and pulls, reconcile, push). With ``BILLING_SYNC_BROKER_URL``
set, the background work belongs to ``celery -A workers.app worker`` and ``beat``, and
``run`` serves only the portal (the ``web`` service of docker-compose.yml).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sync.context import SyncContext
from sync.crm.errors import CrmError
from sync.db import service_state
from sync.db.engine import make_engine, upgrade
from sync.db.repo import set_paused
from sync.db.shapes import MIRRORED_SHAPES
from sync.events.runner import in_process
from sync.mapping.loader import default_mappings_dir, load_mappings
from sync.mapping.spec import MappingError
from sync.service.flush import Flusher
from sync.service.jobs import Runtime, utc_now
from sync.service.listener_status import SAFETY_KEY
from sync.service.locks import LocalLocks
from sync.service.queue import NoTaskQueueError, TaskQueueFactory
from sync.service.scheduler import InProcessScheduler
from sync.settings import Settings, SettingsError

log = logging.getLogger(__name__)

BROKER_NOTE = """\
BILLING_SYNC_BROKER_URL is set, so background sync runs on Celery, not in this process:
    celery -A workers.app worker -Q pull,maintenance,push
    celery -A workers.app beat
This process serves the portal only.
"""


def _say(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def _err(text: str) -> None:
    sys.stderr.write(f"billing-sync: {text}\n")


def portal_available() -> bool:
    """True when this installation includes the portal web app."""
    return importlib.util.find_spec("sync.portal.server") is not None


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGINT/SIGTERM while inside (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_service(
    settings: Settings,
    *,
    host: str,
    port: int,
    ctx: Any = None,
    stop: threading.Event | None = None,
    on_ready: Callable[[str | None], None] | None = None,
) -> int:
    """Run the in-process service until ``stop`` is set (or SIGINT/SIGTERM).

    Args:
        settings: the settings (no broker).
        host: the portal's address.
        port: the portal's port (0: any free port).
        ctx: a ready :class:`sync.context.SyncContext` (default: built from settings).
        stop: set it to stop the service (default: a private event set by signals).
        on_ready: called with the portal's base URL (None without a portal) once
            everything runs.

    Returns:
        The exit code.
    """
    stop = stop or threading.Event()
    own_ctx = ctx is None
    if ctx is None:
        ctx = SyncContext.from_settings(settings)
    rt = Runtime(settings=settings, ctx=ctx, locks=LocalLocks())
    scheduler = InProcessScheduler(rt)
    flusher = Flusher(ctx.engine)
    portal: Any = None
    listener: Any = None
    try:
        url = None
        flusher.start()
        if portal_available():
            portal = _portal(settings, ctx.engine, host, port, push_trigger=scheduler.trigger_push)
            url = portal.start()
        scheduler.start()
        # Change Data Capture: events queue the pulls; the change check becomes the
        # safety net while the listener is healthy.

        listener = in_process(rt, scheduler)
        if listener is not None:
            listener.start()
        if on_ready is not None:
            on_ready(url)
        _wait(stop)
    finally:
        if portal is not None:
            portal.stop()
        if listener is not None:
            listener.stop()
        scheduler.stop()
        flusher.stop()
        if own_ctx:
            ctx.close()
    return 0


def _portal(
    settings: Settings,
    engine: Any,
    host: str,
    port: int,
    push_trigger: Callable[[], None] | None = None,
) -> Any:
    # The portal is optional in an installation (see portal_available): imported only
    # when there is one.
    from sync.portal.server import PortalServer

    return PortalServer(settings, engine, host=host, port=port, push_trigger=push_trigger)


def _wait(stop: threading.Event) -> None:
    with _stop_on_signals(stop):
        while not stop.wait(0.5):
            pass


def serve_portal_only(
    settings: Settings,
    *,
    host: str,
    port: int,
    task_queue: TaskQueueFactory,
    log_level: int = logging.WARNING,
) -> int:
    """Serve the portal until SIGINT/SIGTERM; background work is elsewhere.

    The portal runs in ``settings.web_concurrency`` worker processes (see
    :mod:`sync.portal.workers`); each builds its own engine, its task queue client from
    ``task_queue`` (Accept queues a push on it) and its metrics flusher.
    """
    if not portal_available():
        _err("this installation has no portal; nothing to serve")
        return 1
    # The portal is optional in an installation (see portal_available).
    from sync.portal.workers import PortalFactory, serve_workers

    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    workers = settings.web_concurrency

    def ready(url: str) -> None:
        _say(
            f"billing-sync run: portal at {url}; {workers} web worker process"
            f"{'es' if workers != 1 else ''}; background sync on Celery. Ctrl-C stops."
        )

    factory = PortalFactory(settings, task_queue, log_level)
    code = serve_workers(factory, host=host, port=port, workers=workers, on_ready=ready)
    if code != 0:
        _err("the portal's worker processes did not start (see the log above)")
    return code


def run_command(
    args: argparse.Namespace, settings: Settings, *, task_queue: TaskQueueFactory | None = None
) -> int:
    """`billing-sync run [--host H] [--port P]`.

    ``task_queue`` builds the broker's queue when ``BILLING_SYNC_BROKER_URL`` is set.
    """
    try:
        if portal_available():
            settings.require_portal_secret()
        if settings.broker_url:
            if task_queue is None:
                raise NoTaskQueueError
            _say(BROKER_NOTE)
            return serve_portal_only(
                settings,
                host=args.host,
                port=args.port,
                task_queue=task_queue,
                log_level=logging.getLogger().getEffectiveLevel(),
            )

        def ready(url: str | None) -> None:
            where = f"portal at {url}" if url else "no portal in this installation"
            _say(
                f"billing-sync run: {where}; change check every {settings.pull_interval:g} s "
                "(in-process, no broker). Ctrl-C stops."
            )

        return run_service(settings, host=args.host, port=args.port, on_ready=ready)
    except (SettingsError, MappingError, NoTaskQueueError) as exc:
        _err(str(exc))
        return 2
    except CrmError as exc:
        _err(f"the CRM could not be reached: {exc}")
        return 1


def _set_paused(args: argparse.Namespace, settings: Settings, paused: bool) -> int:
    try:
        mappings = load_mappings(default_mappings_dir(settings.mappings_dir), MIRRORED_SHAPES)
    except MappingError as exc:
        _err(str(exc))
        return 2
    if args.name not in mappings:
        _err(f"no mapping called {args.name!r} (known: {', '.join(mappings.names)})")
        return 2
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
        set_paused(engine, args.name, paused, now=utc_now())
        if not paused:
            # events for a paused mapping are ignored: check the listening mappings at
            # the next tick instead of waiting for the safety interval

            service_state.remove(engine, SAFETY_KEY)
    finally:
        engine.dispose()
    if paused:
        _say(f"{args.name}: paused; `billing-sync resume {args.name}` restarts its polling")
    else:
        _say(f"{args.name}: resumed; the next change check includes it")
    return 0


def pause_command(args: argparse.Namespace, settings: Settings) -> int:
    """`billing-sync pause NAME`: stop polling mapping NAME."""
    return _set_paused(args, settings, True)


def resume_command(args: argparse.Namespace, settings: Settings) -> int:
    """`billing-sync resume NAME`: restart polling mapping NAME."""
    return _set_paused(args, settings, False)
