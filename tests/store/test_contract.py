"""The store's contract, run on both backends: Qdrant Edge and qdrant-client (``:memory:``)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest
from llama_index.core.schema import ImageNode, NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)

from llama_index_mm_st.errors import SchemaMismatchError
from llama_index_mm_st.store import MultimodalQdrantStore
from tests.store.conftest import DIM, unit

Make = Callable[..., MultimodalQdrantStore]


def text_node(i: int, vec: list[float], doc: str = "d0", **meta) -> TextNode:
    node = TextNode(id_=f"t{i}", text=f"plain words number {i}", embedding=vec, metadata=meta)
    node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=doc)
    return node


def image_node(i: int, vec: list[float], doc: str = "d0", text: str = "", **meta) -> ImageNode:
    node = ImageNode(id_=f"i{i}", image_path=f"/pics/{i}.png", text=text, embedding=vec, metadata=meta)
    node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=doc)
    return node


def ids(nodes) -> set[str]:
    return {n.node_id for n in nodes}


def test_add_is_idempotent_and_counts(make_store: Make, rng: np.random.Generator) -> None:
    store = make_store()
    nodes = [text_node(i, unit(rng.normal(size=DIM))) for i in range(5)]
    assert store.add(nodes) == [f"t{i}" for i in range(5)]
    store.add(nodes[:2])
    assert store.count() == 5
    changed = text_node(0, unit(rng.normal(size=DIM)), colour="red")
    store.add([changed])
    assert store.count() == 5
    assert store.get_nodes(["t0"])[0].metadata == {"colour": "red"}


def test_batches_cover_every_node(make_store: Make, rng: np.random.Generator) -> None:
    store = make_store(batch_size=7)
    store.add([text_node(i, unit(rng.normal(size=DIM))) for i in range(30)], show_progress=False)
    assert store.count() == 30


def test_get_nodes_by_id_filter_and_all(make_store: Make, rng: np.random.Generator) -> None:
    store = make_store()
    store.add([text_node(i, unit(rng.normal(size=DIM)), n=i) for i in range(6)] + [image_node(0, unit(rng.normal(size=DIM)))])
    got = store.get_nodes(["t4", "i0", "t1"])
    assert [n.node_id for n in got] == ["t4", "i0", "t1"]
    assert isinstance(got[1], ImageNode) and got[1].image_path == "/pics/0.png"
    assert got[0].get_content() == "plain words number 4"
    flt = MetadataFilters(filters=[MetadataFilter(key="n", value=3, operator=FilterOperator.GTE)])
    assert ids(store.get_nodes(filters=flt)) == {"t3", "t4", "t5"}
    assert ids(store.get_nodes(["t1", "t4"], filters=flt)) == {"t4"}
    assert len(store.get_nodes()) == 7


def test_delete_by_ref_doc_removes_exactly_that_document(make_store: Make, rng: np.random.Generator) -> None:
    store = make_store()
    docs = ["a", "b", "a", "c", "a", "b"]
    store.add([text_node(i, unit(rng.normal(size=DIM)), doc=d) for i, d in enumerate(docs)])
    store.delete("a")
    assert ids(store.get_nodes()) == {"t1", "t3", "t5"}
    store.delete("nope")
    assert store.count() == 3


def test_delete_nodes_and_clear(make_store: Make, rng: np.random.Generator) -> None:
    store = make_store()
    store.add([text_node(i, unit(rng.normal(size=DIM)), n=i) for i in range(6)])
    store.delete_nodes(["t0", "t1"])
    assert ids(store.get_nodes()) == {"t2", "t3", "t4", "t5"}
    store.delete_nodes(filters=MetadataFilters(filters=[MetadataFilter(key="n", value=4, operator=FilterOperator.GTE)]))
    assert ids(store.get_nodes()) == {"t2", "t3"}
    store.delete_nodes(["t2", "t3"], filters=MetadataFilters(filters=[MetadataFilter(key="n", value=3)]))
    assert ids(store.get_nodes()) == {"t2"}
    with pytest.raises(ValueError, match="use clear"):
        store.delete_nodes()
    store.clear()
    assert store.count() == 0
    store.add([text_node(9, unit(rng.normal(size=DIM)))])  # the schema survives clear()
    assert store.count() == 1


# ---------------------------------------------------------------- filters

FILTER_META = {
    "t0": {"n": 1, "price": 9.5, "cat": "shoe", "tags": ["red", "sale"], "when": "2024-01-05T00:00:00Z", "flag": True, "title": "Red Runner"},
    "t1": {"n": 2, "price": 20.0, "cat": "shoe", "tags": ["blue"], "when": "2024-03-01T00:00:00Z", "flag": False, "title": "blue boot"},
    "t2": {"n": 3, "price": 35.25, "cat": "hat", "tags": ["red"], "when": "2024-06-30T00:00:00Z", "flag": True, "title": "Sun Hat"},
    "t3": {"n": 4, "price": 50.0, "cat": "bag", "tags": [], "title": "tote"},
    "t4": {"cat": "hat"},
}


def f(key: str, value, op: FilterOperator = FilterOperator.EQ) -> MetadataFilters:
    return MetadataFilters(filters=[MetadataFilter(key=key, value=value, operator=op)])


FILTER_CASES = [
    ("eq str", f("cat", "shoe"), {"t0", "t1"}),
    ("eq int", f("n", 3), {"t2"}),
    ("eq float", f("price", 9.5), {"t0"}),
    ("ne (missing key matches)", f("cat", "shoe", FilterOperator.NE), {"t2", "t3", "t4"}),
    ("ne number", f("n", 1, FilterOperator.NE), {"t1", "t2", "t3", "t4"}),
    ("gt", f("n", 2, FilterOperator.GT), {"t2", "t3"}),
    ("gte float", f("price", 35.25, FilterOperator.GTE), {"t2", "t3"}),
    ("lt", f("price", 20.0, FilterOperator.LT), {"t0"}),
    ("lte", f("n", 2, FilterOperator.LTE), {"t0", "t1"}),
    ("date gt", f("when", "2024-02-01T00:00:00+00:00", FilterOperator.GT), {"t1", "t2"}),
    ("in", f("cat", ["hat", "bag"], FilterOperator.IN), {"t2", "t3", "t4"}),
    ("in numbers", f("n", [1, 4], FilterOperator.IN), {"t0", "t3"}),
    ("nin", f("cat", ["hat", "bag"], FilterOperator.NIN), {"t0", "t1"}),
    ("any", f("tags", ["sale", "blue"], FilterOperator.ANY), {"t0", "t1"}),
    ("all", f("tags", ["red", "sale"], FilterOperator.ALL), {"t0"}),
    ("contains", f("tags", "red", FilterOperator.CONTAINS), {"t0", "t2"}),
    ("text_match is case-sensitive substring", f("title", "un", FilterOperator.TEXT_MATCH), {"t0", "t2"}),
    ("is_empty", f("tags", None, FilterOperator.IS_EMPTY), {"t3", "t4"}),
    (
        "or",
        MetadataFilters(filters=[MetadataFilter(key="cat", value="bag"), MetadataFilter(key="n", value=1)], condition=FilterCondition.OR),
        {"t0", "t3"},
    ),
    (
        "not",
        MetadataFilters(filters=[MetadataFilter(key="cat", value="hat"), MetadataFilter(key="n", value=1)], condition=FilterCondition.NOT),
        {"t1", "t3"},
    ),
    (
        "nested and(or, not)",
        MetadataFilters(
            filters=[
                MetadataFilters(filters=[MetadataFilter(key="cat", value="shoe"), MetadataFilter(key="cat", value="hat")], condition=FilterCondition.OR),
                MetadataFilters(filters=[MetadataFilter(key="n", value=2)], condition=FilterCondition.NOT),
            ]
        ),
        {"t0", "t2", "t4"},
    ),
]


@pytest.fixture
def filter_store(make_store: Make, rng: np.random.Generator) -> MultimodalQdrantStore:
    store = make_store()
    store.add([TextNode(id_=k, text=k, embedding=unit(rng.normal(size=DIM)), metadata=m) for k, m in FILTER_META.items()])
    return store


@pytest.mark.parametrize("name,filters,expected", FILTER_CASES, ids=[c[0] for c in FILTER_CASES])
def test_filters(filter_store: MultimodalQdrantStore, name: str, filters: MetadataFilters, expected: set[str]) -> None:
    assert ids(filter_store.get_nodes(filters=filters)) == expected
    assert filter_store.count(filters) == len(expected)
    result = filter_store.query(VectorStoreQuery(query_embedding=unit(np.ones(DIM)), similarity_top_k=10, filters=filters))
    assert ids(result.nodes) == expected


# ---------------------------------------------------------------- retrieval


def test_modality_gap_best_image_survives_fusion(make_store: Make, rng: np.random.Generator) -> None:
    """Texts sit near the query (cos ~0.9), images far (cos <= 0.35): one shared ranking buries them all;
    RRF's per-list ranks keep the best image. (Relevance fusion's answer to the gap is tested on a corpus
    with a background to stand against: tests/store/test_relevance_sim.py.)"""
    query = rng.normal(size=DIM)
    query /= np.linalg.norm(query)

    def near(cos: float) -> list[float]:
        noise = rng.normal(size=DIM)
        noise -= noise @ query * query
        return unit(cos * query + np.sqrt(1 - cos**2) * noise / np.linalg.norm(noise))

    texts = [text_node(i, near(0.85 + 0.01 * i)) for i in range(10)]
    images = [image_node(i, near(c)) for i, c in enumerate([0.35, 0.2, 0.1, 0.25])]
    single_ranking = sorted(texts + images, key=lambda n: -float(np.dot(n.embedding, query)))
    assert all(isinstance(n, TextNode) and not isinstance(n, ImageNode) for n in single_ranking[:10])

    store = make_store(fusion="rrf")
    store.add(texts + images)
    result = store.query(VectorStoreQuery(query_embedding=query.tolist(), similarity_top_k=3))
    assert "i0" in ids(result.nodes)
    assert result.nodes[0].node_id in {"t9", "i0"}  # both lists' winners share the top RRF score


def test_rare_exact_term_reaches_hybrid_top_k(make_store: Make, rng: np.random.Generator) -> None:
    query = unit(rng.normal(size=DIM))
    nodes = [
        TextNode(id_=f"t{i}", text=f"generic support article about printers number {i}", embedding=unit(np.array(query) + 0.3 * rng.normal(size=DIM)))
        for i in range(20)
    ]
    far = TextNode(id_="rare", text="printer shows error XQ7734 after update", embedding=unit(-np.array(query)))
    store = make_store()
    store.add(nodes + [far])
    dense = store.query(VectorStoreQuery(query_embedding=query, query_str="error XQ7734", similarity_top_k=5))
    assert "rare" not in ids(dense.nodes)
    hybrid = store.query(VectorStoreQuery(query_embedding=query, query_str="error XQ7734", similarity_top_k=5, mode="hybrid"))
    assert "rare" in ids(hybrid.nodes)
    sparse = store.query(VectorStoreQuery(query_str="XQ7734", similarity_top_k=3, mode="sparse"))
    assert [n.node_id for n in sparse.nodes] == ["rare"]


def test_store_level_hybrid_and_weights(make_store: Make, rng: np.random.Generator) -> None:
    query = unit(rng.normal(size=DIM))
    store = make_store(hybrid=True, rrf_weights={"bm25": 5.0})
    store.add(
        [TextNode(id_=f"t{i}", text=f"filler text {i}", embedding=unit(np.array(query) + 0.2 * rng.normal(size=DIM))) for i in range(8)]
        + [TextNode(id_="kw", text="zebra crossing", embedding=unit(-np.array(query)))]
    )
    top = store.query(VectorStoreQuery(query_embedding=query, query_str="zebra", similarity_top_k=3))
    assert top.nodes[0].node_id == "kw"  # bm25 weighted 5x puts its only hit first


def test_image_embedding_query_and_modality_restriction(make_store: Make, rng: np.random.Generator) -> None:
    vecs = [unit(rng.normal(size=DIM)) for _ in range(8)]
    nodes = [text_node(i, vecs[i]) for i in range(4)] + [image_node(i, vecs[4 + i], text="caption" if i == 1 else "") for i in range(4)]
    store = make_store()
    store.add(nodes)
    # Each branch's winner scores 1/k: the image query's nearest image ties with the nearest text.
    by_image = store.query(VectorStoreQuery(query_embedding=vecs[6], similarity_top_k=2))
    assert "i2" in ids(by_image.nodes)
    image_only = store.query(VectorStoreQuery(query_embedding=vecs[6], similarity_top_k=1), modality="image")
    assert image_only.ids == ["i2"]
    only_images = store.query(VectorStoreQuery(query_embedding=vecs[0], similarity_top_k=8), modality="image")
    assert ids(only_images.nodes) == {"i0", "i1", "i2", "i3"}  # the captioned image (text+image) included
    text_store = make_store(collection_name="texts_only", modality="text")
    text_store.add(nodes)
    only_texts = text_store.query(VectorStoreQuery(query_embedding=vecs[6], similarity_top_k=8))
    assert ids(only_texts.nodes) == {"t0", "t1", "t2", "t3", "i1"}  # the captioned image has text too
    with pytest.raises(TypeError, match="unexpected query arguments"):
        store.query(VectorStoreQuery(query_embedding=vecs[0]), modalty="image")


def test_captioned_image_is_found_by_its_text_vector(make_store: Make, rng: np.random.Generator) -> None:
    img, txt = unit(rng.normal(size=DIM)), unit(rng.normal(size=DIM))
    node = ImageNode(id_="cap", image_path="/p.png", text="a caption", embedding=img, text_embedding=txt)
    others = [text_node(i, unit(rng.normal(size=DIM))) for i in range(5)]
    store = make_store()
    store.add(others + [node])
    assert "cap" in store.query(VectorStoreQuery(query_embedding=txt, similarity_top_k=2)).ids
    by_image = store.query(VectorStoreQuery(query_embedding=img, similarity_top_k=2), query_modality="image")
    assert "cap" in by_image.ids
    assert store.query(VectorStoreQuery(query_embedding=txt, similarity_top_k=1), modality="image").ids == ["cap"]


def test_each_node_is_ranked_once_by_dense_similarity(make_store: Make, rng: np.random.Generator) -> None:
    """An exact image match outranks nodes that merely carry both vectors (no double counting in RRF)."""
    target = unit(rng.normal(size=DIM))
    photo = ImageNode(id_="photo", image_path="/photo.png", embedding=target)
    pages = [
        ImageNode(id_=f"page{i}", image_path=f"/page{i}.png", text=f"page {i} words",
                  embedding=unit(target + 0.5 * rng.normal(size=DIM)), text_embedding=unit(rng.normal(size=DIM)))
        for i in range(4)
    ]
    texts = [text_node(i, unit(rng.normal(size=DIM))) for i in range(4)]
    store = make_store()
    store.add(texts + pages + [photo])
    for query_modality in ("image", "text"):
        result = store.query(VectorStoreQuery(query_embedding=target, similarity_top_k=5), query_modality=query_modality)
        assert len(result.ids) == len(set(result.ids))
    assert store.query(VectorStoreQuery(query_embedding=target, similarity_top_k=5),
                       query_modality="image").ids[0] == "photo"
    with pytest.raises(ValueError, match="query_modality"):
        store.query(VectorStoreQuery(query_embedding=target), query_modality="smell")


def test_empty_store_answers_empty(make_store: Make) -> None:
    store = make_store()
    assert store.count() == 0 and store.get_nodes() == []
    assert store.query(VectorStoreQuery(query_embedding=[1.0] * DIM)).nodes == []


def test_schema_mismatch_on_reopen(make_store: Make, rng: np.random.Generator) -> None:
    first = make_store(dim=DIM)
    first.add([text_node(0, unit(rng.normal(size=DIM)))])
    first.close()
    with pytest.raises(SchemaMismatchError, match=f"dimension {DIM} != requested 8"):
        make_store(dim=8)
    with pytest.raises(SchemaMismatchError, match="bm25 language 'english' != 'german'"):
        make_store(bm25_language="german")
    reopened = make_store()  # dimension taken from the collection
    assert reopened.count() == 1
    with pytest.raises(ValueError, match="t1: text vector has 4 dimensions"):
        reopened.add([text_node(1, [1.0, 0.0, 0.0, 0.0])])


async def test_async_twins(make_store: Make, rng: np.random.Generator) -> None:
    store = make_store()
    nodes = [text_node(i, unit(rng.normal(size=DIM)), doc="a" if i < 3 else "b") for i in range(6)]
    assert await store.async_add(nodes) == [n.node_id for n in nodes]
    assert await store.acount() == 6
    result = await store.aquery(VectorStoreQuery(query_embedding=nodes[4].embedding, similarity_top_k=1))
    assert result.ids == ["t4"]
    assert ids(await store.aget_nodes(["t0", "t5"])) == {"t0", "t5"}
    await store.adelete("a")
    await store.adelete_nodes(["t3"])
    assert ids(await store.aget_nodes()) == {"t4", "t5"}
    await store.aclear()
    assert await store.acount() == 0


def test_a_bad_node_leaves_the_store_unchanged(make_store: Make, rng: np.random.Generator) -> None:
    store = make_store(batch_size=2)
    good = [text_node(i, unit(rng.normal(size=DIM))) for i in range(5)]
    with pytest.raises(ValueError, match="node t9 has no embedding"):
        store.add(good + [TextNode(id_="t9", text="no vector")])
    with pytest.raises(ValueError, match="node t1 has no embedding"):
        store.add([TextNode(id_="t1", text="no vector")])  # nothing to take a dimension from either
    assert store.count() == 0


def test_documents_are_stored_as_nodes_of_their_own_source(make_store: Make, rng: np.random.Generator,
                                                            image_files: dict) -> None:
    """An ImageDocument (LlamaIndex 0.14 keeps its image in image_resource) comes back as an ImageNode
    with its path, and a document stored as itself can be deleted by its own id."""
    from llama_index.core.schema import Document, ImageDocument

    picture = ImageDocument(image_path=str(image_files["png"]), text="a caption")
    picture.embedding = unit(rng.normal(size=DIM))
    picture.text_embedding = unit(rng.normal(size=DIM))
    words = Document(text="plain words")
    words.embedding = unit(rng.normal(size=DIM))
    store = make_store()
    store.add([picture, words])
    found = {n.node_id: n for n in store.get_nodes()}
    assert isinstance(found[picture.id_], ImageNode)
    assert found[picture.id_].image_path == str(image_files["png"]) and found[picture.id_].text == "a caption"
    hit = store.query(VectorStoreQuery(query_embedding=picture.text_embedding, similarity_top_k=1), modality="image")
    assert hit.ids == [picture.id_]
    store.delete(picture.id_)
    assert [n.node_id for n in store.get_nodes()] == [words.id_]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"embedding_nan": True}, "non-finite value"),
        ({"meta": {"title": "caf\udce9"}}, "not valid Unicode"),
        ({"meta": {"obj": object()}}, "not a JSON value"),
        ({"meta": {"big": 2**80}}, "64-bit integer"),
    ],
)
def test_add_is_all_or_nothing(make_store: Make, rng: np.random.Generator, bad: dict, reason: str) -> None:
    """600 nodes, one bad at position 550, in batches of 64: nothing of the call is written."""
    store = make_store(batch_size=64)
    before = [text_node(1000 + i, unit(rng.normal(size=DIM))) for i in range(3)]
    store.add(before)
    nodes = [text_node(i, unit(rng.normal(size=DIM))) for i in range(600)]
    vector = unit(rng.normal(size=DIM))
    if bad.get("embedding_nan"):
        vector[5] = float("nan")
    nodes[550] = text_node(550, vector, **bad.get("meta", {}))
    with pytest.raises(ValueError, match=f"node t550.*{reason}"):
        store.add(nodes)
    assert store.count() == 3
    assert ids(store.get_nodes()) == ids(before)


def test_non_finite_query_vector_is_a_clear_error(make_store: Make, rng: np.random.Generator) -> None:
    store = make_store()
    store.add([text_node(0, unit(rng.normal(size=DIM)))])
    vector = unit(rng.normal(size=DIM))
    vector[0] = float("inf")
    with pytest.raises(ValueError, match="query embedding has a non-finite value"):
        store.query(VectorStoreQuery(query_embedding=vector, similarity_top_k=3))


def test_modality_of_and_counts_by_modality(make_store: Make, rng: np.random.Generator,
                                            image_files: dict) -> None:
    from llama_index.core.schema import ImageDocument

    store = make_store()
    picture = ImageDocument(image_path=str(image_files["png"]))
    assert store.modality_of(picture) == "image"
    assert store.modality_of(ImageNode(image_path="/p.png", text="cap")) == "text+image"
    assert store.modality_of(TextNode(text="x")) == "text"
    store.add([text_node(0, unit(rng.normal(size=DIM))), text_node(1, unit(rng.normal(size=DIM))),
               image_node(2, unit(rng.normal(size=DIM))), image_node(3, unit(rng.normal(size=DIM)), text="cap")])
    assert store.count_by_modality() == {"text": 2, "image": 1, "text+image": 1, "audio": 0, "video": 0}
