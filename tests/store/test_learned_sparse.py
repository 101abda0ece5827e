"""A learned sparse model (sentence-transformers ``SparseEncoder``, a tiny fabricated SPLADE) beside BM25
or instead of it, on both backends: stored vectors equal ``encode_document``'s, queries use
``encode_query``, and the choice is recorded in the schema."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from llama_index.core.schema import ImageNode, TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery

from llama_index_mm_st.errors import SchemaMismatchError
from llama_index_mm_st.hits import score_kind
from llama_index_mm_st.store import MultimodalQdrantStore
from tests.store.conftest import DIM, unit

Make = Callable[..., MultimodalQdrantStore]
TEXTS = ["alpha beta gamma delta", "the red car drives fast on the road", "invoice error code 42 was printed",
         "gamma ray burst seen at night", "a quick brown fox", "beta release notes for the printer driver"]


@pytest.fixture(scope="module")
def encoder(tiny_splade_dir: Path):
    from sentence_transformers import SparseEncoder

    return SparseEncoder(str(tiny_splade_dir))


def as_dict(indices, values) -> dict[int, float]:
    return {int(i): float(v) for i, v in zip(indices, values)}


def tensor_dict(row) -> dict[int, float]:
    row = row.coalesce()
    return as_dict(row.indices()[0].tolist(), row.values().tolist())


def corpus(rng: np.random.Generator) -> list:
    nodes: list = [TextNode(id_=f"t{i}", text=text, embedding=unit(rng.normal(size=DIM))) for i, text in enumerate(TEXTS)]
    nodes.append(ImageNode(id_="img", image_path="/pics/a.png", embedding=unit(rng.normal(size=DIM)),
                           metadata={"caption": "a red printer"}))
    nodes.append(ImageNode(id_="bare", image_path="/pics/b.png", embedding=unit(rng.normal(size=DIM))))
    return nodes


@pytest.mark.parametrize("bm25", [True, False])
def test_stored_vectors_equal_encode_document(make_store: Make, rng: np.random.Generator, tiny_splade_dir: Path,
                                              encoder, bm25: bool) -> None:
    store = make_store(sparse_model=str(tiny_splade_dir), bm25=bm25)
    store.add(corpus(rng))
    assert store.schema.learned_sparse == "learned" and store.schema.sparse == ("bm25" if bm25 else None)
    assert store.schema.sparse_model == str(tiny_splade_dir.resolve())
    ids = [f"t{i}" for i in range(len(TEXTS))] + ["img", "bare"]
    stored = store.sparse_vectors(ids)
    expected = [tensor_dict(row) for row in encoder.encode_document(TEXTS + ["a red printer"])]
    for got, want in zip(stored, expected):
        got_d = as_dict(*got)
        assert set(got_d) == set(want) and len(want) > 3
        assert max(abs(got_d[i] - want[i]) for i in want) <= 1e-5
    assert stored[-1] == ([], [])  # no words, no vector
    if bm25:
        assert store.sparse_vectors(["t0"], vector="bm25")[0][0]  # BM25 kept beside it
    else:
        with pytest.raises(ValueError, match="no sparse vector 'bm25'"):
            store.sparse_vectors(["t0"], vector="bm25")


def test_queries_use_encode_query_and_are_fused(make_store: Make, rng: np.random.Generator, tiny_splade_dir: Path,
                                                encoder) -> None:
    store = make_store(sparse_model=str(tiny_splade_dir))
    store.add(corpus(rng))
    text = "red printer error"
    plan = store.plan(VectorStoreQuery(query_str=text, mode="sparse", similarity_top_k=3))
    learned = next(b for b in plan.branches if b.using == "learned")
    assert [b.using for b in plan.branches] == ["bm25", "learned"] and plan.fused
    assert as_dict(learned.vector.indices, learned.vector.values) == pytest.approx(
        tensor_dict(encoder.encode_query([text])[0]), abs=1e-6)
    hybrid = store.plan(VectorStoreQuery(query_str=text, query_embedding=unit(rng.normal(size=DIM)), mode="hybrid"))
    assert {b.using for b in hybrid.branches} >= {"text", "bm25", "learned"}
    result = store.query(VectorStoreQuery(query_str=text, mode="sparse", similarity_top_k=3))
    assert len(result.ids) == 3 and result.similarities[0] <= 2 / 60 + 1e-9  # RRF of the two word lists
    assert score_kind("sparse", 0, sparse=store.schema.sparse_vectors) == "rrf"


def test_learned_alone_scores_by_its_dot_product(make_store: Make, rng: np.random.Generator, tiny_splade_dir: Path,
                                                 encoder) -> None:
    store = make_store(sparse_model=str(tiny_splade_dir), bm25=False)
    store.add(corpus(rng))
    text = "gamma night"
    result = store.query(VectorStoreQuery(query_str=text, mode="sparse", similarity_top_k=4))
    query = tensor_dict(encoder.encode_query([text])[0])
    dots = {}
    for node_id, (indices, values) in zip(result.ids, store.sparse_vectors(result.ids)):
        dots[node_id] = sum(query.get(i, 0.0) * v for i, v in zip(indices, values))
    assert result.similarities == pytest.approx([dots[i] for i in result.ids], rel=1e-4)
    assert result.similarities == sorted(result.similarities, reverse=True)
    assert score_kind("sparse", 0, sparse=store.schema.sparse_vectors) == "learned_sparse"
    assert "bm25" not in {b.using for b in store.plan(VectorStoreQuery(query_str=text, mode="sparse")).branches}


def test_a_reopened_store_knows_its_sparse_model(make_store: Make, rng: np.random.Generator, tiny_splade_dir: Path,
                                                 tmp_path: Path) -> None:
    first = make_store(sparse_model=str(tiny_splade_dir), bm25=False)
    first.add(corpus(rng))
    before = first.query(VectorStoreQuery(query_str="red car", mode="sparse", similarity_top_k=3))
    first.close()
    reopened = make_store()  # nothing said: the collection's model and layout
    assert reopened.schema.sparse is None and reopened.schema.sparse_model == str(tiny_splade_dir.resolve())
    after = reopened.query(VectorStoreQuery(query_str="red car", mode="sparse", similarity_top_k=3))
    assert after.ids == before.ids and after.similarities == pytest.approx(before.similarities)
    reopened.close()
    with pytest.raises(SchemaMismatchError, match="sparse model"):
        make_store(sparse_model=str(tmp_path / "another_model"))
    with pytest.raises(SchemaMismatchError, match="sparse vector None != 'bm25'"):
        make_store(bm25=True)


def test_copy_carries_the_learned_vectors(rng: np.random.Generator, tiny_splade_dir: Path, tmp_path: Path) -> None:
    from qdrant_client import QdrantClient

    source = MultimodalQdrantStore(path=str(tmp_path / "a"), sparse_model=str(tiny_splade_dir))
    target = MultimodalQdrantStore(client=QdrantClient(":memory:"))
    try:
        source.add(corpus(rng))
        assert source.copy_to(target) == len(TEXTS) + 2
        assert target.schema.learned_sparse == "learned" and target.schema.sparse_model == source.schema.sparse_model
        ids = ["t0", "t3", "img"]
        assert target.sparse_vectors(ids) == source.sparse_vectors(ids)
        q = VectorStoreQuery(query_str="invoice code", mode="sparse", similarity_top_k=3)
        a, b = target.query(q), source.query(q)  # two word lists fused by RRF: equal ranks tie
        assert a.similarities == pytest.approx(b.similarities) and set(a.ids) == set(b.ids)
    finally:
        source.close()
        target.close()


def test_bad_sparse_choices_are_refused(make_store: Make, rng: np.random.Generator, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="give sparse_model= too"):
        make_store(bm25=False)
    store = make_store(sparse_model=str(tmp_path / "missing_model"))
    with pytest.raises(ValueError, match="cannot load the sparse model"):
        store.add(corpus(rng)[:1])
    assert store.count() == 0  # nothing written
    other = MultimodalQdrantStore()  # a plain store has no learned vector
    try:
        other.add(corpus(rng)[:2])
        with pytest.raises(ValueError, match="no sparse vector 'learned'"):
            other.sparse_vectors(["t0"], vector="learned")
        with pytest.raises(ValueError, match="no node with id 'nope'"):
            other.sparse_vectors(["t0", "nope"])
    finally:
        other.close()


def test_a_dense_query_never_loads_the_sparse_model(make_store: Make, rng: np.random.Generator,
                                                    tiny_splade_dir: Path) -> None:
    store = make_store(sparse_model=str(tiny_splade_dir), dim=DIM)
    store.query(VectorStoreQuery(query_embedding=unit(rng.normal(size=DIM)), similarity_top_k=2))
    learned = store._collection.learned_for(store.schema)
    assert learned is not None and learned._loaded is None
