"""The plan a query and a node turn into, checked without any I/O."""

from __future__ import annotations

import json

import pytest
from llama_index.core.schema import ImageNode, NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters, VectorStoreQuery
from qdrant_client import models

from llama_index_mm_st.store import payload, plan as P
from llama_index_mm_st.types import SparseVector

OPTS = P.QueryOptions(dense=("text", "image"))


def fake_sparse(text: str) -> SparseVector:
    words = text.split()
    return SparseVector(list(range(len(words))), [1.0] * len(words))


def test_default_query_is_one_branch_per_dense_vector_fused_by_rrf() -> None:
    plan = P.plan_query(VectorStoreQuery(query_embedding=[1.0, 0.0], similarity_top_k=7, query_str="hi"), OPTS, fake_sparse)
    assert [(b.using, b.limit) for b in plan.branches] == [("text", 7), ("image", 7)]
    assert plan.fused and plan.limit == 7 and plan.rrf_k == 60
    # the text list ranks every node with a text vector; the image list only nodes without one
    assert plan.branches[0].restriction is None
    assert plan.branches[1].restriction.must_not[0].has_vector == "text"
    assert plan.weights == [1.0, P.CROSS_MODAL_TIE_BREAK]  # the query's own modality wins ties


def test_image_queries_swap_the_roles_of_the_dense_lists() -> None:
    opts = P.QueryOptions(dense=("text", "image"), query_modality="image")
    plan = P.plan_query(VectorStoreQuery(query_embedding=[1.0, 0.0], similarity_top_k=3), opts, fake_sparse)
    assert plan.branches[0].restriction.must_not[0].has_vector == "image" and plan.branches[1].restriction is None
    assert plan.weights == [P.CROSS_MODAL_TIE_BREAK, 1.0]


def test_hybrid_adds_bm25_and_honours_the_three_top_ks() -> None:
    q = VectorStoreQuery(
        query_embedding=[1.0, 0.0], query_str="red shoes", mode="hybrid", similarity_top_k=5, sparse_top_k=20, hybrid_top_k=3
    )
    plan = P.plan_query(q, OPTS, fake_sparse)
    assert [(b.using, b.limit) for b in plan.branches] == [("text", 5), ("image", 5), ("bm25", 20)]
    assert plan.limit == 3
    assert plan.branches[2].vector == SparseVector([0, 1], [1.0, 1.0])


def test_store_level_hybrid_applies_to_default_mode() -> None:
    opts = P.QueryOptions(dense=("text", "image"), hybrid=True, rrf_k=10, weights={"bm25": 2.0})
    plan = P.plan_query(VectorStoreQuery(query_embedding=[1.0], query_str="x"), opts, fake_sparse)
    assert [b.using for b in plan.branches] == ["text", "image", "bm25"]
    assert plan.rrf_k == 10 and plan.weights == [1.0, P.CROSS_MODAL_TIE_BREAK, 2.0]


def test_alpha_sets_dense_and_sparse_weights() -> None:
    q = VectorStoreQuery(query_embedding=[1.0], query_str="x", mode="hybrid", alpha=0.25)
    assert P.plan_query(q, OPTS, fake_sparse).weights == [0.25, 0.25, 0.75]


def test_sparse_mode_is_bm25_alone_and_needs_text() -> None:
    plan = P.plan_query(VectorStoreQuery(query_str="x y", mode="sparse", similarity_top_k=4), OPTS, fake_sparse)
    assert [b.using for b in plan.branches] == ["bm25"] and not plan.fused and plan.limit == 4
    with pytest.raises(ValueError, match="needs query_str"):
        P.plan_query(VectorStoreQuery(mode="text_search"), OPTS, fake_sparse)
    with pytest.raises(ValueError, match="not supported"):
        P.plan_query(VectorStoreQuery(query_embedding=[1.0], mode="svm"), OPTS, fake_sparse)


def test_filter_combines_metadata_doc_ids_node_ids_and_modality() -> None:
    q = VectorStoreQuery(
        query_embedding=[1.0],
        doc_ids=["d1"],
        node_ids=["n1"],
        filters=MetadataFilters(filters=[MetadataFilter(key="lang", value="en")]),
    )
    opts = P.QueryOptions(dense=("text", "image"), modality="image")
    must = P.plan_query(q, opts, fake_sparse).filter.must
    assert models.FieldCondition(key="ref_doc_id", match=models.MatchAny(any=["d1"])) in must
    assert models.HasIdCondition(has_id=[P.point_id("n1")]) in must
    assert models.FieldCondition(key="modality", match=models.MatchAny(any=["image", "text+image"])) in must
    assert len(must) == 4


def test_point_ids_keep_uuids_and_map_other_ids_stably() -> None:
    u = "6f1c3f52-8a7e-4b4e-9a55-2f0d4f6a3c11"
    assert P.point_id(u) == u
    assert P.point_id(u.upper()) == u  # the same UUID, in Qdrant's canonical form
    assert P.point_id("doc-1#0") == P.point_id("doc-1#0") != P.point_id("doc-1#1")


def test_captioned_image_node_gets_both_vectors_and_no_inline_pixels() -> None:
    node = ImageNode(
        image="aGVsbG8=", image_path="/pics/cat.png", text="a cat", embedding=[1.0, 0.0], text_embedding=[0.0, 1.0],
        metadata={"alt_text": "tabby on a sofa"},
    )
    node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id="doc-9")
    point = payload.node_to_point(node, 2, fake_sparse, ["alt_text"])
    assert point.dense == {"image": [1.0, 0.0], "text": [0.0, 1.0]}
    assert point.payload["modality"] == "text+image" and point.payload["ref_doc_id"] == "doc-9"
    content = json.loads(point.payload["_node_content"])
    assert content.get("image") is None and content["image_path"] == "/pics/cat.png"
    assert "embedding" not in content and "text_embedding" not in content
    assert len(point.sparse.indices) == len("a cat tabby on a sofa".split())  # caption-like metadata indexed
    assert payload.payload_to_node(point.payload).image_path == "/pics/cat.png"
    # Exactly the metadata plus the store's keys: no doc_id/document_id copies (each string costs an upsert).
    assert set(point.payload) == {"alt_text", "_node_content", "_node_type", "modality", "ref_doc_id"}


def test_inline_image_is_kept_when_it_is_all_there_is() -> None:
    point = payload.node_to_point(ImageNode(image="aGVsbG8=", embedding=[1.0]), 1, fake_sparse, [])
    assert json.loads(point.payload["_node_content"])["image"] == "aGVsbG8="
    assert point.payload["modality"] == "image" and point.sparse is None


def test_bad_nodes_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="node t1 has no embedding"):
        payload.node_to_point(TextNode(id_="t1", text="x"), 2, fake_sparse, [])
    with pytest.raises(ValueError, match="node t2: text vector has 3 dimensions, the store has 2"):
        payload.node_to_point(TextNode(id_="t2", text="x", embedding=[1.0, 2.0, 3.0]), 2, fake_sparse, [])
    with pytest.raises(ValueError, match=r"node t3: metadata keys \['modality'\] are reserved"):
        payload.node_to_point(TextNode(id_="t3", text="x", embedding=[1.0], metadata={"modality": "x"}), 1, fake_sparse, [])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_vectors_are_refused_by_name(bad: float) -> None:
    with pytest.raises(ValueError, match=r"node t4: text vector has a non-finite value .* at position 1"):
        payload.node_to_point(TextNode(id_="t4", text="x", embedding=[0.5, bad, 0.5]), 3, fake_sparse, [])
    image = ImageNode(id_="i4", image_path="/a.png", text="cap", embedding=[1.0, 0.0], text_embedding=[bad, 0.0])
    with pytest.raises(ValueError, match=r"node i4: text vector has a non-finite value .* at position 0"):
        payload.node_to_point(image, 2, fake_sparse, [])
    with pytest.raises(ValueError, match="the query embedding has a non-finite value"):
        P.plan_query(VectorStoreQuery(query_embedding=[bad, 1.0]), OPTS, fake_sparse)


def test_huge_finite_vectors_are_not_mistaken_for_non_finite() -> None:
    point = payload.node_to_point(TextNode(id_="big", text="x", embedding=[1e308, 1e308]), 2, fake_sparse, [])
    assert point.dense["text"] == [1e308, 1e308]


class _NotJson:
    pass


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("caf\udce9", "not valid Unicode"),
        ({"nested": ["ok", "bad\ud800"]}, r"metadata 'x'\.nested\[1\] is not valid Unicode"),
        (float("nan"), "not a finite number"),
        (2**70, "does not fit a 64-bit integer"),
        (_NotJson(), "not a JSON value"),
        ({1: "a"}, "key 1 that is not text"),
        (b"bytes", "not a JSON value"),
    ],
)
def test_metadata_a_payload_cannot_hold_is_refused_by_name(value: object, reason: str) -> None:
    node = TextNode(id_="m1", text="x", embedding=[1.0], metadata={"x": value})
    with pytest.raises(ValueError, match=f"node m1.*{reason}"):
        payload.node_to_point(node, 1, fake_sparse, [])


def test_json_metadata_values_pass() -> None:
    metadata = {"s": "café", "i": -3, "f": 2.5, "b": True, "n": None, "l": [1, "a"], "d": {"k": [1.5]}}
    point = payload.node_to_point(TextNode(id_="m2", text="x", embedding=[1.0], metadata=metadata), 1, fake_sparse, [])
    assert {key: point.payload[key] for key in metadata} == metadata


def test_search_settings_go_to_dense_branches_only() -> None:
    from llama_index.core.vector_stores.types import VectorStoreQuery

    from llama_index_mm_st.store.plan import QueryOptions, SearchSettings, plan_query
    from llama_index_mm_st.types import SparseVector

    search = SearchSettings(hnsw_ef=128, quantized=True, rescore=True, oversampling=3.0)
    opts = QueryOptions(dense=("text", "image"), search=search)
    plan = plan_query(VectorStoreQuery(query_embedding=[1.0, 0.0], query_str="w", mode="hybrid"), opts,
                      lambda text: SparseVector([1], [1.0]))
    assert [(b.using, b.search) for b in plan.branches] == [("text", search), ("image", search), ("bm25", None)]


def test_a_numpy_query_vector_becomes_python_floats() -> None:
    import numpy as np
    from llama_index.core.vector_stores.types import VectorStoreQuery

    from llama_index_mm_st.store.plan import QueryOptions, plan_query

    plan = plan_query(VectorStoreQuery(query_embedding=np.array([0.5, 0.25], dtype=np.float32)),
                      QueryOptions(dense=("text",)), lambda text: None)  # type: ignore[arg-type, return-value]
    assert plan.branches[0].vector == [0.5, 0.25] and type(plan.branches[0].vector[0]) is float
