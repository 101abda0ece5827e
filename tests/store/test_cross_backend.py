"""The same data on both backends gives the same IDF scores, RRF order and filter results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from llama_index.core.schema import ImageNode, TextNode
from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters, VectorStoreQuery
from qdrant_client import QdrantClient

from llama_index_mm_st.store import MultimodalQdrantStore
from tests.fixtures.ranking import score_groups
from tests.store.conftest import DIM, unit

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda omicron sigma tau".split()


@pytest.fixture
def stores(tmp_path: Path):
    rng = np.random.default_rng(7)
    nodes = []
    for i in range(60):
        words = " ".join(rng.choice(WORDS, size=int(rng.integers(2, 9))))
        meta = {"n": i, "group": ["red", "green", "blue"][i % 3]}
        if i % 4 == 0:
            nodes.append(ImageNode(id_=f"i{i}", image_path=f"/img/{i}.png", text=words if i % 8 else "", embedding=unit(rng.normal(size=DIM)), metadata=meta))
        else:
            nodes.append(TextNode(id_=f"t{i}", text=words, embedding=unit(rng.normal(size=DIM)), metadata=meta))
    edge = MultimodalQdrantStore(path=str(tmp_path))
    client = MultimodalQdrantStore(client=QdrantClient(":memory:"))
    for store in (edge, client):
        store.add(nodes)
    yield edge, client, rng
    edge.close()
    client.close()


def test_bm25_idf_scores_match(stores) -> None:
    edge, client, _ = stores
    for text in ("alpha", "sigma tau", "kappa lambda beta"):
        q = VectorStoreQuery(query_str=text, mode="sparse", similarity_top_k=15)
        a, b = edge.query(q), client.query(q)
        assert a.similarities == pytest.approx(b.similarities, rel=1e-4)
        assert a.similarities[0] > a.similarities[-1] > 0
        # Equal scores may come in any order, and ties at the cut may keep different members:
        # compare who holds each score above the cut, and how many hold the cut score.
        cut = a.similarities[-1]
        assert groups(a, cut) == groups(b, cut)
        assert sum(abs(s - cut) <= 1e-4 * cut for s in a.similarities) == sum(abs(s - cut) <= 1e-4 * cut for s in b.similarities)


def test_rrf_order_and_scores_match(stores) -> None:
    """Dense branches only: cosine ranks have no ties, so fusion must agree exactly (BM25 ties may cut differently)."""
    edge, client, rng = stores
    for weights in ({}, {"image": 3.0}):
        q = VectorStoreQuery(query_embedding=unit(rng.normal(size=DIM)), similarity_top_k=12)
        a = edge.query(q, rrf_k=20, rrf_weights=weights, fusion="rrf")
        b = client.query(q, rrf_k=20, rrf_weights=weights, fusion="rrf")
        assert a.similarities == pytest.approx(b.similarities, rel=1e-6)
        # Equal ranks in the text and image lists tie; compare who holds each score, except at the cut.
        last = a.similarities[-1]
        assert groups(a, last) == groups(b, last) and len(groups(a, last)) >= 4


def groups(result, cut: float, rel: float = 1e-4) -> list[frozenset[str]]:
    """The ids holding each distinct score above ``cut`` in a query result (``score_groups``)."""
    return score_groups(result.ids, result.similarities, cut, rel)


def test_filtered_queries_match(stores) -> None:
    edge, client, rng = stores
    filters = MetadataFilters(
        filters=[MetadataFilter(key="group", value="blue"), MetadataFilter(key="n", value=30, operator=FilterOperator.LT)]
    )
    q = VectorStoreQuery(query_embedding=unit(rng.normal(size=DIM)), similarity_top_k=60, filters=filters)
    a, b = edge.query(q), client.query(q)
    assert set(a.ids) == set(b.ids) == {f"{'i' if n % 4 == 0 else 't'}{n}" for n in range(30) if n % 3 == 2}
    assert edge.count(filters) == client.count(filters) == 10
