"""Metrics of a ranking on the relevance simulator (``tests/fixtures/relevance_sim.py``), shared by
``bench/relevance.py`` and the simulator tests: per-kind recall@10, nDCG@10, relevance gap, abstention."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

KINDS = ("text", "image", "captioned", "filename_caption", "pdf", "audio")
K = 10


@dataclass(frozen=True)
class Ranked:
    """One query's hits, best first, with their scores."""

    ids: Sequence[str]
    scores: Sequence[float]


def run_queries(store: Any, corpus: Any, mode: str, queries: Optional[Sequence] = None,
                **kwargs: Any) -> dict[str, Ranked]:
    """Each simulator query (``corpus.queries``, or ``queries``) through ``store.query`` in ``mode``: its top 10
    (``kwargs``: the store's query arguments, ``fusion="rrf"`` say)."""
    from llama_index.core.vector_stores.types import VectorStoreQuery

    out = {}
    for q in queries if queries is not None else corpus.queries:
        result = store.query(VectorStoreQuery(query_embedding=q.vector.tolist(), query_str=q.words, mode=mode,
                                              similarity_top_k=K), **kwargs)
        out[q.id] = Ranked(result.ids, result.similarities)
    return out


def recall_by_kind(queries: Sequence, runs: Mapping[str, Ranked], kinds: Mapping[str, str],
                   k: int = K) -> dict[str, float]:
    """Per kind: the share of the relevant items of that kind found in the top k, over the queries
    that have any (micro-averaged: found / relevant, over all queries)."""
    found = {kind: 0 for kind in KINDS}
    total = {kind: 0 for kind in KINDS}
    for query in queries:
        top = set(runs[query.id].ids[:k])
        for item in query.relevant:
            kind = kinds[item]
            total[kind] += 1
            found[kind] += item in top
    return {kind: found[kind] / total[kind] for kind in KINDS if total[kind]}


def ndcg(queries: Sequence, runs: Mapping[str, Ranked], k: int = K) -> float:
    values = []
    for query in queries:
        ids = runs[query.id].ids[:k]
        gain = sum(1 / math.log2(rank + 2) for rank, item in enumerate(ids) if item in query.relevant)
        ideal = sum(1 / math.log2(rank + 2) for rank in range(min(k, len(query.relevant))))
        values.append(gain / ideal)
    return statistics.fmean(values)


def relevance_gap(queries: Sequence, runs: Mapping[str, Ranked], kinds: Mapping[str, str],
                  k: int = K) -> Optional[tuple[float, float]]:
    """(median score of relevant pure images, of relevant pure texts) in the top k."""
    by_kind: dict[str, list[float]] = {"image": [], "text": []}
    for query in queries:
        run = runs[query.id]
        for item, score in zip(run.ids[:k], run.scores[:k]):
            if item in query.relevant and kinds[item] in by_kind:
                by_kind[kinds[item]].append(score)
    if not by_kind["image"] or not by_kind["text"]:
        return None
    return statistics.median(by_kind["image"]), statistics.median(by_kind["text"])


def abstention(answerable: Sequence, unanswerable: Sequence, runs: Mapping[str, Ranked],
               dense: Mapping[str, Ranked], cut: float, k: int = K) -> tuple[float, float]:
    """(share of nothing-relevant queries left with no hit at ``cut``, share of the relevant items
    dense mode found in its top k that the ranking still returns at ``cut``)."""
    silent = sum(1 for q in unanswerable if not any(s >= cut for s in runs[q.id].scores[:k])) / len(unanswerable)
    kept = total = 0
    for query in answerable:
        found = set(dense[query.id].ids[:k]) & query.relevant
        run = runs[query.id]
        above = {i for i, s in zip(run.ids, run.scores) if s >= cut}
        total += len(found)
        kept += len(found & above)
    return silent, kept / total if total else 1.0
