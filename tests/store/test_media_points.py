"""Audio and video points on both backends: their own named vectors, the modality tag, filters, the
text query that searches every branch, and stores made before audio and video."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest
from llama_index.core.schema import Document, ImageNode, MediaResource, TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode

from llama_index_mm_st.inputs import read_node
from llama_index_mm_st.store import MultimodalQdrantStore
from tests.store.conftest import DIM, unit

Make = Callable[..., MultimodalQdrantStore]


def media_doc(kind: str, i: int, vec: list[float], words: str = "") -> Document:
    resource = MediaResource(path=f"/media/{kind}{i}.{'wav' if kind == 'audio' else 'mp4'}")
    return Document(id_=f"{kind}{i}", text=words, embedding=vec, metadata={"n": i},
                    **{f"{kind}_resource": resource})


def corpus(rng: np.random.Generator) -> tuple[list, dict[str, list[float]]]:
    vectors = {name: unit(rng.normal(size=DIM)) for name in ("t0", "i0", "audio0", "video0", "audio1")}
    nodes = [
        TextNode(id_="t0", text="a page about harbours", embedding=vectors["t0"]),
        ImageNode(id_="i0", image_path="/pics/0.png", embedding=vectors["i0"]),
        media_doc("audio", 0, vectors["audio0"], "the foghorn sounds at dawn"),
        media_doc("video", 0, vectors["video0"]),
        media_doc("audio", 1, vectors["audio1"]),
    ]
    return nodes, vectors


def test_media_nodes_get_their_own_vectors_and_tags(make_store: Make, rng: np.random.Generator) -> None:
    store = make_store()
    nodes, vectors = corpus(rng)
    store.add(nodes)
    assert store.schema.dense == ("text", "image", "audio", "video")
    assert store.count_by_modality()["audio"] == 2 and store.count_by_modality()["video"] == 1
    back = store.get_nodes(["audio0", "video0"])
    kinds = {node.node_id: read_node(node).modality for node in back}
    assert kinds == {"audio0": "audio", "video0": "video"}  # the media reference survives the round trip
    assert read_node(back[0]).media.label.startswith("/media/")
    # A query by the audio vector finds that node first, through the audio branch.
    hits = store.query(VectorStoreQuery(query_embedding=vectors["audio1"], similarity_top_k=3), query_modality="audio")
    assert hits.ids[0] == "audio1"


def test_a_text_query_searches_every_branch_and_bm25_finds_transcripts(make_store: Make,
                                                                        rng: np.random.Generator) -> None:
    store = make_store()
    nodes, vectors = corpus(rng)
    store.add(nodes)
    query = VectorStoreQuery(query_embedding=vectors["video0"], similarity_top_k=5)
    assert set(store.query(query).ids) == {"t0", "i0", "audio0", "audio1", "video0"}  # every branch contributes
    assert store.query(query, rrf_weights={"video": 2.0}).ids[0] == "video0"  # the video branch ranks it first
    words = store.query(VectorStoreQuery(query_str="foghorn", similarity_top_k=3, mode=VectorStoreQueryMode.SPARSE))
    assert words.ids == ["audio0"]


@pytest.mark.parametrize("modality,expected", [("audio", {"audio0", "audio1"}), ("video", {"video0"})])
def test_modality_filters_work_for_media(make_store: Make, rng: np.random.Generator, modality, expected) -> None:
    store = make_store()
    nodes, vectors = corpus(rng)
    store.add(nodes)
    found = store.query(VectorStoreQuery(query_embedding=vectors["t0"], similarity_top_k=10), modality=modality)
    assert set(found.ids) == expected


def test_a_store_made_before_media_keeps_opening(make_store: Make, rng: np.random.Generator, monkeypatch) -> None:
    from llama_index_mm_st.store import wanted

    monkeypatch.setattr(wanted, "DENSE_VECTOR_NAMES", ("text", "image"))  # what a new collection got then
    old = make_store()
    old.add([TextNode(id_="t0", text="words", embedding=unit(rng.normal(size=DIM)))])
    old.close()
    monkeypatch.undo()
    reopened = make_store()
    assert reopened.schema.dense == ("text", "image") and reopened.count() == 1
    assert reopened.query(VectorStoreQuery(query_embedding=unit(rng.normal(size=DIM)), similarity_top_k=1)).ids == ["t0"]
    with pytest.raises(ValueError, match="has no 'audio' vector.*new store"):
        reopened.add([media_doc("audio", 5, unit(rng.normal(size=DIM)))])
    assert reopened.count() == 1


def test_inline_media_is_refused_by_name(make_store: Make, rng: np.random.Generator) -> None:
    store = make_store()
    inline = Document(id_="x", text="", embedding=unit(rng.normal(size=DIM)),
                      audio_resource=MediaResource(data=b"UklGRg=="))
    with pytest.raises(ValueError, match="node x: its audio is inline data"):
        store.add([inline])
