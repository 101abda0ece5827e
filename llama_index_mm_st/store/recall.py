"""How much of the true top k the approximate (HNSW) search finds, measured on the store's own data,
and the search width that reaches a target.

Approximate search can silently lose true neighbours, and how many depends on the data: on 50k
clustered 512-d points (64 clusters, noise 0.6 per dimension) recall@10 was 0.62 at ``hnsw_ef=128``
and 0.94 at 512, while a smoother set gave 0.98 at 128. So the number is measured here, per dense
vector: a sample of stored points (or the caller's query vectors) is searched the way the store
searches (graph width, quantization, oversampling, rescoring) and exactly (every vector compared by
its original), and the overlap of the two top k is the recall. A stored point used as a query is
filtered out of both searches, so it stands for a query from the same distribution that the store has
never seen (its own nearest neighbour would otherwise be a free hit, and the graph walk would home in
on it).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Union

import numpy as np
from qdrant_client import models

from llama_index_mm_st.store.plan import Branch, QueryPlan, SearchSettings

logger = logging.getLogger(__name__)

DEFAULT_SAMPLE = 200
DEFAULT_TOP_K = 10
EF_LADDER = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096)
"""Search widths ``target_recall`` tries, narrowest first; the first whose estimate reaches the
target on every dense vector is kept."""
SAMPLE_SEED = 0


@dataclass(frozen=True)
class RecallReport:
    """recall@``top_k`` of the store's search against exact search: ``recall`` over every query,
    ``by_vector`` per dense vector, with how many ``queries`` each; ``hnsw_ef`` the width measured."""

    recall: float
    by_vector: Dict[str, float]
    queries: Dict[str, int]
    top_k: int
    hnsw_ef: Optional[int]
    exact_search: bool = False
    """True where the backend always searches exactly (qdrant-client's local mode): recall is 1 by construction."""


@dataclass
class Probe:
    """The queries of one estimate and their exact top k (computed once, reused at every width)."""

    queries: Dict[str, list[tuple[Optional[str], list[float]]]]
    top_k: int
    truth: Dict[str, list[list[str]]] = field(default_factory=dict)
    exact_seconds: float = 0.0
    """Time the exact searches took (every query, every vector), to weigh against an approximate run."""
    last_seconds: float = 0.0
    """Time the last approximate run of ``measure`` took, over the same queries."""


def sample_probe(backend: Any, names: Sequence[str], sample: int, top_k: int,
                 queries: Optional[Mapping[str, Sequence[Sequence[float]]]] = None) -> Probe:
    """The probe queries: ``queries`` per vector name when given (no point left out), else up to
    ``sample`` stored points drawn at random (seeded, so a rerun measures the same points)."""
    if queries is not None:
        return Probe({name: [(None, list(map(float, v))) for v in vectors] for name, vectors in queries.items()}, top_k)
    ids = [h.id for h in backend.scroll(None, with_vectors=False, payload=False)]
    rng = np.random.default_rng(SAMPLE_SEED)
    chosen = [ids[i] for i in sorted(rng.choice(len(ids), size=min(sample, len(ids)), replace=False))] if ids else []
    found = backend.retrieve(chosen, with_vectors=True)
    probe: Dict[str, list[tuple[Optional[str], list[float]]]] = {name: [] for name in names}
    for point in found:
        for name in names:
            vector = point.dense.get(name)
            if vector is not None:
                probe[name].append((point.id, list(vector)))
    return Probe({name: items for name, items in probe.items() if items}, top_k)


def _lists(backend: Any, name: str, items: Sequence[tuple[Optional[str], list[float]]], top_k: int,
           search: Optional[SearchSettings]) -> list[list[str]]:
    """Each query's top k ids by vector ``name`` under ``search``. A stored point searches with itself
    filtered out: the graph walk then never steps on it, so it is found as a query the store has
    never seen would be (left in, the walk would home in on the point itself and its own links)."""
    plans = [QueryPlan(branches=[Branch(name, vector, top_k, _without(own), search)], limit=top_k, filter=None,
                       fused=False) for own, vector in items]
    out = []
    for hits in backend.query_batch(plans):
        if isinstance(hits, BaseException):
            raise hits
        out.append([h.id for h in hits])
    return out


def _without(point: Optional[str]) -> Optional[models.Filter]:
    return None if point is None else models.Filter(must_not=[models.HasIdCondition(has_id=[point])])


def measure(backend: Any, probe: Probe, search: Optional[SearchSettings]) -> Dict[str, float]:
    """Recall per vector name of ``search`` against exact search, on the probe's queries."""
    recalls = {}
    probe.last_seconds = 0.0
    for name, items in probe.queries.items():
        if name not in probe.truth:
            start = time.perf_counter()
            probe.truth[name] = _lists(backend, name, items, probe.top_k, SearchSettings(exact=True))
            probe.exact_seconds += time.perf_counter() - start
        start = time.perf_counter()
        found = _lists(backend, name, items, probe.top_k, search)
        probe.last_seconds += time.perf_counter() - start
        scores = [len(set(a) & set(t)) / len(t) for a, t in zip(found, probe.truth[name]) if t]
        recalls[name] = float(np.mean(scores)) if scores else 1.0
    return recalls


def report(recalls: Dict[str, float], probe: Probe, hnsw_ef: Optional[int], exact_search: bool) -> RecallReport:
    counts = {name: len(items) for name, items in probe.queries.items()}
    total = sum(counts.values())
    pooled = sum(recalls[name] * counts[name] for name in recalls) / total if total else 1.0
    return RecallReport(pooled, dict(recalls), counts, probe.top_k, hnsw_ef, exact_search)


def choose_ef(measure_at: Callable[[int], Dict[str, float]], target: float) -> tuple[int, Dict[str, float]]:
    """The narrowest width of ``EF_LADDER`` whose recall reaches ``target`` on every vector (the widest
    when none does), with its recalls."""
    recalls: Dict[str, float] = {}
    for ef in EF_LADDER:
        recalls = measure_at(ef)
        if all(value >= target for value in recalls.values()):
            return ef, recalls
    return EF_LADDER[-1], recalls


def with_width(search: Optional[SearchSettings], hnsw_ef: int) -> SearchSettings:
    """The store's search settings at another graph width."""
    return SearchSettings(hnsw_ef=hnsw_ef) if search is None else replace(search, hnsw_ef=hnsw_ef)


ProbeQueries = Optional[Union[Sequence[Sequence[float]], Mapping[str, Sequence[Sequence[float]]]]]
"""Query vectors for an estimate: searched in every dense vector, or a list per vector name."""


def _probe(backend: Any, names: Sequence[str], sample: int, top_k: int, queries: ProbeQueries) -> Probe:
    for label, value in (("sample", sample), ("top_k", top_k)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    if queries is not None and not isinstance(queries, Mapping):
        queries = {name: queries for name in names}
    if queries is not None:
        unknown = sorted(set(queries) - set(names))
        if unknown:
            raise ValueError(f"recall queries name vectors {unknown} this store does not search; it searches {list(names)}")
    return sample_probe(backend, names, sample, top_k, queries)


def estimate(backend: Any, names: Sequence[str], settings: Optional[SearchSettings], hnsw_ef: Optional[int],
             sample: int, top_k: int, queries: ProbeQueries = None) -> RecallReport:
    """The recall report of a store searching ``names`` with ``settings`` at width ``hnsw_ef``."""
    probe = _probe(backend, names, sample, top_k, queries)
    search = with_width(settings, hnsw_ef) if hnsw_ef is not None else settings
    return report(measure(backend, probe, search), probe, hnsw_ef, backend.searches_exactly)


EXACT_ALLOWANCE = 1.5
"""Exact search is chosen over the widest width that still misses the target when it takes at most
this many times as long: recall 1 for about the same cost."""


@dataclass(frozen=True)
class Tuned:
    """What ``tune`` chose: a graph width, or exact search where no width reaches the target and
    exact search costs at most ``EXACT_ALLOWANCE`` times the widest width tried."""

    hnsw_ef: int
    exact: bool
    recalls: Dict[str, float]


def tune(backend: Any, names: Sequence[str], settings: Optional[SearchSettings], target: Optional[float],
         sample: int, top_k: int) -> Tuned:
    """The narrowest width reaching ``target`` on every dense vector of a store searching ``names``;
    exact search when none does and it costs about as much as the widest (data a graph can't search
    well, such as nearly uniform vectors, gain nothing from one)."""
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0.0 < target <= 1.0:
        raise ValueError(f"a target recall must be in (0, 1] (target_recall= on the store, or tune_hnsw_ef(target)), "
                         f"got {target!r}")
    probe = _probe(backend, names, sample, top_k, None)
    ef, recalls = choose_ef(lambda width: measure(backend, probe, with_width(settings, width)), float(target))
    if all(value >= target for value in recalls.values()):
        logger.info("hnsw_ef=%d reaches recall@%d %s (target %.3f)", ef, top_k, recalls, target)
        return Tuned(ef, False, recalls)
    if probe.exact_seconds <= EXACT_ALLOWANCE * probe.last_seconds:
        logger.warning("no search width up to %d reaches recall %.3f here (%s, in %.1f s); exact search takes "
                       "%.1f s for the same queries: searching exactly", ef, target, recalls, probe.last_seconds,
                       probe.exact_seconds)
        return Tuned(ef, True, {name: 1.0 for name in recalls})
    logger.warning("no search width up to %d reaches recall %.3f here (%s); using %d (exact search would take "
                   "%.1f s against %.1f s)", ef, target, recalls, ef, probe.exact_seconds, probe.last_seconds)
    return Tuned(ef, False, recalls)
