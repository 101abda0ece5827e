"""Concurrency helpers shared by the components: ``Prefetched`` and ``DynamicBatcher``.

``Prefetched`` runs a producer ahead of its consumer in a background thread, with a bounded queue.

Used to decode and preprocess batch N+1 while the model runs batch N. The queue bound keeps memory
flat (at most ``depth`` prepared batches exist at once), and closing the iterator early (an error in
the consumer, or ``break``) stops the producer instead of leaving it blocked.

``DynamicBatcher`` coalesces concurrent async calls, as Infinity does it. Concurrent calls each
submit one item. While one batch runs, new items queue up; when it is done the batcher takes
everything queued (up to ``max_batch_size``) as the next batch. So 64 concurrent queries cost one or
two batched calls instead of 64, and a lone call still runs at once with no timer to wait for. The
batch runs in a worker thread, so the event loop never blocks. The embedding batches model forward
passes with it, the store batches engine queries (``EdgeShard.query_batch``), the server batches
requests from many clients. A batch may also be bounded by a budget (``cost`` per item, at most
``max_batch_cost`` per batch: tokens, pixels), not only by its item count: 64 queued images of 12
megapixels are not the same load as 64 short texts. An item over the budget on its own still runs,
alone.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Callable, Generic, Iterator, Optional, Sequence, TypeVar, Union

T = TypeVar("T")
R = TypeVar("R")

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Prefetched(Generic[T]):
    """Iterate ``source`` with up to ``depth`` items produced ahead in a daemon thread."""

    def __init__(self, source: Iterator[T], depth: int = 2) -> None:
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(source,), name="mmst-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, source: Iterator[T]) -> None:
        try:
            for item in source:
                if not self._put(item):
                    return
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer thread
            self._put(_Failure(exc))
            return
        self._put(_DONE)

    def __iter__(self) -> Iterator[T]:
        try:
            while True:
                item = self._queue.get()
                if item is _DONE:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                yield item  # type: ignore[misc]
        finally:
            self.close()

    def close(self) -> None:
        """Stop the producer and wait for it to finish its current item."""
        self._stop.set()
        self._thread.join()


BatchFn = Callable[[Sequence[T]], Sequence[Union[R, BaseException]]]
"""Runs one batch synchronously; returns one result or one exception per item, in order."""


class DynamicBatcher(Generic[T, R]):
    """Coalesces concurrent ``submit`` calls into batches for ``run_batch``; one per event loop."""

    def __init__(self, run_batch: BatchFn, max_batch_size: int = 64, *,
                 cost: Optional[Callable[[T], float]] = None, max_batch_cost: Optional[float] = None) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if (cost is None) != (max_batch_cost is None):
            raise ValueError("cost and max_batch_cost go together: give both or neither")
        if max_batch_cost is not None and not max_batch_cost > 0:
            raise ValueError(f"max_batch_cost must be > 0, got {max_batch_cost}")
        self._run_batch = run_batch
        self._max_batch_size = max_batch_size
        self._cost = cost
        self._max_batch_cost = max_batch_cost
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._urgent = 0  # how many of the first pending items were submitted with ``urgent``
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def submit(self, item: T, urgent: bool = False) -> R:
        """Queue one item and wait for its result (or its exception). An ``urgent`` item (a search's query,
        which a person waits for) goes ahead of the others queued, behind earlier urgent ones: a bulk
        ingestion then delays a search by at most the batch already running."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._pending, self._worker, self._urgent = loop, [], None, 0
        future: asyncio.Future[R] = loop.create_future()
        if urgent:
            self._pending.insert(self._urgent, (item, future))
            self._urgent += 1
        else:
            self._pending.append((item, future))
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._drain())
        return await future

    def _next_batch_size(self) -> int:
        """How many of the queued items the next batch takes: all, up to the item count and the budget
        (the first item always, so an item over the budget alone still runs)."""
        limit = min(len(self._pending), self._max_batch_size)
        if self._cost is None:
            return limit
        total = 0.0
        for count, (item, _) in enumerate(self._pending[:limit]):
            total += self._cost(item)
            if count and total > self._max_batch_cost:  # type: ignore[operator]
                return count
        return limit

    async def _drain(self) -> None:
        while self._pending:
            size = self._next_batch_size()
            batch = self._pending[:size]
            del self._pending[:size]
            self._urgent = max(0, self._urgent - size)
            items = [item for item, _ in batch]
            try:
                results = await asyncio.to_thread(self._run_batch, items)
            except BaseException as exc:  # noqa: BLE001 - handed to every waiting caller
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, (KeyboardInterrupt, SystemExit, asyncio.CancelledError)):
                    raise
                continue
            for (_, future), result in zip(batch, results):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
