"""LlamaIndex's own vector-store contract, on both backends.

Ported from llama-index-core's ``tests/vector_stores/test_simple.py`` and ``test_simple_doc_ids.py``
and from the Qdrant integration's ``tests/test_vector_stores_qdrant.py`` (the parts that are the
contract every LlamaIndex store keeps, not SimpleVectorStore's or QdrantVectorStore's internals), plus
what this store adds to it: stored vectors come back, scores mean one thing per query mode whatever
the backend or the other modalities held, and a store survives pickling.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pytest
from llama_index.core import MockEmbedding, StorageContext, VectorStoreIndex
from llama_index.core.postprocessor import SimilarityPostprocessor
from llama_index.core.schema import ImageNode, NodeRelationship, NodeWithScore, QueryBundle, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)
from qdrant_client import QdrantClient

from llama_index_mm_st.multivector import attach_multivector, node_multivector
from llama_index_mm_st.store import MultimodalQdrantStore

Make = Callable[..., MultimodalQdrantStore]

# LlamaIndex's own fixture: upper-case UUIDs, weights, ranks and lists of qualities.
WEIGHT_1_RANK_A = "AF3BE6C4-5F43-4D74-B075-6B0E07900DE8"
WEIGHT_2_RANK_C = "7D9CD555-846C-445C-A9DD-F8924A01411D"
WEIGHT_3_RANK_C = "452D24AB-F185-414C-A352-590B4B9EE51B"


def simple_nodes() -> list[TextNode]:
    rows = [
        (WEIGHT_1_RANK_A, [1.0, 0.0], "test-0", 1.0, "a", ["medium", "high"], "6FTR78Yun"),
        (WEIGHT_2_RANK_C, [0.0, 1.0], "test-1", 2.0, "c", ["medium"], "6FTR78Ygl"),
        (WEIGHT_3_RANK_C, [1.0, 1.0], "test-2", 3.0, "c", ["low", "medium", "high"], "6FTR78Ztl"),
    ]
    return [
        TextNode(text="lorem ipsum", id_=node_id, embedding=vector,
                 relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=doc)},
                 metadata={"weight": weight, "rank": rank, "quality": quality, "identifier": identifier})
        for node_id, vector, doc, weight, rank, quality, identifier in rows
    ]


@pytest.fixture
def simple(make_store: Make) -> MultimodalQdrantStore:
    store = make_store()
    store.add(simple_nodes())
    return store


def query_ids(store: MultimodalQdrantStore, filters: Optional[MetadataFilters] = None, top_k: int = 3, **query) -> list[str]:
    result = store.query(VectorStoreQuery(query_embedding=[1.0, 1.0], similarity_top_k=top_k, filters=filters, **query))
    return list(result.ids)


def test_query_without_filters_returns_all_rows_best_first(simple: MultimodalQdrantStore) -> None:
    ids = query_ids(simple)
    assert sorted(ids) == sorted([WEIGHT_1_RANK_A, WEIGHT_2_RANK_C, WEIGHT_3_RANK_C])
    assert ids[0] == WEIGHT_3_RANK_C  # node ids come back as given, upper-case UUIDs included


def test_filters_top_k_and_node_ids(simple: MultimodalQdrantStore) -> None:
    rank_c = MetadataFilters(filters=[MetadataFilter(key="rank", value="c")])
    assert query_ids(simple, rank_c) == [WEIGHT_3_RANK_C, WEIGHT_2_RANK_C]
    assert query_ids(simple, rank_c, top_k=1) == [WEIGHT_3_RANK_C]
    assert query_ids(simple, rank_c, node_ids=[WEIGHT_3_RANK_C]) == [WEIGHT_3_RANK_C]
    exact = MetadataFilters(filters=[MetadataFilter(key="rank", value="c"), MetadataFilter(key="weight", value=2.0)])
    assert query_ids(simple, exact) == [WEIGHT_2_RANK_C]
    contradiction = MetadataFilters(filters=[MetadataFilter(key="weight", value=2), MetadataFilter(key="weight", value=3)])
    assert query_ids(simple, contradiction) == []
    assert query_ids(simple, MetadataFilters(filters=[MetadataFilter(key="unknown_field", value="c")])) == []


@pytest.mark.parametrize(("key", "operator", "value", "count"), [
    ("weight", FilterOperator.EQ, 1.0, 1), ("weight", FilterOperator.NE, 1.0, 2), ("weight", FilterOperator.GT, 1.5, 2),
    ("weight", FilterOperator.GTE, 1.0, 3), ("weight", FilterOperator.LT, 1.1, 1), ("weight", FilterOperator.LTE, 1.0, 1),
    ("rank", FilterOperator.IN, ["a", "c"], 3), ("rank", FilterOperator.NIN, ["c"], 1),
    ("quality", FilterOperator.CONTAINS, "high", 2), ("identifier", FilterOperator.TEXT_MATCH, "6FTR78Y", 2),
    ("quality", FilterOperator.ANY, ["high", "low"], 2), ("quality", FilterOperator.ALL, ["medium", "high"], 2),
])
def test_every_filter_operator(simple: MultimodalQdrantStore, key: str, operator: FilterOperator, value, count: int) -> None:
    assert len(query_ids(simple, MetadataFilters(filters=[MetadataFilter(key=key, operator=operator, value=value)]))) == count


def test_and_or_not_conditions(simple: MultimodalQdrantStore) -> None:
    both = [MetadataFilter(key="rank", value="c"), MetadataFilter(key="weight", value=1.0)]
    assert len(query_ids(simple, MetadataFilters(filters=both, condition=FilterCondition.OR))) == 3
    assert query_ids(simple, MetadataFilters(filters=both, condition=FilterCondition.AND)) == []
    not_a = MetadataFilters(filters=[MetadataFilter(key="rank", value="a")], condition=FilterCondition.NOT)
    assert sorted(query_ids(simple, not_a)) == sorted([WEIGHT_2_RANK_C, WEIGHT_3_RANK_C])


def test_delete_removes_a_document_from_results(simple: MultimodalQdrantStore) -> None:
    simple.delete("test-1")
    assert query_ids(simple, top_k=2) == [WEIGHT_3_RANK_C, WEIGHT_1_RANK_A]


def test_is_empty_on_a_key_no_node_has_matches_every_node(simple: MultimodalQdrantStore) -> None:
    flt = MetadataFilters(filters=[MetadataFilter(key="not_existed_key", operator=FilterOperator.IS_EMPTY, value=None)])
    assert len(query_ids(simple, flt)) == 3


def test_delete_nodes_and_clear(simple: MultimodalQdrantStore) -> None:
    simple.delete_nodes([WEIGHT_1_RANK_A, WEIGHT_2_RANK_C])
    assert query_ids(simple) == [WEIGHT_3_RANK_C]
    simple.clear()
    assert query_ids(simple) == []


# ------------------------------------------------------------ doc_ids and node_ids (test_simple_doc_ids.py)


def document_nodes() -> list[TextNode]:
    return [
        TextNode(id_=f"{doc}-{chunk}", text=f"Document {doc}, chunk {chunk}", embedding=[1.0, float(chunk)],
                 relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=doc)}, metadata={"chunk": chunk})
        for doc in ["a", "b"] for chunk in [0, 1]
    ]


@pytest.mark.parametrize(("doc_ids", "expected"), [
    (None, {"a-0", "a-1", "b-0", "b-1"}), ([], set()), (["missing"], set()), (["a"], {"a-0", "a-1"}),
])
def test_a_retriever_constrains_source_documents(make_store: Make, doc_ids, expected) -> None:
    """``doc_ids=[]`` matches no document; the retriever's default ``node_ids`` (the index's empty
    node list when the store holds the text) is no restriction."""
    store = make_store()
    index = VectorStoreIndex(document_nodes(), storage_context=StorageContext.from_defaults(vector_store=store),
                             embed_model=MockEmbedding(embed_dim=2))
    retriever = index.as_retriever(doc_ids=doc_ids, similarity_top_k=10)
    results = retriever.retrieve(QueryBundle(query_str="test", embedding=[1.0, 0.0]))
    assert {item.node.node_id for item in results} == expected
    assert store.query(VectorStoreQuery(query_embedding=[1.0, 0.0], similarity_top_k=10, node_ids=[])).ids


def test_document_node_and_metadata_filters_intersect(make_store: Make) -> None:
    store = make_store()
    store.add(document_nodes())
    store.add([TextNode(id_="a-2", text="more", embedding=[1.0, 0.0], metadata={"chunk": 1},
                        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id="a")})])
    result = store.query(VectorStoreQuery(
        query_embedding=[1.0, 0.0], similarity_top_k=10, doc_ids=["a"], node_ids=["a-0", "a-1", "b-1"],
        filters=MetadataFilters(filters=[MetadataFilter(key="chunk", value=1)])))
    assert result.ids == ["a-1"]


# ------------------------------------------------------------ the Qdrant integration's tests


def uuid_nodes() -> list[TextNode]:
    return [
        TextNode(id_=f"{n}{n}{n}{n}{n}{n}{n}{n}-{n}{n}{n}{n}-{n}{n}{n}{n}-{n}{n}{n}{n}-{n * 12}", text=f"test{n}",
                 embedding=[1.0, float(n)], metadata={"some_key": value},
                 relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=f"test-{n % 2}")})
        for n, value in ((1, 1), (2, 2), (3, "3"))
    ]


async def test_delete_nodes_then_get_nodes_sync_and_async(make_store: Make) -> None:
    store = make_store()
    store.add(uuid_nodes())
    ids = [n.node_id for n in uuid_nodes()]
    store.delete_nodes(node_ids=[ids[0]])
    assert [n.node_id for n in store.get_nodes(node_ids=ids)] == ids[1:]
    await store.adelete_nodes(node_ids=[ids[1]])
    assert [n.node_id for n in await store.aget_nodes(node_ids=ids)] == ids[2:]
    await store.aclear()
    assert store.get_nodes(node_ids=ids) == [] and store.count() == 0


async def test_get_nodes_carries_the_embedding(make_store: Make) -> None:
    store = make_store()
    store.add(uuid_nodes())
    found = await store.aget_nodes(node_ids=[n.node_id for n in uuid_nodes()])
    for node, given in zip(found, uuid_nodes()):
        assert node.embedding is not None
        assert np.allclose(node.embedding, np.asarray(given.embedding) / np.linalg.norm(given.embedding), atol=1e-6)


def test_filters_keep_value_types(make_store: Make) -> None:
    store = make_store()
    store.add(uuid_nodes())

    def count(operator: FilterOperator, value) -> int:
        return len(store.get_nodes(filters=MetadataFilters(filters=[MetadataFilter(key="some_key", value=value, operator=operator)])))

    assert count(FilterOperator.IN, [1, 2]) == 2
    assert count(FilterOperator.NIN, [1, 2]) == 1
    assert count(FilterOperator.IN, ["3"]) == 1


def test_hybrid_top_k_and_dense_top_k(make_store: Make) -> None:
    store = make_store(hybrid=True)
    store.add(uuid_nodes())
    query = VectorStoreQuery(query_embedding=[0.0, 1.0], query_str="test1", similarity_top_k=1, sparse_top_k=1,
                             hybrid_top_k=2, mode=VectorStoreQueryMode.HYBRID)
    assert len(store.query(query).nodes) == 2
    store.hybrid = False
    query.mode = VectorStoreQueryMode.DEFAULT
    assert len(store.query(query).nodes) == 1


# ------------------------------------------------------------ what this store adds to the contract


def mixed_nodes(rng: np.random.Generator, dim: int = 8) -> list:
    def unit() -> list[float]:
        v = rng.normal(size=dim)
        return (v / np.linalg.norm(v)).tolist()

    texts = [TextNode(id_=f"t{i}", text=f"words number {i}", embedding=unit(), metadata={"i": i}) for i in range(6)]
    images = [ImageNode(id_="i0", image_path="/p/0.png", embedding=unit()),
              ImageNode(id_="i1", image_path="/p/1.png", text="a caption", embedding=unit(), text_embedding=unit())]
    return texts + images


def test_get_nodes_round_trips_a_whole_store(make_store: Make, tmp_path: Path) -> None:
    """``other.add(store.get_nodes())``: the way LlamaIndex moves nodes between stores works on ours,
    image nodes' text vectors included."""
    store = make_store()
    nodes = mixed_nodes(np.random.default_rng(3))
    store.add(nodes)
    copy = MultimodalQdrantStore(path=str(tmp_path / "copy"))
    copy.add(store.get_nodes())
    got = {n.node_id: n for n in copy.get_nodes()}
    for node in nodes:
        assert np.allclose(got[node.node_id].embedding, node.embedding, atol=1e-6)
        assert np.allclose(getattr(got[node.node_id], "text_embedding", None) or [0.0],
                           getattr(node, "text_embedding", None) or [0.0], atol=1e-6)
    query = VectorStoreQuery(query_embedding=nodes[0].embedding, similarity_top_k=5)
    assert copy.query(query).ids == store.query(query).ids
    copy.close()


def test_get_nodes_round_trips_multivectors(make_store: Make) -> None:
    rng = np.random.default_rng(5)
    store = make_store(late_interaction=True)
    nodes = []
    for i in range(4):
        matrix = rng.normal(size=(5, 8)).astype(np.float32)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        node = TextNode(id_=f"p{i}", text=f"page {i}", embedding=(matrix.mean(0) / np.linalg.norm(matrix.mean(0))).tolist())
        attach_multivector(node, matrix)
        nodes.append(node)
    store.add(nodes)
    other = MultimodalQdrantStore(client=QdrantClient(":memory:"), late_interaction=True)
    other.add(store.get_nodes())
    for node in other.get_nodes([n.node_id for n in nodes]):
        assert np.allclose(node_multivector(node), node_multivector(nodes[int(node.node_id[1:])]), atol=1e-6)


def two_stores(tmp_path: Path, **fields: object) -> tuple[MultimodalQdrantStore, MultimodalQdrantStore]:
    return (MultimodalQdrantStore(path=str(tmp_path / "edge"), **fields),
            MultimodalQdrantStore(client=QdrantClient(":memory:"), **fields))


@pytest.mark.parametrize("fusion", ["relevance", "rrf"])
@pytest.mark.parametrize("mode", ["dense", "hybrid", "sparse"])
def test_similarities_mean_the_same_on_both_backends_and_ignore_other_modalities(tmp_path: Path, mode: str,
                                                                                 fusion: str) -> None:
    """The same query over the same text nodes scores the same on Edge and on a server, in the order
    of the returned nodes, and adding images to the store changes no text node's score (dense and
    hybrid: a relevance against the texts' own background, or RRF, sum of w / (k + rank) with rank from
    0; sparse: BM25)."""
    rng = np.random.default_rng(11)
    texts = mixed_nodes(rng)[:6]
    for i, node in enumerate(texts):  # BM25 scores without ties: "alpha" is more frequent in longer texts
        node.text = " ".join(["alpha"] * (6 - abs(i - 2)) + ["filler"] * (i + 1))
    query_vector = np.asarray(texts[2].embedding) + 0.05
    query = VectorStoreQuery(query_embedding=(query_vector / np.linalg.norm(query_vector)).tolist(),
                             query_str="alpha", similarity_top_k=20,
                             mode={"dense": "default", "hybrid": "hybrid", "sparse": "sparse"}[mode])
    results = []
    for store in two_stores(tmp_path / mode, fusion=fusion):
        store.add(texts)
        before = store.query(query)
        store.add([ImageNode(id_=f"img{i}", image_path=f"/x/{i}.png", embedding=mixed_nodes(rng)[6].embedding)
                   for i in range(3)])
        after = store.query(query)
        texts_after = {i: s for i, s in zip(after.ids, after.similarities) if i.startswith("t")}
        assert texts_after == pytest.approx(dict(zip(before.ids, before.similarities)), rel=1e-6)
        assert list(before.similarities) == sorted(before.similarities, reverse=True)
        results.append(before)
        store.close()
    edge, client = results
    assert edge.ids[0] == client.ids[0] == "t2"
    assert edge.similarities == pytest.approx(client.similarities, rel=1e-5)
    if mode == "dense" and fusion == "rrf":  # one dense list: exactly 1 / (60 + rank)
        assert edge.similarities == pytest.approx([1 / (60 + r) for r in range(6)], rel=1e-5)


def test_a_similarity_cutoff_keeps_the_same_nodes_on_both_backends(tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    texts = mixed_nodes(rng)[:6]
    query = VectorStoreQuery(query_embedding=texts[0].embedding, similarity_top_k=6)
    cutoff = SimilarityPostprocessor(similarity_cutoff=1 / 62.5)  # keeps the top three of an RRF list
    kept = []
    for store in two_stores(tmp_path, fusion="rrf"):
        store.add(texts)
        result = store.query(query)
        nodes = [NodeWithScore(node=n, score=s) for n, s in zip(result.nodes, result.similarities)]
        kept.append([n.node.node_id for n in cutoff.postprocess_nodes(nodes)])
        store.close()
    assert kept[0] == kept[1] and len(kept[0]) == 3 and kept[0][0] == "t0"


def test_a_pickled_index_works_after_unpickling(tmp_path: Path) -> None:
    """A ``VectorStoreIndex`` pickled with its store (a cache, a process pool) reopens the store on
    first use; a store that can't be reopened refuses at pickling time, saying why."""
    store = MultimodalQdrantStore(path=str(tmp_path / "store"))
    index = VectorStoreIndex(document_nodes(), storage_context=StorageContext.from_defaults(vector_store=store),
                             embed_model=MockEmbedding(embed_dim=2))
    payload = pickle.dumps(index)
    expected = index.as_retriever(similarity_top_k=2).retrieve(QueryBundle(query_str="x", embedding=[1.0, 1.0]))
    store.close()
    copy = pickle.loads(payload)
    found = copy.as_retriever(similarity_top_k=2).retrieve(QueryBundle(query_str="x", embedding=[1.0, 1.0]))
    assert [n.node.node_id for n in found] == [n.node.node_id for n in expected]
    assert copy.vector_store.count() == 4
    copy.vector_store.close()
    with pytest.raises(TypeError, match="temporary directory"):
        pickle.dumps(MultimodalQdrantStore())
    with pytest.raises(TypeError, match="url="):
        pickle.dumps(MultimodalQdrantStore(client=QdrantClient(":memory:")))


def test_add_checks_every_node_against_the_schema_it_is_about_to_create(make_store: Make) -> None:
    """``dense_vectors=["text", "image"]`` and no ``dim``: a first ``add`` holding an audio node is
    refused before the collection exists or anything is written, naming the node."""
    store = make_store(dense_vectors=["text", "image"])
    text = TextNode(id_="t", text="x", embedding=[1.0, 0.0, 0.0])
    audio = TextNode(id_="song", text="", embedding=[0.0, 1.0, 0.0], metadata={"audio_path": "/a/song.wav"})
    with pytest.raises(ValueError, match="node song: this store has no 'audio' vector"):
        store.add([text, audio])
    assert store.schema is None and store.count() == 0
    store.add([text])
    assert store.schema is not None and set(store.schema.dense) == {"text", "image"} and store.count() == 1
