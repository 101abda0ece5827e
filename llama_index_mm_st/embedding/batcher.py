"""Dynamic batching for async callers, as Infinity does it.

Concurrent ``aget_*`` calls each submit one item. While the model is busy with one batch, new items
queue up; when it is free it takes everything queued (up to ``max_batch_size``) as the next batch.
So 64 concurrent queries cost one or two forward passes instead of 64, and a lone query still runs
at once with no timer to wait for. The model runs in a worker thread, so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
from typing import Callable, Generic, Sequence, TypeVar, Union

T = TypeVar("T")
R = TypeVar("R")

BatchFn = Callable[[Sequence[T]], Sequence[Union[R, BaseException]]]
"""Runs one batch synchronously; returns one result or one exception per item, in order."""


class DynamicBatcher(Generic[T, R]):
    """Coalesces concurrent ``submit`` calls into batches for ``run_batch``; one per event loop."""

    def __init__(self, run_batch: BatchFn, max_batch_size: int = 64) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self._run_batch = run_batch
        self._max_batch_size = max_batch_size
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def submit(self, item: T) -> R:
        """Queue one item and wait for its result (or its exception)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._pending, self._worker = loop, [], None
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch_size]
            del self._pending[: self._max_batch_size]
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
