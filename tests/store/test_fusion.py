"""Fusion choices on both backends against the engine's own definitions, computed here from the
branches' lists: weighted RRF adds ``1 / ((rank + 1) / w + k - 1)`` per list (rank from 0), DBSF
normalises each list's scores to ``(s - (mean - 3 sd)) / (6 sd)`` (sample sd; one hit: 0.5) and sums."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest
from llama_index.core.schema import ImageNode, TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery

from llama_index_mm_st.store import MultimodalQdrantStore
from tests.store.conftest import DIM, unit

Make = Callable[..., MultimodalQdrantStore]
VOCABULARY = [f"w{i}" for i in range(40)]


def nodes(rng: np.random.Generator, images: int = 0) -> list:
    """Texts with random words (so BM25 scores rarely tie) and optional pure images."""
    out: list = [TextNode(id_=f"t{i}", text=" ".join(rng.choice(VOCABULARY, size=int(rng.integers(3, 12)))),
                          embedding=unit(rng.normal(size=DIM))) for i in range(40)]
    out += [ImageNode(id_=f"i{i}", image_path=f"/pics/{i}.png", embedding=unit(rng.normal(size=DIM)))
            for i in range(images)]
    return out


def dense_list(items: list, query: list[float], depth: int) -> list[tuple[str, float]]:
    scored = sorted(((n.node_id, float(np.dot(n.embedding, query))) for n in items), key=lambda p: -p[1])
    return scored[:depth]


def rrf(lists: list[list[tuple[str, float]]], weights: list[float], k: int) -> dict[str, float]:
    fused: dict[str, float] = {}
    for hits, weight in zip(lists, weights):
        for rank, (node_id, _) in enumerate(hits):
            fused[node_id] = fused.get(node_id, 0.0) + 1.0 / ((rank + 1) / weight + k - 1)
    return fused


def dbsf(lists: list[list[tuple[str, float]]]) -> dict[str, float]:
    fused: dict[str, float] = {}
    for hits in lists:
        scores = np.asarray([s for _, s in hits])
        if len(scores) == 1 or scores.std(ddof=1) == 0:
            normalised = np.full(len(scores), 0.5)
        else:
            low, high = scores.mean() - 3 * scores.std(ddof=1), scores.mean() + 3 * scores.std(ddof=1)
            normalised = (scores - low) / (high - low)
        for (node_id, _), value in zip(hits, normalised):
            fused[node_id] = fused.get(node_id, 0.0) + float(value)
    return fused


def check(result, fused: dict[str, float], top_k: int) -> None:
    """The engine's scores are the reference's, each hit's its own; RRF ties (rank r in one list can
    score what rank s does in another) may come in any order, so ids are compared where scores differ."""
    best = sorted(fused.items(), key=lambda p: -p[1])[:top_k]
    assert result.similarities == pytest.approx([s for _, s in best], rel=1e-4)
    for node_id, score in zip(result.ids, result.similarities):
        assert fused[node_id] == pytest.approx(score, rel=1e-4)
    cut = best[-1][1]
    assert {i for i, s in best if s > cut * (1 + 1e-4)} <= set(result.ids)


def test_weighted_rrf_is_the_engines_definition(make_store: Make, rng: np.random.Generator) -> None:
    items = nodes(rng)
    store = make_store(dense_vectors=["text"])
    store.add(items)
    query = unit(rng.normal(size=DIM))
    words = "w3 w17 w22"
    result = store.query(VectorStoreQuery(query_embedding=query, query_str=words, mode="hybrid", similarity_top_k=10),
                         rrf_k=10, rrf_weights={"text": 2.0, "bm25": 0.5})
    bm25 = store.query(VectorStoreQuery(query_str=words, mode="sparse", similarity_top_k=10))
    lists = [dense_list(items, query, 10), list(zip(bm25.ids, bm25.similarities))]
    check(result, rrf(lists, [2.0, 0.5], 10), 10)


def test_dbsf_is_the_engines_definition(make_store: Make, rng: np.random.Generator) -> None:
    items = nodes(rng)
    store = make_store(dense_vectors=["text"], fusion="dbsf")
    store.add(items)
    query = unit(rng.normal(size=DIM))
    words = "w5 w9 w31"
    result = store.query(VectorStoreQuery(query_embedding=query, query_str=words, mode="hybrid", similarity_top_k=8))
    bm25 = store.query(VectorStoreQuery(query_str=words, mode="sparse", similarity_top_k=8))
    check(result, dbsf([dense_list(items, query, 8), list(zip(bm25.ids, bm25.similarities))]), 8)
    plan = store.plan(VectorStoreQuery(query_embedding=query, query_str=words, mode="hybrid"))
    assert plan.fusion == "dbsf" and plan.weights is None


def test_dbsf_per_query_over_texts_and_images(make_store: Make, rng: np.random.Generator) -> None:
    """Two dense lists: texts by their vector, pure images by theirs (each node ranked once); DBSF
    normalises the modality gap away instead of ranking by position."""
    items = nodes(rng, images=20)
    store = make_store()
    store.add(items)
    query = unit(rng.normal(size=DIM))
    result = store.query(VectorStoreQuery(query_embedding=query, similarity_top_k=12), fusion="dbsf")
    texts = [n for n in items if isinstance(n, TextNode) and not isinstance(n, ImageNode)]
    images = [n for n in items if isinstance(n, ImageNode)]
    check(result, dbsf([dense_list(texts, query, 12), dense_list(images, query, 12)]), 12)


def test_fusion_choices_are_checked(make_store: Make, rng: np.random.Generator) -> None:
    store = make_store()
    store.add(nodes(rng)[:5])
    q = VectorStoreQuery(query_embedding=unit(rng.normal(size=DIM)), query_str="w1", mode="hybrid")
    with pytest.raises(ValueError, match="DBSF normalises each list's scores and takes none"):
        store.query(q, fusion="dbsf", rrf_weights={"bm25": 2.0})
    with pytest.raises(ValueError, match="takes none"):
        store.query(VectorStoreQuery(query_embedding=q.query_embedding, query_str="w1", mode="hybrid", alpha=0.3),
                    fusion="dbsf")
    with pytest.raises(ValueError, match="fusion must be one of"):
        store.query(q, fusion="borda")
    with pytest.raises(ValueError, match="rrf_weights keys"):
        store.query(q, rrf_weights={"splade": 1.0})
    with pytest.raises(ValueError):
        make_store(fusion="borda")
