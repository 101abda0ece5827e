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


# ---- DynamicBatcher: batches bounded by a cost budget as well as a count


async def _batches_of(costs: list[float], max_batch_size: int, max_batch_cost: float | None) -> list[list[float]]:
    import asyncio

    from llama_index_mm_st.concurrency import DynamicBatcher

    seen: list[list[float]] = []
    gate = threading.Event()

    def run(batch):  # type: ignore[no-untyped-def]
        gate.wait(5)  # the first batch holds until everything is queued
        seen.append(list(batch))
        return [c * 2 for c in batch]

    options = {} if max_batch_cost is None else {"cost": float, "max_batch_cost": max_batch_cost}
    batcher = DynamicBatcher(run, max_batch_size=max_batch_size, **options)
    tasks = [asyncio.create_task(batcher.submit(c)) for c in costs]
    await asyncio.sleep(0.05)
    gate.set()
    results = await asyncio.gather(*tasks)
    assert results == [c * 2 for c in costs]
    return seen


async def test_batches_stay_within_the_cost_budget() -> None:
    costs = [1.0, 4.0, 4.0, 3.0, 9.0, 1.0, 1.0, 20.0, 2.0]
    seen = await _batches_of(costs, max_batch_size=64, max_batch_cost=8.0)
    assert [c for batch in seen for c in batch] == costs  # FIFO, nothing lost
    for batch in seen:
        assert len(batch) == 1 or sum(batch) <= 8.0  # an item over the budget runs alone
    assert [20.0] in seen and [9.0] in seen


async def test_without_a_budget_only_the_count_bounds_a_batch() -> None:
    seen = await _batches_of([5.0] * 7, max_batch_size=3, max_batch_cost=None)
    assert [len(batch) for batch in seen] == [3, 3, 1]


async def test_urgent_items_go_ahead_of_queued_ones_in_their_own_order() -> None:
    """While a batch runs, bulk items queue; urgent ones (a search's query) are taken ahead of them, FIFO
    among themselves, and nothing is lost or answered out of place."""
    import asyncio

    from llama_index_mm_st.concurrency import DynamicBatcher

    seen: list[list[str]] = []
    gate = threading.Event()

    def run(batch):  # type: ignore[no-untyped-def]
        gate.wait(5)  # the first batch holds until everything is queued
        seen.append(list(batch))
        return [item.upper() for item in batch]

    batcher: DynamicBatcher[str, str] = DynamicBatcher(run, max_batch_size=2)
    first = asyncio.create_task(batcher.submit("running"))
    await asyncio.sleep(0.05)  # "running" is in the worker now
    items = [("doc1", False), ("doc2", False), ("q1", True), ("doc3", False), ("q2", True), ("q3", True)]
    tasks = [asyncio.create_task(batcher.submit(item, urgent)) for item, urgent in items]
    await asyncio.sleep(0.05)
    gate.set()
    results = await asyncio.gather(first, *tasks)
    assert results == ["RUNNING"] + [item.upper() for item, _ in items]
    assert seen == [["running"], ["q1", "q2"], ["q3", "doc1"], ["doc2", "doc3"]]


def test_cost_and_budget_go_together() -> None:
    from llama_index_mm_st.concurrency import DynamicBatcher

    with pytest.raises(ValueError, match="give both or neither"):
        DynamicBatcher(lambda batch: batch, cost=float)
    with pytest.raises(ValueError, match="max_batch_cost must be > 0"):
        DynamicBatcher(lambda batch: batch, cost=float, max_batch_cost=0)
