"""One model's bounded queue and its batching worker: what keeps a burst from becoming an OOM or a hang.

Items from every client go through the library's ``concurrency.DynamicBatcher`` (while a batch runs,
new items queue; the next batch takes them all), bounded by an item count and by a budget (each item's
``cost``, a share of one batch: tokens, pixels, seconds). Around it, a ``Lane`` adds what a server
needs and a library call does not:

- **admission**: a request is queued whole or refused whole, with 429 and ``Retry-After``, when the
  queue is full or its estimated wait is over the limit (an empty queue admits any request);
- **a wait bound**: an item that waited past ``max_queue_wait_s`` is answered 429 instead of being
  computed for a client that has likely given up;
- **a worker that dies says so**: an exception from a batch that is not an item's own error (a CUDA
  fault, a model bug) fails that batch's and every later request with 503, and ``alive`` turns False,
  so ``/health`` is 503 (a load balancer takes the replica out; an orchestrator restarts it); a batch
  running past ``batch_timeout_s`` counts as hung.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, List, Optional, Sequence

from ..concurrency import DynamicBatcher
from .errors import APIError, Overloaded, Unavailable
from .metrics import Metrics
from .settings import Limits

log = logging.getLogger("llama_index_mm_st.serve")

Outcome = Any
"""A job's result, or the ``BaseException`` it raised (``first_error`` finds the first)."""
RunGroup = Callable[[Hashable, List[Any]], Sequence[Outcome]]
"""Runs one group of a batch (items sharing a key, e.g. (modality, role)): one result or exception each.
An item's own bad input is returned as its exception (a ``ValueError``); anything it raises is fatal."""

RATE_SMOOTHING = 0.3
"""Weight of the latest batch in the items-per-second estimate behind ``Retry-After``."""


@dataclass
class Job:
    """One queued item: ``key`` groups it with items the model runs together; ``cost`` is its budget share."""

    key: Hashable
    payload: Any
    cost: float = 0.0
    enqueued: float = field(default_factory=time.monotonic)
    abandoned: bool = False


class WorkerDied(Unavailable):
    def __init__(self, model: str, cause: BaseException) -> None:
        super().__init__(f"the {model} worker failed ({type(cause).__name__}) and serves no more requests; "
                         "this replica needs a restart", code="worker_dead")


class Lane:
    """A bounded, budgeted queue in front of one model; ``run`` is what a route awaits."""

    def __init__(self, name: str, run_group: RunGroup, limits: Limits, metrics: Metrics, *,
                 max_batch_items: Optional[int] = None) -> None:
        self.name = name
        self._run_group = run_group
        self._limits = limits
        self._metrics = metrics
        # Batches run in asyncio's worker threads, one batch at a time per model. A thread of its own per model
        # measured 3-7x slower on the loaded 2-core CPU (bench/results/serve-20261201-dedicated-thread.txt).
        self._batcher: DynamicBatcher[Job, Outcome] = DynamicBatcher(
            self._run_batch, max_batch_size=max_batch_items or limits.max_batch_items,
            cost=lambda job: job.cost, max_batch_cost=1.0)
        self._lock = threading.Lock()
        self._queued = 0
        self._items_per_s: Optional[float] = None
        self._busy_since: Optional[float] = None
        self.failure: Optional[BaseException] = None
        metrics.worker_alive.labels(name).set(1)
        metrics.queue_depth.labels(name).set(0)

    @property
    def queued(self) -> int:
        return self._queued

    @property
    def hung(self) -> bool:
        started = self._busy_since
        return started is not None and time.monotonic() - started > self._limits.batch_timeout_s

    @property
    def alive(self) -> bool:
        return self.failure is None and not self.hung

    def estimated_wait(self, queued: Optional[int] = None) -> float:
        """Seconds until ``queued`` items (default: the current queue) are through, from the recent rate."""
        count = self._queued if queued is None else queued
        rate = self._items_per_s
        return count / rate if rate else 1.0

    async def run(self, jobs: Sequence[Job], urgent: bool = False) -> List[Outcome]:
        """Queue the jobs (all or none), wait for them; each gets its result or its exception. ``urgent``
        jobs (a search's query and its reranking) go ahead of queued bulk work, under the same admission."""
        self._admit(len(jobs))
        try:
            waiting = asyncio.gather(*(self._batcher.submit(job, urgent) for job in jobs), return_exceptions=True)
            timeout = self._limits.max_queue_wait_s + self._limits.batch_timeout_s
            return await asyncio.wait_for(waiting, timeout)
        except asyncio.TimeoutError:
            raise Unavailable(f"the {self.name} worker did not answer within {timeout:g} s", code="worker_hung") from None
        finally:
            for job in jobs:
                job.abandoned = True  # whatever is still queued is dropped, not computed

    def _admit(self, count: int) -> None:
        if self.failure is not None:
            raise WorkerDied(self.name, self.failure)
        if self.hung:
            raise Unavailable(f"the {self.name} worker has been running one batch for over "
                              f"{self._limits.batch_timeout_s:g} s", code="worker_hung")
        limits = self._limits
        with self._lock:
            queued = self._queued
            if queued and queued + count > limits.max_queue:
                raise Overloaded(f"the {self.name} queue is full ({queued} items waiting, at most {limits.max_queue}); "
                                 "retry after the Retry-After seconds", self.estimated_wait(queued))
            wait = self.estimated_wait(queued + count)
            if queued and wait > limits.max_queue_wait_s:
                raise Overloaded(f"the {self.name} queue would take about {wait:.0f} s to reach this request, over "
                                 f"the limit of {limits.max_queue_wait_s:g} s", self.estimated_wait(queued),
                                 code="queue_wait")
            self._queued += count
        self._metrics.queue_depth.labels(self.name).set(self._queued)

    def _run_batch(self, jobs: Sequence[Job]) -> List[Outcome]:
        """One batch, in the batcher's worker thread: drop stale and abandoned jobs, run the rest by group."""
        start = time.monotonic()
        with self._lock:
            self._queued -= len(jobs)
        self._metrics.queue_depth.labels(self.name).set(self._queued)
        outcomes: List[Outcome] = [None] * len(jobs)
        groups: dict[Hashable, List[int]] = {}
        for position, job in enumerate(jobs):
            waited = start - job.enqueued
            self._metrics.queue_seconds.labels(self.name).observe(waited)
            if self.failure is not None:
                outcomes[position] = WorkerDied(self.name, self.failure)
            elif job.abandoned:
                outcomes[position] = Unavailable("the request was abandoned", code="abandoned")
            elif waited > self._limits.max_queue_wait_s:
                outcomes[position] = Overloaded(
                    f"waited {waited:.1f} s for the {self.name} model, over the limit of "
                    f"{self._limits.max_queue_wait_s:g} s", self.estimated_wait(), code="queue_timeout")
            else:
                groups.setdefault(job.key, []).append(position)
        if groups:
            self._run_groups(jobs, groups, outcomes)
            live = sum(len(positions) for positions in groups.values())
            elapsed = max(time.monotonic() - start, 1e-6)
            self._metrics.batch_size.labels(self.name).observe(live)
            self._metrics.inference_seconds.labels(self.name).observe(elapsed)
            rate = live / elapsed
            previous = self._items_per_s
            self._items_per_s = rate if previous is None else RATE_SMOOTHING * rate + (1 - RATE_SMOOTHING) * previous
        return outcomes

    def _run_groups(self, jobs: Sequence[Job], groups: dict[Hashable, List[int]], outcomes: List[Outcome]) -> None:
        self._busy_since = time.monotonic()
        try:
            for key, positions in groups.items():
                results = self._run_group(key, [jobs[p].payload for p in positions])
                for position, result in zip(positions, results, strict=True):
                    outcomes[position] = result
        except Exception as exc:  # noqa: BLE001 - the worker's boundary: what a batch raises (not an item's error) kills it
            self.failure = exc
            self._metrics.worker_alive.labels(self.name).set(0)
            log.error("the %s worker died: %s: %s", self.name, type(exc).__name__, exc)
            died = WorkerDied(self.name, exc)
            for positions in groups.values():
                for position in positions:
                    if outcomes[position] is None:
                        outcomes[position] = died
        finally:
            self._busy_since = None


def first_error(outcomes: Sequence[Outcome]) -> Optional[tuple[int, BaseException]]:
    """The first failed item, by position; an ``APIError`` (overload, a dead worker) wins over item errors,
    since it says the request as a whole could not be served."""
    failed = [(position, outcome) for position, outcome in enumerate(outcomes) if isinstance(outcome, BaseException)]
    for position, outcome in failed:
        if isinstance(outcome, APIError):
            return position, outcome
    return failed[0] if failed else None
