"""``max_per_document`` on both backends against a brute-force reference: every node ranked exactly,
RRF over the full lists, then the greedy cut (at most N per document, the rest from further down)."""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import pytest
from llama_index.core.schema import ImageNode, NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery

from llama_index_mm_st.store import MultimodalQdrantStore
from llama_index_mm_st.store.plan import CROSS_MODAL_TIE_BREAK
from tests.store.conftest import DIM, unit

Make = Callable[..., MultimodalQdrantStore]
K = 60


def corpus(rng: np.random.Generator, documents: int = 8, chunks: int = 5) -> tuple[list, np.ndarray]:
    """Texts: ``chunks`` near-identical chunks per document (so one document fills a plain top k);
    images: no source document (each is a document of its own), some with a file_path."""
    centres = rng.normal(size=(documents, DIM))
    nodes = []
    for d in range(documents):
        for c in range(chunks):
            node = TextNode(id_=f"d{d}c{c}", text=f"chunk {c} of document {d}", metadata={"file_path": f"/f{d // 2}.pdf"},
                            embedding=unit(centres[d] + 0.05 * rng.normal(size=DIM)))
            node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=f"doc{d}")
            nodes.append(node)
    for i in range(6):
        nodes.append(ImageNode(id_=f"img{i}", image_path=f"/pics/{i}.png",
                               embedding=unit(centres[0] + 0.8 * rng.normal(size=DIM))))
    return nodes, centres


def document(node, key: Optional[str]) -> str:
    if key is not None and node.metadata.get(key) is not None:
        return f"key:{node.metadata[key]}"
    return f"ref:{node.ref_doc_id}" if node.ref_doc_id else f"node:{node.node_id}"


def brute_force(nodes: list, query: np.ndarray, top_k: int, per_document: int,
                key: Optional[str] = None) -> list[tuple[str, float]]:
    """Texts and pure images each form one exactly ranked list (a text query: images at the 0.999
    cross-modal weight); every node is in one list, so its RRF score is 1/(k + rank) (x 0.999)."""
    scored = []
    for kind, weight in ((TextNode, 1.0), (ImageNode, CROSS_MODAL_TIE_BREAK)):
        members = [n for n in nodes if type(n) is kind]
        sims = [float(np.dot(n.embedding, query)) for n in members]
        for rank, i in enumerate(np.argsort(sims)[::-1]):
            scored.append((members[i], 1.0 / ((rank + 1) / weight + K - 1)))
    scored.sort(key=lambda pair: -pair[1])
    taken: dict[str, int] = {}
    out = []
    for node, score in scored:
        doc = document(node, key)
        if taken.get(doc, 0) < per_document:
            taken[doc] = taken.get(doc, 0) + 1
            out.append((node.node_id, score))
        if len(out) == top_k:
            break
    return out


@pytest.mark.parametrize("per_document, key", [(1, None), (2, None), (1, "file_path")])
def test_max_per_document_equals_brute_force(make_store: Make, rng: np.random.Generator, per_document: int,
                                             key: Optional[str]) -> None:
    nodes, centres = corpus(rng)
    store = make_store(fusion="rrf")  # the brute force reference fuses by RRF
    store.add(nodes)
    query = unit(centres[0] + 0.05 * rng.normal(size=DIM))
    plain = store.query(VectorStoreQuery(query_embedding=query, similarity_top_k=6))
    assert sum(i.startswith("d0") for i in plain.ids) == 3  # one document holds half the plain top 6
    result = store.query(VectorStoreQuery(query_embedding=query, similarity_top_k=6), max_per_document=per_document,
                         document_key=key)
    expected = brute_force(nodes, np.asarray(query), 6, per_document, key)
    assert result.ids == [i for i, _ in expected]
    assert result.similarities == pytest.approx([s for _, s in expected], rel=1e-6)


def test_without_a_cap_that_bites_the_answer_is_the_plain_querys(make_store: Make, rng: np.random.Generator) -> None:
    nodes, centres = corpus(rng)
    store = make_store()
    store.add(nodes)
    # Dense only: BM25 ties (every chunk has the same words) may be cut differently at another depth.
    q = VectorStoreQuery(query_embedding=unit(centres[3]), similarity_top_k=8)
    plain = store.query(q)
    capped = store.query(q, max_per_document=100)
    assert capped.ids == plain.ids and capped.similarities == pytest.approx(plain.similarities, rel=1e-5)


def test_store_level_cap_and_a_sparse_query(make_store: Make, rng: np.random.Generator) -> None:
    """One BM25 list: its scores don't depend on how deep it is read, so the reference is the plain
    sparse list read deep, cut greedily."""
    nodes, _ = corpus(rng)
    store = make_store(max_per_document=1)
    store.add(nodes)
    q = VectorStoreQuery(query_str="chunk 3 document", mode="sparse", similarity_top_k=4)
    deep = store.query(VectorStoreQuery(query_str="chunk 3 document", mode="sparse", similarity_top_k=60),
                       max_per_document=None)
    seen, expected = set(), []
    for node, score in zip(deep.nodes, deep.similarities):
        if node.ref_doc_id not in seen:
            seen.add(node.ref_doc_id)
            expected.append(score)
    result = store.query(q)
    assert len({n.ref_doc_id for n in result.nodes}) == 4 == len(result.nodes)
    assert result.similarities == pytest.approx(expected[:4], rel=1e-5)


def test_nodes_without_a_source_are_documents_of_their_own(make_store: Make, rng: np.random.Generator) -> None:
    base = rng.normal(size=DIM)
    store = make_store()
    store.add([TextNode(id_=f"n{i}", text="", embedding=unit(base + 0.01 * rng.normal(size=DIM))) for i in range(5)])
    result = store.query(VectorStoreQuery(query_embedding=unit(base), similarity_top_k=5), max_per_document=1)
    assert len(result.ids) == 5


def test_a_bad_cap_is_refused(make_store: Make, rng: np.random.Generator) -> None:
    store = make_store()
    store.add(corpus(rng)[0][:3])
    q = VectorStoreQuery(query_embedding=unit(rng.normal(size=DIM)))
    with pytest.raises(ValueError, match="max_per_document must be a positive integer"):
        store.query(q, max_per_document=0)
    with pytest.raises(ValueError, match="document_key must be a metadata key"):
        store.query(q, max_per_document=1, document_key="")
    with pytest.raises(ValueError):
        make_store(max_per_document=0)
