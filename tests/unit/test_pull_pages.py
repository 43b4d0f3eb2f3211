import threading
import time

import pytest

from sync.pull.pages import Prefetcher
from sync.pull.reconcile import IdOrderError, missing_from, ordered_ids


def test_given_source_when_prefetched_then_items_in_order():
    with Prefetcher(lambda: iter(range(10))) as pages:
        assert list(pages) == list(range(10))


def test_given_slow_consumer_when_prefetched_then_producer_stays_bounded():
    produced = []

    def source():
        for n in range(100):
            produced.append(n)
            yield n

    with Prefetcher(source, depth=2) as pages:
        iterator = iter(pages)
        assert next(iterator) == 0
        time.sleep(0.3)
        # one consumed, two queued, one in the producer's hand waiting for room
        assert len(produced) <= 4


def test_given_producer_error_when_consumed_then_raised_after_earlier_pages():
    def source():
        yield 1
        raise RuntimeError("page 2 failed")

    seen = []
    with pytest.raises(RuntimeError, match="page 2 failed"), Prefetcher(source) as pages:
        for page in pages:
            seen.append(page)
    assert seen == [1]


def test_given_consumer_stops_when_closed_then_producer_thread_ends():
    started = threading.Event()

    def source():
        n = 0
        while True:
            started.set()
            yield n
            n += 1

    prefetcher = Prefetcher(source, depth=1, name="endless")
    with prefetcher as pages:
        next(iter(pages))
    assert started.is_set()
    time.sleep(0.3)
    assert not any(t.name == "prefetch-endless" for t in threading.enumerate())


def test_given_sorted_streams_when_compared_then_local_only_values_reported():
    local = ["a1", "a2", "a3", "a5", "a7", "a9"]
    remote = ["a0", "a2", "a3", "a4", "a7"]

    assert list(missing_from(local, remote)) == ["a1", "a5", "a9"]


def test_given_empty_remote_when_compared_then_everything_missing():
    assert list(missing_from(["a", "b"], [])) == ["a", "b"]


def test_given_ids_out_of_byte_order_when_checked_then_refused():
    with pytest.raises(IdOrderError, match="not in byte order"):
        list(ordered_ids(["001a", "001B"]))


def test_given_ids_in_byte_order_when_checked_then_passed_through():
    assert list(ordered_ids(["001A", "001B", "001a"])) == ["001A", "001B", "001a"]


def test_given_busy_consumer_when_prefetched_then_producer_prepares_waiting_pages():
    def prepare(page):
        return {**page, "prepared_by": threading.current_thread().name}

    with Prefetcher(
        lambda: ({"n": n} for n in range(4)), depth=2, name="pages", prepare=prepare
    ) as pages:
        received = []
        for page in pages:
            time.sleep(0.2)  # a slow writer: the next pages are queued meanwhile
            received.append(page)

    assert [page["n"] for page in received] == [0, 1, 2, 3]
    # the first page finds an empty queue; later ones find the consumer busy
    assert "prepared_by" not in received[0]
    assert {page.get("prepared_by") for page in received[2:]} == {"prefetch-pages"}


def test_given_idle_consumer_when_prefetched_then_pages_handed_over_unprepared():
    prepared = []

    def source():
        for n in range(3):
            time.sleep(0.05)  # a slow CRM: the consumer waits for every page
            yield n

    with Prefetcher(source, prepare=lambda page: prepared.append(page) or page) as pages:
        assert list(pages) == [0, 1, 2]
    assert prepared == []
