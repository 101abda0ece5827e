"""MMR on both backends: the engine's where every candidate carries one vector, ours over texts and
images, each equal to a numpy MMR (Qdrant's definition) over the same candidates."""

from __future__ import annotations

import asyncio
from typing import Callable, Optional

import numpy as np
import pytest
from llama_index.core.schema import ImageNode, NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery

from llama_index_mm_st.store import MultimodalQdrantStore
from llama_index_mm_st.store import plan as P
from llama_index_mm_st.store.plan import LateStage
from tests.store.conftest import DIM, unit

Make = Callable[..., MultimodalQdrantStore]


def reference_mmr(query: np.ndarray, vectors: np.ndarray, lambda_: float, k: int,
                  documents: Optional[list] = None, per_document: Optional[int] = None) -> list[int]:
    """Maximal marginal relevance as Qdrant defines it: the most relevant first, then each time the
    candidate with the highest lambda * cos(q, c) - (1 - lambda) * max cos(c, picked)."""
    unit_rows = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    relevance = unit_rows @ (query / np.linalg.norm(query))
    picked: list[int] = []
    while len(picked) < min(k, len(vectors)):
        best, best_score = None, -np.inf
        for i in range(len(vectors)):
            if i in picked:
                continue
            if documents is not None and sum(documents[j] == documents[i] for j in picked) >= per_document:
                continue
            redundancy = max((float(unit_rows[i] @ unit_rows[j]) for j in picked), default=0.0)
            score = relevance[i] if not picked else lambda_ * relevance[i] - (1 - lambda_) * redundancy
            if score > best_score:
                best, best_score = i, score
        if best is None:
            break
        picked.append(best)
    return picked


def clustered(rng: np.random.Generator, n: int, centres: int = 4) -> list[np.ndarray]:
    """Vectors in tight clusters, so the most relevant candidates are near-duplicates of each other."""
    middle = rng.normal(size=(centres, DIM))
    return [middle[i % centres] + 0.15 * rng.normal(size=DIM) for i in range(n)]


def text_nodes(rng: np.random.Generator, n: int = 40) -> list[TextNode]:
    nodes = []
    for i, vector in enumerate(clustered(rng, n)):
        node = TextNode(id_=f"t{i}", text=f"words of chunk {i} " + ("shared " if i % 3 == 0 else ""),
                        embedding=unit(vector))
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=f"doc{i % 5}")
        nodes.append(node)
    return nodes


def image_nodes(rng: np.random.Generator, n: int = 16) -> list[ImageNode]:
    return [ImageNode(id_=f"i{i}", image_path=f"/pics/{i}.png", embedding=unit(v))
            for i, v in enumerate(clustered(rng, n))]


def candidates(store: MultimodalQdrantStore, query: VectorStoreQuery, count: int) -> tuple[list[str], np.ndarray]:
    """The fused list MMR chooses from (the plain query at the candidate depth) and each candidate's
    standing vector (its text vector, else its image vector) read back from the store."""
    mode = "hybrid" if query.mode == "hybrid" else "default"
    plain = VectorStoreQuery(query_embedding=query.query_embedding, query_str=query.query_str, mode=mode,
                             similarity_top_k=count)
    ids = store.query(plain).ids
    vectors = []
    for node in store.get_nodes(ids):  # an image node keeps its words' vector in text_embedding
        vectors.append(getattr(node, "text_embedding", None) or node.embedding)
    return ids, np.asarray(vectors)


@pytest.mark.parametrize("lambda_", [0.0, 0.3, 0.7])
def test_engine_mmr_equals_numpy_mmr_on_the_same_candidates(make_store: Make, rng: np.random.Generator,
                                                            lambda_: float) -> None:
    store = make_store(dense_vectors=["text"], fusion="rrf")  # the engine's MMR follows its own fusion
    store.add(text_nodes(rng))
    q = rng.normal(size=DIM)
    query = VectorStoreQuery(query_embedding=unit(q), similarity_top_k=6, mode="mmr")
    plan = store.plan(query, mmr_threshold=lambda_, mmr_candidates=20)
    assert plan.mmr is not None and plan.mmr.using == "text" and plan.mmr.candidates == 20  # the engine runs it
    result = store.query(query, mmr_threshold=lambda_, mmr_candidates=20)
    ids, vectors = candidates(store, query, 20)
    expected = reference_mmr(q, vectors, lambda_, 6)
    assert result.ids == [ids[i] for i in expected]
    relevance = vectors @ (q / np.linalg.norm(q)) / np.linalg.norm(vectors, axis=1)
    assert result.similarities == pytest.approx([relevance[i] for i in expected], abs=1e-5)  # cosine to the query


def test_mmr_diversifies_and_lambda_one_is_relevance_order(make_store: Make, rng: np.random.Generator) -> None:
    store = make_store(dense_vectors=["text"])
    nodes = text_nodes(rng)
    store.add(nodes)
    q = unit(np.asarray(nodes[0].embedding) + 0.05 * rng.normal(size=DIM))
    query = VectorStoreQuery(query_embedding=q, similarity_top_k=4, mode="mmr")
    plain = store.query(VectorStoreQuery(query_embedding=q, similarity_top_k=4))
    assert store.query(query, mmr_threshold=1.0).ids == plain.ids
    # Each cluster is 10 near-duplicates: plain search takes four of the first; MMR spreads out.
    cluster = lambda node_id: int(node_id[1:]) % 4  # noqa: E731
    assert len({cluster(i) for i in plain.ids}) == 1
    diverse = store.query(query, mmr_threshold=0.3).ids
    assert diverse[0] == plain.ids[0] and len({cluster(i) for i in diverse}) >= 2
    assert store.plan(query).mmr.lambda_ == 0.5  # mode "mmr" alone: LlamaIndex's default


def test_our_mmr_over_texts_and_images_equals_numpy_mmr(make_store: Make, rng: np.random.Generator) -> None:
    """Texts and images carry different vectors, which the engine's MMR can't compare: ours runs, each
    candidate standing by the vector the dense search ranked it by."""
    store = make_store()
    store.add(text_nodes(rng, 24) + image_nodes(rng, 16))
    q = rng.normal(size=DIM)
    for mode in ("mmr", "hybrid"):
        query = VectorStoreQuery(query_embedding=unit(q), query_str="shared words" if mode == "hybrid" else None,
                                 similarity_top_k=6, mode=mode)
        plan = store.plan(query, mmr_threshold=0.4, mmr_candidates=18)
        assert plan.mmr is not None and plan.mmr.using is None
        assert plan.with_dense[:2] == ("text", "image")  # the query's modality first
        result = store.query(query, mmr_threshold=0.4, mmr_candidates=18)
        ids, vectors = candidates(store, query, 18)
        expected = reference_mmr(q, vectors, 0.4, 6)
        assert result.ids == [ids[i] for i in expected]
        assert {i[0] for i in result.ids} == {"t", "i"}


def test_our_mmr_and_the_engines_agree(tmp_path, rng: np.random.Generator) -> None:
    """The same text-only data: Edge holds one vector and lets the engine run MMR; a server collection
    with all four vectors can't know that and runs ours. Same hits, same scores."""
    from qdrant_client import QdrantClient

    nodes = text_nodes(rng)
    edge = MultimodalQdrantStore(path=str(tmp_path), fusion="rrf")  # the engine's MMR follows its own fusion
    server = MultimodalQdrantStore(client=QdrantClient(":memory:"), fusion="rrf")
    query = VectorStoreQuery(query_embedding=unit(rng.normal(size=DIM)), similarity_top_k=7, mode="mmr")
    try:
        for store in (edge, server):
            store.add(nodes)
        assert edge.plan(query).mmr.using == "text" and server.plan(query).mmr.using is None
        a, b = edge.query(query, mmr_threshold=0.6), server.query(query, mmr_threshold=0.6)
        assert a.ids == b.ids
        assert a.similarities == pytest.approx(b.similarities, abs=1e-5)
    finally:
        edge.close()
        server.close()


def test_mmr_with_a_document_cap_equals_numpy(make_store: Make, rng: np.random.Generator) -> None:
    store = make_store(dense_vectors=["text"])
    nodes = text_nodes(rng)
    store.add(nodes)
    q = rng.normal(size=DIM)
    query = VectorStoreQuery(query_embedding=unit(q), similarity_top_k=6, mode="mmr")
    plan = store.plan(query, mmr_threshold=0.5, max_per_document=1, mmr_candidates=30)
    assert plan.mmr.using is None  # a document cap steers the picks: ours
    result = store.query(query, mmr_threshold=0.5, max_per_document=1, mmr_candidates=30)
    ids, vectors = candidates(store, query, 30)
    documents = [f"doc{int(i[1:]) % 5}" for i in ids]
    expected = reference_mmr(q, vectors, 0.5, 6, documents, 1)
    assert result.ids == [ids[i] for i in expected] and len(result.ids) == 5  # five documents only


async def test_mmr_in_concurrent_aqueries(make_store: Make, rng: np.random.Generator) -> None:
    store = make_store()
    store.add(text_nodes(rng, 24) + image_nodes(rng, 8))
    queries = [VectorStoreQuery(query_embedding=unit(rng.normal(size=DIM)), similarity_top_k=5, mode="mmr")
               for _ in range(6)]
    expected = [store.query(q, max_per_document=2 if i % 2 else None) for i, q in enumerate(queries)]
    found = await asyncio.gather(*(store.aquery(q, max_per_document=2 if i % 2 else None)
                                   for i, q in enumerate(queries)))
    assert [r.ids for r in found] == [r.ids for r in expected]


def test_mmr_refuses_what_it_cant_do(make_store: Make, rng: np.random.Generator) -> None:
    store = make_store()
    store.add(text_nodes(rng, 8))
    vector = unit(rng.normal(size=DIM))
    with pytest.raises(ValueError, match="MMR needs a dense query"):
        store.query(VectorStoreQuery(query_str="words", mode="sparse"), mmr_threshold=0.5)
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        store.query(VectorStoreQuery(query_embedding=vector, mode="mmr"), mmr_threshold=1.5)
    with pytest.raises(ValueError, match="mmr_candidates must be a positive integer"):
        store.query(VectorStoreQuery(query_embedding=vector, mode="mmr"), mmr_candidates=0)
    with pytest.raises(TypeError, match="unexpected query arguments"):
        store.query(VectorStoreQuery(query_embedding=vector, mode="mmr"), mmr_lambda=0.5)
    late = LateStage("late", [[1.0] + [0.0] * (DIM - 1)], 32)
    opts = P.QueryOptions(dense=("text",), late=late)
    with pytest.raises(ValueError, match="MaxSim"):
        P.plan_query(VectorStoreQuery(query_embedding=vector, mode="mmr"), opts, lambda text: None)  # type: ignore[arg-type,return-value]


def test_llamaindex_retriever_mmr_mode_reaches_the_store(make_store: Make, rng: np.random.Generator) -> None:
    """``index.as_retriever(vector_store_query_mode="mmr", vector_store_kwargs={"mmr_threshold": ...})``."""
    from llama_index.core import VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding

    store = make_store(dense_vectors=["text"])
    store.add(text_nodes(rng))
    embed = MockEmbedding(embed_dim=DIM)
    index = VectorStoreIndex.from_vector_store(store, embed_model=embed)
    retriever = index.as_retriever(similarity_top_k=5, vector_store_query_mode="mmr",
                                   vector_store_kwargs={"mmr_threshold": 0.2})
    got = [n.node.node_id for n in retriever.retrieve("anything")]
    want = store.query(VectorStoreQuery(query_embedding=embed.get_query_embedding("anything"), similarity_top_k=5,
                                        mode="mmr"), mmr_threshold=0.2).ids
    assert got == want and len(got) == 5
