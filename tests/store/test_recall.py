"""The recall estimate against recall measured with fresh queries from the same distribution, on a
small hard set, and ``target_recall`` choosing a search width that reaches it (float32 and int8)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery

from llama_index_mm_st.store import MultimodalQdrantStore
from tests.store.conftest import DIM, unit

Make = Callable[..., MultimodalQdrantStore]
POINTS, QUERIES, HARD_DIM = 2000, 1000, 64
SAMPLE = 500
"""Stored points the estimate draws here (its standard error at recall 0.6 is then about 0.01; 1000
held-out queries measure the truth to about the same)."""


@pytest.fixture
def small_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine builds an HNSW graph only past about 20 MB of vectors and searches smaller segments
    exactly, so a test-sized set would always show recall 1. Here the graph is built from the first
    kilobyte, and sparse (m=4, ef_construct=8), so 2,000 points are as hard for it as 100k real ones."""
    import qdrant_edge as q

    from llama_index_mm_st.store.backends import edge

    original = edge.EdgeBackend._config

    def config(self, schema):  # type: ignore[no-untyped-def]
        made = original(self, schema)
        return q.EdgeConfig(
            vectors=made.vectors, sparse_vectors=made.sparse_vectors, wal_enabled=schema.wal,
            hnsw_config=q.HnswIndexConfig(m=4, ef_construct=8, full_scan_threshold=1, max_indexing_threads=1),
            optimizers=q.EdgeOptimizersConfig(indexing_threshold=1),
        )

    monkeypatch.setattr(edge.EdgeBackend, "_config", config)


def hard_set(seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """64 unit-length cluster centres with noise 0.6 per dimension (the issue's hard set, at 64-d), and
    held-out queries drawn from the same clusters: fresh queries from the stored points' distribution."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(64, HARD_DIM))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    points = centres[rng.integers(0, 64, POINTS + QUERIES)] + 0.6 * rng.normal(size=(POINTS + QUERIES, HARD_DIM))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points[:POINTS].astype(np.float32), points[POINTS:].astype(np.float32)


def measured(store: MultimodalQdrantStore, stored: np.ndarray, queries: np.ndarray, hnsw_ef: int) -> float:
    """recall@10 of ``store.query`` at ``hnsw_ef`` against exact (numpy) search."""
    store.hnsw_ef = hnsw_ef
    truth = np.argsort(-(queries @ stored.T), axis=1)[:, :10]
    found = [store.query(VectorStoreQuery(query_embedding=q.tolist(), similarity_top_k=10)).ids for q in queries]
    return float(np.mean([len({int(i) for i in ids} & set(t.tolist())) / 10 for ids, t in zip(found, truth)]))


@pytest.mark.parametrize("quantization", [None, "int8"])
def test_estimate_tracks_measured_recall_and_target_recall_is_reached(small_graph: None, tmp_path: Path,
                                                                      quantization) -> None:
    stored, queries = hard_set()
    store = MultimodalQdrantStore(path=str(tmp_path), dense_vectors=["text"], quantization=quantization,
                                  target_recall=0.95, show_progress=False)
    store.add([TextNode(id_=str(i), text="", embedding=v.tolist()) for i, v in enumerate(stored)])
    store.optimize()  # builds the graph, then measures the width that reaches 0.95
    tuned = store.schema.hnsw_ef
    assert tuned is not None and tuned > 16 and store.schema.target_recall == 0.95
    for ef in (16, 64):
        estimate = store.recall_report(sample=SAMPLE, hnsw_ef=ef)
        truth = measured(store, stored, queries, ef)
        assert abs(estimate.recall - truth) <= 0.05, (ef, estimate, truth)
        assert estimate.by_vector["text"] == estimate.recall and estimate.queries == {"text": SAMPLE}
    assert measured(store, stored, queries, 16) < 0.85  # the set is hard: the narrow search loses neighbours
    store.close()
    reopened = MultimodalQdrantStore(path=str(tmp_path))  # the width is recorded: a reopen searches with it
    assert reopened.schema.hnsw_ef == tuned
    plan = reopened.plan(VectorStoreQuery(query_embedding=queries[0].tolist()))
    assert plan.branches[0].search.hnsw_ef == tuned
    assert measured(reopened, stored, queries, tuned) >= 0.93
    reopened.close()


def test_recall_report_on_both_backends(make_store: Make, rng: np.random.Generator) -> None:
    store = make_store()
    store.add([TextNode(id_=f"t{i}", text="", embedding=unit(rng.normal(size=DIM))) for i in range(30)])
    report = store.recall_report(sample=10, top_k=5)
    # Edge searches a segment this small exactly; qdrant-client's local mode always does (and says so).
    assert report.recall == 1.0 and report.queries == {"text": 10} and report.top_k == 5
    assert report.exact_search == (store.local_path is None)
    given = store.recall_report(queries=[unit(rng.normal(size=DIM)) for _ in range(4)])
    assert given.queries == {"text": 4, "image": 4, "audio": 4, "video": 4} or given.queries == {"text": 4}
    assert store.estimate_recall(sample=5) == 1.0
    with pytest.raises(ValueError, match="sample must be a positive integer"):
        store.recall_report(sample=0)
    with pytest.raises(ValueError, match="does not search"):
        store.recall_report(queries={"smell": [[0.0] * DIM]})
    with pytest.raises(ValueError, match="target recall must be in"):
        store.tune_hnsw_ef()
    assert store.tune_hnsw_ef(0.9) == 16 and store.schema.hnsw_ef == 16  # exact search: the narrowest width


def test_target_recall_and_hnsw_ef_conflict(make_store: Make) -> None:
    with pytest.raises(ValueError, match="not both"):
        make_store(target_recall=0.9, hnsw_ef=64)
    with pytest.raises(ValueError):
        make_store(target_recall=1.5)


def test_a_target_no_graph_width_reaches_falls_back_to_exact_search(small_graph: None, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the widest width still misses the target and exact search costs no more, queries search
    exactly, recorded in the schema. Here the ladder is one width past the collection's size: the sparse
    graph still misses some neighbours (it is not fully connected), and walking it costs more than a scan."""
    from llama_index_mm_st.store import recall

    monkeypatch.setattr(recall, "EF_LADDER", (4096,))
    stored, queries = hard_set()
    store = MultimodalQdrantStore(path=str(tmp_path), dense_vectors=["text"], target_recall=1.0, show_progress=False)
    store.add([TextNode(id_=str(i), text="", embedding=v.tolist()) for i, v in enumerate(stored)])
    store.optimize()
    assert store.schema.exact_search and store.schema.hnsw_ef == 4096
    assert store.plan(VectorStoreQuery(query_embedding=queries[0].tolist())).branches[0].search.exact
    truth = np.argsort(-(queries[:50] @ stored.T), axis=1)[:, :10]
    for q, t in zip(queries[:50], truth):
        assert [int(i) for i in store.query(VectorStoreQuery(query_embedding=q.tolist(), similarity_top_k=10)).ids] \
            == t.tolist()
    store.close()
    reopened = MultimodalQdrantStore(path=str(tmp_path))
    assert reopened.schema.exact_search and reopened.recall_report(sample=50).recall == 1.0
    reopened.close()
