"""bench/store.py's ``relevance`` section: what relevance fusion costs beside rank fusion, from one run.

- query: a filtered hybrid query's p50 with ``fusion="relevance"`` beside ``fusion="rrf"`` on the same
  optimized Edge store, interleaved (A B, A B, ...) so a busy moment slows both; the ratio is the figure
  (target: at most 1.3x). The first relevance query of a process also reads the statistics back and fits
  them: printed on its own.
- add: ``store.add`` of the same points into fresh stores with the statistics kept and with them switched
  off (a bench-only patch), interleaved; the ratio is the figure (target: within 5%).
"""

from __future__ import annotations

import statistics
import time
from contextlib import contextmanager
from typing import Any, Iterator

from _common import interleaved


def _query(store: Any, fusion: str, queries: list[Any]) -> Any:
    position = iter(range(10**9))

    def run() -> None:
        q = queries[next(position) % len(queries)]
        result = store.query(q, fusion=fusion)
        if not result.nodes:
            raise RuntimeError("a benchmark query returned nothing: the filter or data is wrong")
    return run


def query_cost(store: Any, queries: list[Any], repeats: int = 300) -> None:
    start = time.perf_counter()
    store.query(queries[0], fusion="relevance")  # reads the sample back and fits the backgrounds
    first = (time.perf_counter() - start) * 1000
    times = interleaved({"rrf": _query(store, "rrf", queries), "relevance": _query(store, "relevance", queries)},
                        repeats)
    p50 = {name: statistics.median(t) * 1000 for name, t in times.items()}
    print(f"\n-- hybrid + filter query, fusion by relevance beside RRF ({repeats} interleaved rounds) --")
    print(f"{'fusion':<12}{'p50 ms':>9}")
    for name, value in p50.items():
        print(f"{name:<12}{value:>9.2f}")
    print(f"relevance / rrf p50: {p50['relevance'] / p50['rrf']:.2f}x (target <= 1.3x); "
          f"first relevance query (statistics read and fitted): {first:.0f} ms")


@contextmanager
def _statistics_off() -> Iterator[None]:
    from llama_index_mm_st.store.statistics import Statistics

    kept = Statistics.written
    Statistics.written = lambda self, points, names: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        Statistics.written = kept  # type: ignore[method-assign]


@contextmanager
def _statistics_timed(spent: list[float]) -> Iterator[None]:
    """The statistics kept, the time spent keeping them added to ``spent``."""
    from llama_index_mm_st.store.statistics import Statistics

    kept = Statistics.written

    def timed(self: Any, points: Any, names: Any) -> None:
        start = time.perf_counter()
        kept(self, points, names)
        spent.append(time.perf_counter() - start)

    Statistics.written = timed  # type: ignore[method-assign]
    try:
        yield
    finally:
        Statistics.written = kept  # type: ignore[method-assign]


def add_cost(nodes: list[Any], repeats: int = 5) -> None:
    from llama_index_mm_st.store import MultimodalQdrantStore

    def add(off: bool) -> Any:
        def run() -> None:
            store = MultimodalQdrantStore(show_progress=False)
            if off:
                with _statistics_off():
                    store.add(nodes)
            else:
                store.add(nodes)
            store.close()
        return run

    times = interleaved({"with statistics": add(False), "without": add(True)}, repeats)
    medians = {name: statistics.median(t) for name, t in times.items()}
    print(f"\n-- store.add of {len(nodes):,} points, the relevance statistics kept or not ({repeats} interleaved rounds) --")
    for name, value in medians.items():
        print(f"{name:<18}{len(nodes) / value:>12,.0f} points/s")
    print(f"with / without: {medians['with statistics'] / medians['without']:.3f}x the time (target <= 1.05x; "
          "wall time of whole adds, so noise shows here)")
    spent: list[float] = []
    store = MultimodalQdrantStore(show_progress=False)
    start = time.perf_counter()
    with _statistics_timed(spent):
        store.add(nodes)
    total = time.perf_counter() - start
    store.close()
    print(f"the statistics' own time inside one add: {sum(spent) * 1e6 / len(nodes):.2f} us a point, "
          f"{sum(spent) / total:.1%} of the add (measured directly, unaffected by the noise between runs)")
