"""Late interaction in the store, on both backends: the multivector is a named MaxSim multivector,
recorded in the schema; a dense query is a pooled prefetch then exact MaxSim; BM25 fuses by RRF;
deletes, reopen, copies, and a clear error when single vectors and multivectors meet."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest
from llama_index.core.schema import ImageNode, NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode

from llama_index_mm_st.errors import SchemaMismatchError
from llama_index_mm_st.multivector import PooledVector, attach_multivector, maxsim_many, node_multivector, pooled
from llama_index_mm_st.store import MultimodalQdrantStore
from tests.store.conftest import DIM as SINGLE_DIM, unit

DIM = 64
"""Token vectors are 64-d here: in 16-d, random concepts crowd each other and topics blur."""
NOISE = 0.6 / DIM**0.5
"""Per-component noise: a noise vector of norm about 0.6 on each unit token."""

Make = Callable[..., MultimodalQdrantStore]


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


def corpus(rng: np.random.Generator, count: int, per_topic: int = 5) -> list[np.ndarray]:
    """Pages in topics of ``per_topic``: a page's 3 to 12 tokens are its topic's concepts plus noise,
    so a query about a topic has a clear exact top-``per_topic`` (its pages) and the pooled vectors
    are a useful but imperfect first stage, as with real pages."""
    topics = -(-count // per_topic)
    concepts = _unit_rows(rng.normal(size=(topics * 3, DIM)))
    pages = []
    for i in range(count):
        topic = i // per_topic
        tokens = int(rng.integers(3, 13))
        picks = topic * 3 + rng.integers(0, 3, size=tokens)
        pages.append(_unit_rows(concepts[picks] + NOISE * rng.normal(size=(tokens, DIM))))
    return pages


def late_node(i: int, matrix: np.ndarray, text: str = "", doc: str = "d0", image: bool = True):
    if image:
        node = ImageNode(id_=f"p{i}", image_path=f"/pages/{i}.png", text=text, embedding=pooled(matrix).tolist())
    else:
        node = TextNode(id_=f"p{i}", text=text or f"chunk {i}", embedding=pooled(matrix).tolist())
    node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=doc)
    attach_multivector(node, matrix)
    return node


def query_vector(rng: np.random.Generator, page: np.ndarray, tokens: int = 4) -> PooledVector:
    """A query whose tokens are noisy copies of some of a page's tokens."""
    rows = page[rng.integers(0, len(page), size=tokens)]
    matrix = _unit_rows(rows + NOISE * rng.normal(size=rows.shape))
    return PooledVector(pooled(matrix).tolist(), matrix)


def exact_top(query: PooledVector, pages: list[np.ndarray], k: int) -> tuple[list[str], np.ndarray]:
    scores = maxsim_many(query.multivector, pages)
    order = np.argsort(-scores, kind="stable")[:k]
    return [f"p{i}" for i in order], scores


def test_dense_query_ranks_by_exact_maxsim_like_numpy(make_store: Make, rng: np.random.Generator) -> None:
    pages = corpus(rng, 40)
    store = make_store()
    store.add([late_node(i, m) for i, m in enumerate(pages)])
    assert store.schema is not None and store.schema.late_interaction and store.schema.multivector == "late"
    for _ in range(5):
        query = query_vector(rng, pages[int(rng.integers(0, 40))])
        result = store.query(VectorStoreQuery(query_embedding=query, similarity_top_k=8))
        expected, scores = exact_top(query, pages, 40)
        got = result.ids
        # Scores are the exact MaxSim of each page; the order is numpy's (ties never decide a test:
        # compare score sequences, which are equal whatever order tied pages come in).
        np.testing.assert_allclose(result.similarities, [scores[int(i[1:])] for i in got], atol=1e-4)
        np.testing.assert_allclose(result.similarities, sorted(scores, reverse=True)[:8], atol=1e-4)
        # Results carry their stored multivector (what a MaxSim reranker reads instead of re-encoding).
        for node in result.nodes:
            np.testing.assert_allclose(node_multivector(node), pages[int(node.node_id[1:])], atol=1e-6)
    plain = make_store(collection_name="bare", return_multivectors=False)
    plain.add([late_node(i, m) for i, m in enumerate(pages)])
    found = plain.query(VectorStoreQuery(query_embedding=query_vector(rng, pages[0]), similarity_top_k=3))
    assert all(node_multivector(node) is None for node in found.nodes)


def test_a_2d_query_embedding_or_query_multivector_works_too(make_store: Make, rng: np.random.Generator) -> None:
    pages = corpus(rng, 20)
    store = make_store()
    store.add([late_node(i, m) for i, m in enumerate(pages)])
    query = query_vector(rng, pages[3])
    _, scores = exact_top(query, pages, 20)
    best = sorted(scores, reverse=True)[:3]
    as_matrix = store.query(VectorStoreQuery(query_embedding=query.multivector.tolist(), similarity_top_k=3))
    by_kwarg = store.query(VectorStoreQuery(query_embedding=list(query), similarity_top_k=3),
                           query_multivector=query.multivector)
    np.testing.assert_allclose(as_matrix.similarities, best, atol=1e-4)
    np.testing.assert_allclose(by_kwarg.similarities, best, atol=1e-4)


def _recall_at_5(store: MultimodalQdrantStore, pages: list[np.ndarray], queries: list[PooledVector]) -> float:
    hits = 0
    for query in queries:
        _, scores = exact_top(query, pages, 5)
        fifth = sorted(scores, reverse=True)[4]
        result = store.query(VectorStoreQuery(query_embedding=query, similarity_top_k=5))
        assert len(result.ids) == 5
        # A hit is a page whose exact score reaches the 5th best (so ties count either way).
        hits += sum(scores[int(i[1:])] >= fifth - 1e-5 for i in result.ids)
    return hits / (5 * len(queries))


def test_two_stage_recall_with_a_prefetch_smaller_than_the_corpus(make_store: Make, rng: np.random.Generator) -> None:
    pages = corpus(rng, 300)
    queries = [query_vector(rng, pages[int(rng.integers(0, 300))]) for _ in range(20)]
    nodes = [late_node(i, m) for i, m in enumerate(pages)]
    store = make_store(collection_name="wide", prefetch_limit=60)
    store.add(nodes)
    narrow = make_store(collection_name="narrow", prefetch_limit=5)
    narrow.add(nodes)
    recall, narrow_recall = _recall_at_5(store, pages, queries), _recall_at_5(narrow, pages, queries)
    assert recall >= 0.9, recall
    # The prefetch really bounds what MaxSim sees: five pooled candidates per branch lose pages.
    assert narrow_recall < recall, (narrow_recall, recall)


def test_hybrid_fuses_the_maxsim_list_with_bm25(make_store: Make, rng: np.random.Generator) -> None:
    pages = corpus(rng, 30)
    words = ["quarterly revenue EMEA" if i == 7 else f"unrelated page {i}" for i in range(30)]
    store = make_store()
    store.add([late_node(i, m, text=w) for i, (m, w) in enumerate(zip(pages, words))])
    query = query_vector(rng, pages[12])
    dense = store.query(VectorStoreQuery(query_embedding=query, similarity_top_k=3))
    hybrid = store.query(VectorStoreQuery(query_embedding=query, query_str="quarterly revenue", similarity_top_k=3,
                                          mode=VectorStoreQueryMode.HYBRID))
    assert "p7" in hybrid.ids  # only BM25 finds it by its words
    assert dense.ids[0] in hybrid.ids[:2]  # the MaxSim winner stays near the top
    assert max(hybrid.similarities) <= 2 / 60 + 1e-9  # RRF scores, not MaxSim
    sparse = store.query(VectorStoreQuery(query_str="quarterly revenue", similarity_top_k=3,
                                          mode=VectorStoreQueryMode.SPARSE))
    assert sparse.ids[0] == "p7"


def test_text_nodes_and_pages_share_one_maxsim_list(make_store: Make, rng: np.random.Generator) -> None:
    pages = corpus(rng, 12)
    store = make_store()
    store.add([late_node(i, m, image=i % 2 == 0) for i, m in enumerate(pages)])
    query = query_vector(rng, pages[5])
    _, scores = exact_top(query, pages, 12)
    result = store.query(VectorStoreQuery(query_embedding=query, similarity_top_k=12))
    assert sorted(result.ids) == sorted(f"p{i}" for i in range(12))
    np.testing.assert_allclose(result.similarities, sorted(scores, reverse=True), atol=1e-4)


def test_deletes_remove_the_multivector(make_store: Make, rng: np.random.Generator) -> None:
    pages = corpus(rng, 10)
    store = make_store()
    store.add([late_node(i, m, doc="a" if i < 4 else "b") for i, m in enumerate(pages)])
    store.delete("a")
    store.delete_nodes(["p9"])
    left = {p.id for batch in store.export_points(100) for p in batch}
    assert len(left) == 5 and store.count() == 5
    exported = [p for batch in store.export_points(100) for p in batch]
    assert all(p.multivector is not None for p in exported)
    query = query_vector(rng, pages[0])
    result = store.query(VectorStoreQuery(query_embedding=query, similarity_top_k=10))
    assert set(result.ids) == {f"p{i}" for i in range(4, 9)}


def test_reopen_keeps_the_multivector_and_its_options(backend: str, tmp_path, rng: np.random.Generator) -> None:
    from qdrant_client import QdrantClient

    pages = corpus(rng, 15)
    client = QdrantClient(":memory:") if backend == "client" else None
    where = dict(client=client) if client else dict(path=str(tmp_path / "edge"))
    store = MultimodalQdrantStore(**where, multivector_datatype="float16")
    store.add([late_node(i, m) for i, m in enumerate(pages)])
    schema = store.schema
    store.close()
    again = MultimodalQdrantStore(**where)
    assert again.schema is not None and again.schema.late_interaction
    assert again.schema.multivector_datatype == "float16" and again.schema.dim == schema.dim
    query = query_vector(rng, pages[2])
    _, scores = exact_top(query, pages, 15)
    result = again.query(VectorStoreQuery(query_embedding=query, similarity_top_k=4))
    np.testing.assert_allclose(result.similarities, sorted(scores, reverse=True)[:4], atol=2e-3)  # float16
    again.close()
    with pytest.raises(SchemaMismatchError, match="late-interaction multivectors"):
        MultimodalQdrantStore(**where, late_interaction=False)
    if client:
        client.close()


def test_single_vectors_and_multivectors_never_share_a_collection(make_store: Make, rng: np.random.Generator) -> None:
    pages = corpus(rng, 4)
    late = make_store(collection_name="late")
    late.add([late_node(0, pages[0])])
    plain = TextNode(id_="clip1", text="a clip vector", embedding=unit(rng.normal(size=SINGLE_DIM)))
    with pytest.raises(SchemaMismatchError, match="node clip1 has no multivector"):
        late.add([plain])
    single = make_store(collection_name="single")
    single.add([plain])
    with pytest.raises(SchemaMismatchError, match="node p1 carries a late-interaction multivector"):
        single.add([late_node(1, pages[1])])
    with pytest.raises(SchemaMismatchError, match="node clip1 has no multivector"):
        make_store(collection_name="mixed").add([late_node(2, pages[2]), plain])
    assert late.count() == 1 and single.count() == 1
    with pytest.raises(ValueError, match="late-interaction collection"):
        single.query(VectorStoreQuery(query_embedding=unit(rng.normal(size=SINGLE_DIM)), similarity_top_k=1),
                     query_multivector=pages[0])


def test_copy_to_moves_the_multivectors(make_store: Make, rng: np.random.Generator) -> None:
    from qdrant_client import QdrantClient

    pages = corpus(rng, 8)
    source = make_store()
    source.add([late_node(i, m) for i, m in enumerate(pages)])
    client = QdrantClient(":memory:")
    target = MultimodalQdrantStore("copy", client=client)
    assert source.copy_to(target) == 8
    assert target.schema is not None and target.schema.late_interaction
    query = query_vector(rng, pages[1])
    _, scores = exact_top(query, pages, 8)
    np.testing.assert_allclose(target.query(VectorStoreQuery(query_embedding=query, similarity_top_k=3)).similarities,
                               sorted(scores, reverse=True)[:3], atol=1e-4)
    target.close()
    client.close()


@pytest.mark.parametrize("quantization", ["int8", "binary"])
def test_quantized_multivectors_are_rescored_by_the_originals(make_store: Make, rng: np.random.Generator,
                                                              quantization: str) -> None:
    pages = corpus(rng, 40)
    store = make_store(multivector_quantization=quantization)
    store.add([late_node(i, m) for i, m in enumerate(pages)])
    store.optimize()
    assert store.schema is not None and store.schema.multivector_quantization == quantization
    query = query_vector(rng, pages[9])
    _, scores = exact_top(query, pages, 40)
    result = store.query(VectorStoreQuery(query_embedding=query, similarity_top_k=5))
    # Whatever the compressed copy picked, each reported score is that page's exact MaxSim.
    np.testing.assert_allclose(result.similarities, [scores[int(i[1:])] for i in result.ids], atol=1e-4)
