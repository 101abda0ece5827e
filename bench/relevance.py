"""Relevance fusion against the alternatives, on the seeded CLIP-like simulator (issue 29's table).

For each geometry (a CLIP-like modality gap and a smaller SigLIP-like one) the simulator's corpus is
indexed in an Edge store; the store's own fusions run (today's dense and hybrid RRF, DBSF, and
relevance, dense and hybrid), and the other candidates measured while choosing the design are computed
here from exact per-vector lists plus the store's BM25 list. Printed per row: recall@10 per kind of
item (pure texts and images, captioned images, images whose caption is a file name, PDF pages, audio),
nDCG@10, the median score of relevant pure images and texts in the top 10 (the relevance gap), and at a
cut of 0.5 (rows with a [0, 1] score) the share of nothing-relevant queries left silent and the share of
what dense RRF found that is kept. ``--memory`` also runs relevance on qdrant-client's ``:memory:``
for a few queries and prints whether it agrees with Edge. Quality only: no timings.

    python bench/relevance.py
    python bench/relevance.py --geometries clip --memory 12
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _relevance_sim_metrics import Ranked, abstention, ndcg, recall_by_kind, relevance_gap, run_queries  # noqa: E402

NAMES = ("text", "image", "audio")
DEPTH = 100
Fused = Callable[[dict, list, Any], dict]


def top(scores: dict, k: int = 10) -> Ranked:
    best = sorted(scores.items(), key=lambda p: (-p[1], p[0]))[:k]
    return Ranked([i for i, _ in best], [s for _, s in best])


def rrf(lists: list, k: int = 60) -> dict:
    out: dict = {}
    for ranked in lists:
        for rank, (i, _) in enumerate(ranked):
            out[i] = out.get(i, 0.0) + 1.0 / (k + rank)
    return out


def best_of(groups: list) -> dict:
    out: dict = {}
    for group in groups:
        for i, s in group.items():
            out[i] = max(out.get(i, -np.inf), s)
    return out


def dbsf(ranked: list) -> dict:
    s = np.array([x for _, x in ranked])
    sd = s.std(ddof=1) if len(s) > 1 else 0.0
    if sd == 0:
        return {i: 0.5 for i, _ in ranked}
    low = s.mean() - 3 * sd
    return {i: float(v) for (i, _), v in zip(ranked, (s - low) / (6 * sd))}


def alternatives() -> dict[str, Fused]:
    """The candidates measured while choosing the design, from exact per-vector lists and BM25."""

    def unrestricted(lists: dict, bm25: list, _: Any) -> dict:
        return rrf([lists[n] for n in NAMES] + [bm25])

    def per_modality(lists: dict, bm25: list, _: Any) -> dict:
        return best_of([rrf([lists["text"], bm25]), rrf([lists["image"]]), rrf([lists["audio"]])])

    def dbsf_max(lists: dict, bm25: list, _: Any) -> dict:
        fused = best_of([dbsf(lists[n]) for n in NAMES])
        for i, v in (dbsf(bm25).items() if bm25 else ()):
            fused[i] = fused.get(i, 0.0) + v
        return fused

    def empirical_tail(lists: dict, bm25: list, extra: Any) -> dict:
        samples, counts, query = extra["samples"], extra["counts"], extra["query"]
        out: dict = {}
        for n in NAMES:
            ref = np.sort(samples[n] @ query)[::-1]
            t = min(32, len(ref) - 1)
            beta = max(float(np.mean(ref[:t] - ref[t])), 1e-6)
            for i, cos in lists[n]:
                expected = counts[n] * (t / len(ref)) * np.exp(-(cos - ref[t]) / beta)
                out[i] = max(out.get(i, -np.inf), float(np.log(0.25) - np.log(max(expected, 1e-12))))
        return out

    def z_max(lists: dict, bm25: list, extra: Any) -> dict:
        out: dict = {}
        for n in NAMES:
            mean, sd = extra["backgrounds"][n].moments(extra["query"])
            for i, cos in lists[n]:
                out[i] = max(out.get(i, -np.inf), (cos - mean) / sd)
        return out

    return {"RRF, no dense restriction": unrestricted, "RRF per modality, then across": per_modality,
            "DBSF, best vector": dbsf_max, "empirical tail (sample quantiles)": empirical_tail,
            "z-score, best vector (no words)": z_max}


def row(name: str, corpus: Any, runs: dict[str, Ranked], dense: dict[str, Ranked], unit: bool) -> str:
    recall = recall_by_kind(corpus.answerable, runs, corpus.kinds)
    line = f"{name:<36}" + "".join(f"{recall.get(k, float('nan')):>8.2f}" for k in
                                   ("text", "image", "captioned", "filename_caption", "pdf", "audio"))
    line += f"{ndcg(corpus.answerable, runs):>8.3f}"
    gap = relevance_gap(corpus.answerable, runs, corpus.kinds)
    line += f"{gap[0]:>9.3f}{gap[1]:>9.3f}" if gap and unit else f"{'-':>9}{'-':>9}"
    if unit:
        silent, kept = abstention(corpus.answerable, corpus.unanswerable, runs, dense, 0.5)
        line += f"{silent:>8.2f}{kept:>7.2f}"
    return line


def main() -> None:
    from qdrant_client import QdrantClient

    from llama_index_mm_st.store import MultimodalQdrantStore
    from llama_index_mm_st.store.relevance import Background
    from tests.fixtures.relevance_sim import GEOMETRIES, nodes, simulate

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--geometries", nargs="+", default=[g.name for g in GEOMETRIES])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory", type=int, default=0, metavar="N", help="also run N queries on :memory:")
    args = parser.parse_args()
    for geometry in [g for g in GEOMETRIES if g.name in args.geometries]:
        corpus = simulate(geometry, args.seed)
        store = MultimodalQdrantStore(path=tempfile.mkdtemp(prefix="mmst-relevance-"))
        store.add(nodes(corpus))
        print(f"\n== {geometry.name}: {len(corpus.items)} items, {len(corpus.answerable)} queries with relevant items, "
              f"{len(corpus.unanswerable)} with none ==")
        print(f"{'fusion':<36}" + "".join(f"{k:>8}" for k in ("text", "image", "capt.", "filename", "pdf", "audio"))
              + f"{'nDCG':>8}{'med img':>9}{'med txt':>9}{'silent':>8}{'kept':>7}")
        dense = run_queries(store, corpus, "default", fusion="rrf")
        print(row("dense RRF (before)", corpus, dense, dense, False))
        print(row("hybrid RRF (before, the old default)", corpus, run_queries(store, corpus, "hybrid", fusion="rrf"),
                  dense, False))
        print(row("hybrid DBSF (engine)", corpus, run_queries(store, corpus, "hybrid", fusion="dbsf"), dense, False))
        mats = {n: corpus.vectors(n) for n in NAMES}
        backgrounds = {n: Background.of(m) for n, (_, m) in mats.items()}
        hashed = {n: [int(hashlib.md5(i.encode()).hexdigest()[:8], 16) for i in ids] for n, (ids, _) in mats.items()}
        samples = {n: m[np.argsort(hashed[n])[:1024]] for n, (_, m) in mats.items()}
        bm25 = {q.id: run_queries(store, corpus, "sparse", [q])[q.id] for q in corpus.queries}
        for name, fused in alternatives().items():
            runs = {}
            for q in corpus.queries:
                lists = {}
                for n, (ids, m) in mats.items():
                    scores = m @ q.vector
                    order = np.argsort(-scores, kind="stable")[:DEPTH]
                    lists[n] = [(ids[i], float(scores[i])) for i in order]
                words = list(zip(bm25[q.id].ids, bm25[q.id].scores))
                extra = {"samples": samples, "counts": {n: len(ids) for n, (ids, _) in mats.items()},
                         "query": q.vector, "backgrounds": backgrounds}
                runs[q.id] = top(fused(lists, words, extra))
            print(row(name, corpus, runs, dense, False))
        relevance_dense = run_queries(store, corpus, "default", fusion="relevance")
        relevance = run_queries(store, corpus, "hybrid", fusion="relevance")
        print(row("relevance, dense", corpus, relevance_dense, dense, True))
        print(row("relevance, hybrid (the new default)", corpus, relevance, dense, True))
        if args.memory:
            client = QdrantClient(":memory:")
            memory = MultimodalQdrantStore(client=client)
            memory.add(nodes(corpus))
            queries = corpus.answerable[: args.memory // 2] + corpus.unanswerable[: args.memory - args.memory // 2]
            other = run_queries(memory, corpus, "hybrid", queries, fusion="relevance")
            same = all(list(other[q.id].ids) == list(relevance[q.id].ids)
                       and np.allclose(other[q.id].scores, relevance[q.id].scores, atol=1e-5) for q in queries)
            print(f":memory: agrees with Edge on {len(queries)} queries: {same}")
            memory.close()
            client.close()
        store.close()


if __name__ == "__main__":
    main()
