"""``Prefetched``: a producer thread runs ahead of its consumer, bounded, and stops when the consumer does."""

from __future__ import annotations

import threading
import time
from typing import Iterator

import pytest

from llama_index_mm_st.concurrency import Prefetched


def test_items_arrive_in_order_and_complete() -> None:
    assert list(Prefetched(iter(range(100)), depth=3)) == list(range(100))


def test_the_producer_runs_at_most_depth_items_ahead() -> None:
    produced: list[int] = []

    def source() -> Iterator[int]:
        for i in range(50):
            produced.append(i)
            yield i

    stream = Prefetched(source(), depth=2)
    iterator = iter(stream)
    assert next(iterator) == 0
    deadline = time.monotonic() + 5
    while len(produced) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    # one item consumed, two queued, one produced and waiting for room: never the whole source
    assert len(produced) <= 4
    stream.close()


def test_a_producer_error_reaches_the_consumer_after_the_good_items() -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise KeyError("boom")

    received = []
    with pytest.raises(KeyError, match="boom"):
        for item in Prefetched(source()):
            received.append(item)
    assert received == [1, 2]


def test_breaking_out_stops_the_producer() -> None:
    def endless() -> Iterator[int]:
        i = 0
        while True:
            yield i
            i += 1

    before = {t for t in threading.enumerate() if t.name == "mmst-prefetch"}
    for item in Prefetched(endless(), depth=1):
        if item == 3:
            break
    left = {t for t in threading.enumerate() if t.name == "mmst-prefetch"} - before
    assert not any(t.is_alive() for t in left)


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="depth must be >= 1"):
        Prefetched(iter(()), depth=0)
