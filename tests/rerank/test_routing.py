"""Query and node resolution and routing by modality."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Sequence

import pytest
from llama_index.core.schema import ImageDocument, ImageNode, QueryBundle, TextNode

from llama_index_mm_st.errors import ImageLoadError
from llama_index_mm_st.images import DecodeOptions
from llama_index_mm_st.inputs import Parts
from llama_index_mm_st.rerank.routing import find_route, node_side, query_side
from llama_index_mm_st.rerank.scorers.base import LoadedParts, PairModality


class FakeScorer:
    """Declares pairs only; routing never calls ``score``."""

    def __init__(self, name: str, pairs: set[PairModality]) -> None:
        self.name = name
        self.pairs = frozenset(pairs)
        self.decode_options = DecodeOptions()

    def score(self, query: LoadedParts, documents: Sequence[LoadedParts], batch_size: int) -> list[float]:
        raise AssertionError("routing must not score")


def test_query_side_reads_text_image_path_and_data_uri(image_files: dict[str, Path]) -> None:
    assert query_side(QueryBundle("a cat")).modality == "text"
    both = query_side(QueryBundle("a cat", image_path=str(image_files["png"])))
    assert both.modality == "text+image" and both.image is not None
    assert both.image.label.startswith("query image ")
    uri = "data:image/png;base64," + base64.b64encode(image_files["png"].read_bytes()).decode()
    assert query_side(QueryBundle("", custom_embedding_strs=["words", uri])).modality == "image"
    assert query_side(QueryBundle("words", custom_embedding_strs=["other words"])).modality == "text"
    with pytest.raises(ValueError, match="neither text"):
        query_side(QueryBundle("  "))


def test_node_side_by_node_type(image_files: dict[str, Path]) -> None:
    assert node_side(TextNode(text="x")).modality == "text"
    assert node_side(ImageNode(image_path=str(image_files["png"]))).modality == "image"
    assert node_side(ImageNode(image_path=str(image_files["png"]), text="cap")).modality == "text+image"
    assert node_side(ImageNode(text="only words")).modality == "text"
    empty = ImageNode()
    with pytest.raises(ImageLoadError, match=f"node {empty.node_id}"):
        node_side(empty)


def test_an_image_document_is_an_image_to_the_reranker(image_files: dict[str, Path]) -> None:
    """The embedding and the store read an ImageDocument as an image; so does routing (it once was text)."""
    document = ImageDocument(image_path=str(image_files["png"]))
    side = node_side(document)
    assert side.modality == "image" and side.image is not None and side.image.label == str(image_files["png"])
    captioned = ImageDocument(image_path=str(image_files["png"]), text="a red square")
    assert node_side(captioned).modality == "text+image"
    text_ce = FakeScorer("ce", {("text", "text")})
    itm = FakeScorer("itm", {("text", "image")})
    route = find_route(0, Parts(text="red"), side, [text_ce, itm])
    assert route is not None and route.scorer == 1 and route.document.modality == "image"


def test_route_prefers_the_richest_view_then_the_first_scorer() -> None:
    text_ce = FakeScorer("ce", {("text", "text")})
    itm = FakeScorer("itm", {("text", "image"), ("image", "text")})
    vlm = FakeScorer("vlm", {(q, d) for q in ("text", "image", "text+image") for d in ("text", "image", "text+image")})
    query = Parts(text="q")
    captioned = Parts(text="cap", image=object())  # type: ignore[arg-type]

    route = find_route(0, query, captioned, [text_ce, itm, vlm])
    assert route is not None and route.scorer == 2 and route.document.modality == "text+image"
    route = find_route(0, query, captioned, [text_ce, itm])
    assert route is not None and route.scorer == 1 and route.document.modality == "image"
    route = find_route(0, query, captioned, [text_ce])
    assert route is not None and route.scorer == 0 and route.document == Parts(text="cap")
    assert find_route(0, query, Parts(image=object()), [text_ce]) is None  # type: ignore[arg-type]
    route = find_route(3, Parts(text="q"), Parts(text="d"), [vlm, text_ce])
    assert route is not None and route.scorer == 0 and route.position == 3
