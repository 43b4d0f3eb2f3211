"""Fetch the next query page while the current one is written.

A producer thread pages through the CRM into a bounded queue; the caller converts and
stores each page as it arrives. At most ``depth`` pages wait in the queue, plus the one
being fetched and the one being stored, so memory stays bounded by a few pages whatever
the volume. An exception in the producer is raised in the consumer at the point of the
page that failed; closing the consumer stops the producer.

Work that either side may do (converting a page) goes to the side that has time: the
producer does it while the consumer is still busy with an earlier page, otherwise it
hands the page over as is and fetches the next one at once.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")

_PAGE, _DONE, _ERROR = "page", "done", "error"


class Prefetcher(Generic[T]):
    """Iterate ``source()`` in a background thread, ``depth`` items ahead.

    Use it as a context manager so that the thread stops when the consumer does::

        with Prefetcher(lambda: crm.query_pages(soql)) as pages:
            for page in pages:
                store(page)
    """

    def __init__(
        self,
        source: Callable[[], Iterator[T]],
        *,
        depth: int = 2,
        name: str = "",
        prepare: Callable[[T], T] | None = None,
    ) -> None:
        """Set up the producer (started by ``with``).

        Args:
            source: makes the iterator to run in the producer thread.
            depth: items waiting in the queue at most.
            name: names the thread.
            prepare: work on an item that the producer does when the consumer is busy
                with an earlier one (the consumer does what was left undone).

        Raises:
            ValueError: depth below 1.
        """
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self._source = source
        self._prepare = prepare
        self._queue: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"prefetch-{name}" if name else "prefetch", daemon=True
        )
        self._started = False

    def _put(self, item: tuple[str, object]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
            except queue.Full:
                continue
            return True
        return False

    def _run(self) -> None:
        try:
            for page in self._source():
                if self._prepare is not None and not self._queue.empty():
                    # The consumer has not taken the previous page yet: this thread
                    # has time to spare, the consumer does not.
                    page = self._prepare(page)
                if not self._put((_PAGE, page)):
                    return
            self._put((_DONE, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self._put((_ERROR, exc))

    def __enter__(self) -> Prefetcher[T]:
        self._started = True
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[T]:
        if not self._started:
            raise RuntimeError("use Prefetcher as a context manager")
        while True:
            kind, value = self._queue.get()
            if kind == _DONE:
                return
            if kind == _ERROR:
                assert isinstance(value, BaseException)
                raise value
            yield value  # type: ignore[misc]

    def close(self, timeout: float = 5.0) -> None:
        """Stop the producer and wait (briefly) for it; pages not consumed are dropped."""
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._started and self._thread.is_alive():
            self._thread.join(timeout)
