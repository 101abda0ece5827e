"""Search quality at scale on Qdrant Edge: recall@10 and p50 against the search width, what the
store's own estimate says, what ``target_recall=0.95`` picks, and what MMR and ``max_per_document``
cost against a plain query. Used by ``bench/store.py --sections recall``; every ratio prints both sides.

Two synthetic 512-d sets:
- easy: a 32-d latent mapped to 512-d plus a little noise (``_store_scale.clustered``), the set of the
  storage-option table;
- hard: 64 unit-length cluster centres plus noise 0.6 per dimension (the issue's set: the noise
  outweighs the centre, so neighbourhoods are nearly those of uniform random points).
Two kinds of queries, truth by exact numpy search over every point:
- fresh: held-out draws from the same distribution, never stored (what the store's estimate stands for);
- near: stored points plus noise 0.03 per dimension (the issue's "queries near stored points"), whose
  own stored point is among their true neighbours.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any, Optional, Sequence

import numpy as np

DIM = 512
K = 10
EFS: tuple[Optional[int], ...] = (None, 32, 64, 128, 256, 512, 1024)
CHUNKS_PER_DOCUMENT = 20


NEAR_NOISE = 0.03


def hard(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """64 unit-length centres, each point its centre plus N(0, 0.6^2) noise per dimension, normalised;
    with each point's cluster (documents are made of one cluster's points)."""
    centres = np.random.default_rng(4321).normal(size=(64, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 64, n)
    vecs = centres[labels] + 0.6 * rng.normal(size=(n, DIM)).astype(np.float32)
    return vecs / np.linalg.norm(vecs, axis=1, keepdims=True), labels


def easy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from _store_scale import clustered

    vecs = clustered(n, seed)
    return vecs, np.zeros(n, dtype=int)


SETS = {"easy": easy, "hard": hard}


def _nodes(data: np.ndarray, labels: np.ndarray) -> list[Any]:
    """Text nodes; every ``CHUNKS_PER_DOCUMENT`` points of one cluster are one document's chunks."""
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

    seen: dict[int, int] = {}
    nodes = []
    for i, (row, label) in enumerate(zip(data.tolist(), labels.tolist())):
        index = seen.get(label, 0)
        seen[label] = index + 1
        node = TextNode(id_=f"n{i}", text="w", embedding=row)
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=f"c{label}d{index // CHUNKS_PER_DOCUMENT}")
        nodes.append(node)
    return nodes


def _timed(store: Any, probe: np.ndarray, **kwargs: Any) -> tuple[list[list[str]], float]:
    """Each query's ids and the p50 in ms (after 5 warm-up queries)."""
    from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode

    mode = VectorStoreQueryMode.MMR if "mmr_threshold" in kwargs else VectorStoreQueryMode.DEFAULT
    queries = [VectorStoreQuery(query_embedding=row, similarity_top_k=K, mode=mode) for row in probe.tolist()]
    for q in queries[:5]:
        store.query(q, **kwargs)
    found, times = [], []
    for q in queries:
        start = time.perf_counter()
        found.append(store.query(q, **kwargs).ids)
        times.append((time.perf_counter() - start) * 1000)
    return found, float(np.median(times))


def _recall(found: list[list[str]], truth: np.ndarray) -> float:
    return float(np.mean([len({int(i[1:]) for i in ids} & set(t.tolist())) / K for ids, t in zip(found, truth)]))


def _costs(store: Any, probe: np.ndarray) -> None:
    """p50 of MMR (the engine's), MMR with a document cap (ours), and the document cap alone, against
    the plain query on the same store and queries."""
    _, plain = _timed(store, probe)
    rows = [("MMR (engine), lambda 0.5, 50 candidates", {"mmr_threshold": 0.5}),
            ("max_per_document=1 (20-chunk documents)", {"max_per_document": 1}),
            ("MMR + max_per_document=1 (ours, numpy)", {"mmr_threshold": 0.5, "max_per_document": 1})]
    print(f"  {'plain query':<44}{plain:>8.2f} ms")
    for label, kwargs in rows:
        _, p50 = _timed(store, probe, **kwargs)
        print(f"  {label:<44}{p50:>8.2f} ms  {p50 / plain:.2f}x plain")


def recall_section(size: int, queries: int = 200, sets: Sequence[str] = ("easy", "hard"),
                   quantizations: Sequence[Optional[str]] = (None, "int8"), target: float = 0.95) -> None:
    from llama_index_mm_st.store import MultimodalQdrantStore

    print(f"\n-- recall@{K} against the search width at {size:,} points ({DIM}-d), {queries} queries of each kind, "
          f"load {os.getloadavg()[0]:.1f} --")
    for name in sets:
        data, labels = SETS[name](size + queries, seed=11)
        stored, fresh = data[:size], data[size:]
        rng = np.random.default_rng(12)
        near = stored[rng.choice(size, queries, replace=False)] + NEAR_NOISE * rng.normal(size=(queries, DIM))
        near = (near / np.linalg.norm(near, axis=1, keepdims=True)).astype(np.float32)
        kinds = {"fresh": (fresh, np.argsort(-(fresh @ stored.T), axis=1)[:, :K]),
                 "near": (near, np.argsort(-(near @ stored.T), axis=1)[:, :K])}
        nodes = _nodes(stored, labels[:size])
        for quantization in quantizations:
            label = f"{name}, {quantization or 'float32'}"
            with tempfile.TemporaryDirectory(prefix="mmst-recall-") as tmp:
                store = MultimodalQdrantStore(path=tmp, dense_vectors=["text"], quantization=quantization,
                                              show_progress=False)
                start = time.perf_counter()
                store.add(nodes)
                store.optimize()
                built = time.perf_counter() - start
                print(f"\n{label}: add + optimize {built:.0f} s")
                print(f"  {'hnsw_ef':<10}{'fresh':>8}{'near':>8}{'p50 ms':>9}{'estimate':>10}")
                for ef in EFS:
                    store.hnsw_ef = ef
                    recalls, p50 = [], 0.0
                    for kind, (probe, truth) in kinds.items():
                        found, timed = _timed(store, probe)
                        recalls.append(_recall(found, truth))
                        p50 = timed if kind == "fresh" else p50
                    estimate = store.recall_report(hnsw_ef=ef).recall  # None: the engine's own width
                    print(f"  {str(ef) if ef else 'engine':<10}{recalls[0]:>8.3f}{recalls[1]:>8.3f}{p50:>9.2f}{estimate:>10.3f}")
                store.close()
                start = time.perf_counter()  # a reopen with a new target measures at once
                store = MultimodalQdrantStore(path=tmp, target_recall=target, show_progress=False)
                tuning = time.perf_counter() - start
                schema = store.schema
                chosen = "exact search" if schema.exact_search else f"hnsw_ef={schema.hnsw_ef}"
                picked = {kind: _recall(_timed(store, probe)[0], truth) for kind, (probe, truth) in kinds.items()}
                _, p50 = _timed(store, fresh)
                print(f"  target_recall={target}: picks {chosen} in {tuning:.1f} s -> measured recall "
                      f"{picked['fresh']:.3f} fresh, {picked['near']:.3f} near; p50 {p50:.2f} ms")
                if quantization is None:
                    store.hnsw_ef = 128
                    print("  cost at hnsw_ef=128 (p50 over the same fresh queries):")
                    _costs(store, fresh)
                store.close()
    print("(estimate: store.recall_report at that width: 200 stored points, each searched with itself filtered "
          "out, against exact search; p50 of the fresh queries)")
