"""Video and audio candidates in the reranker: a VLM reranker that reads video scores them (equal to
its own ``CrossEncoder.predict`` on every frame, sampled by its processor); candidates no scorer
reads keep their retrieval rank."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from llama_index.core.schema import Document, MediaResource, NodeWithScore, QueryBundle, TextNode

pytest.importorskip("av")
pytest.importorskip("soxr")

from llama_index_mm_st.errors import UnscoredNodesWarning  # noqa: E402
from llama_index_mm_st.media import load_video  # noqa: E402
from llama_index_mm_st.rerank import CrossEncoderScorer, MultimodalReranker  # noqa: E402


def _media(kind: str, path, node_id: str) -> Document:
    return Document(id_=node_id, text="", **{f"{kind}_resource": MediaResource(path=str(path))})


def _candidates(media_files, broken_media) -> list[NodeWithScore]:
    nodes = [
        TextNode(id_="text", text="a red square moves across a blue field"),
        _media("video", media_files["clip_mp4"], "mp4"),
        _media("audio", media_files["tone"], "tone"),
        _media("video", media_files["clip_webm"], "webm"),
        _media("video", broken_media["video_garbage"], "garbage"),
    ]
    return [NodeWithScore(node=node, score=1.0 - 0.1 * i) for i, node in enumerate(nodes)]


def test_a_vlm_reranker_scores_video_candidates(vlm: Any, media_files, broken_media) -> None:
    reranker = MultimodalReranker(CrossEncoderScorer(vlm, precision="fp32"), top_n=10, precision="fp32", on_error="skip")
    query = "a square moving"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = reranker.postprocess_nodes(_candidates(media_files, broken_media), QueryBundle(query))
    by_id = {item.node.node_id: item for item in out}
    assert by_id["mp4"].model_score is not None and by_id["webm"].model_score is not None
    assert by_id["tone"].model_score is None and by_id["tone"].retrieval_rank == 2  # no scorer reads audio
    assert "garbage" in by_id and by_id["garbage"].skipped_reason and "video_garbage" in by_id["garbage"].skipped_reason
    assert any(isinstance(w.message, UnscoredNodesWarning) for w in caught)
    # The scores are the model's own on the frames its processor samples (sentence-transformers 6.2 takes no
    # video metadata in a pair, so the frames are picked first and given as they are).
    choose = CrossEncoderScorer(vlm).frame_chooser
    assert choose is not None
    clips = [load_video(media_files[name], name, choose) for name in ("clip_mp4", "clip_webm")]
    theirs = vlm.predict([(query, c.frames) for c in clips], show_progress_bar=False,
                         processing_kwargs={"video": {"do_sample_frames": False}})
    ours = [by_id["mp4"].model_score, by_id["webm"].model_score]
    assert np.abs(np.array(ours) - np.array(theirs)).max() < 1e-5


def test_a_text_reranker_keeps_media_at_their_retrieval_rank(cross_encoder: Any, media_files, broken_media) -> None:
    reranker = MultimodalReranker(cross_encoder, top_n=10, precision="fp32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = reranker.postprocess_nodes(_candidates(media_files, broken_media)[:4], QueryBundle("red square"))
    ranks = {item.node.node_id: (position, item.retrieval_rank) for position, item in enumerate(out)}
    for node_id in ("mp4", "tone", "webm"):
        assert ranks[node_id][0] == ranks[node_id][1]  # kept in place
    assert out[0].node.node_id == "text" and out[0].model_score is not None
