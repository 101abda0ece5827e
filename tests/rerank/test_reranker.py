"""MultimodalReranker behaviour: ordering, top_n, mixed lists, bad inputs, queries, async, API."""

from __future__ import annotations

import base64
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from llama_index.core.schema import ImageNode, NodeWithScore, QueryBundle, TextNode
from PIL import Image

from llama_index_mm_st.errors import (
    ImageLoadError,
    SkippedItemsWarning,
    UnscoredNodesWarning,
    UnsupportedModalityError,
)
from llama_index_mm_st.rerank import BlipITMScorer, CrossEncoderScorer, MultimodalReranker, RerankedNode
from llama_index_mm_st.rerank.fusion import rank_by_score, score_scale
from llama_index_mm_st.relevance import sigmoid
from llama_index_mm_st.runtime import resolve_precision

from .nodes import TEXTS, image_node, text_nodes


@pytest.fixture(scope="module")
def text_reranker(cross_encoder: Any) -> MultimodalReranker:
    return MultimodalReranker(cross_encoder, top_n=3, precision="fp32")


@pytest.fixture(scope="module")
def mixed_reranker(cross_encoder: Any, blip: tuple[Any, Any]) -> MultimodalReranker:
    return MultimodalReranker([cross_encoder, BlipITMScorer(*blip, precision="fp32")], top_n=20, precision="fp32")


def _mixed_nodes(image_files: dict[str, Path]) -> list[NodeWithScore]:
    return text_nodes(TEXTS[:4]) + [image_node(image_files[n], score=0.4) for n in ("png", "jpeg", "webp")]


def test_top_n_follows_scores_and_keeps_retrieval_scores(text_reranker: MultimodalReranker, cross_encoder: Any) -> None:
    query = "a cat photo"
    nodes = text_nodes()
    result = text_reranker.postprocess_nodes(nodes, query_str=query)
    expected = cross_encoder.predict([(query, text) for text in TEXTS])
    assert [item.retrieval_rank for item in result] == list(np.argsort(-expected, kind="stable")[:3])
    assert [item.score for item in result] == sorted((item.score for item in result), reverse=True)
    for item in result:
        assert isinstance(item, RerankedNode)
        assert item.node is nodes[item.retrieval_rank].node  # the caller's node object, not a copy
        assert item.retrieval_score == pytest.approx(0.9 - 0.01 * item.retrieval_rank)
        assert item.model_score == item.score
        assert item.scorer == text_reranker.scorers[0].name


def test_callers_nodes_are_not_modified(text_reranker: MultimodalReranker) -> None:
    nodes = text_nodes()
    before = [(item.score, dict(item.node.metadata), item.node.text) for item in nodes]
    text_reranker.postprocess_nodes(nodes, query_str="a cat photo")
    assert [(item.score, dict(item.node.metadata), item.node.text) for item in nodes] == before


def test_empty_list_and_missing_query(text_reranker: MultimodalReranker) -> None:
    assert text_reranker.postprocess_nodes([], query_str="anything") == []
    with pytest.raises(ValueError, match="needs a query"):
        text_reranker.postprocess_nodes(text_nodes())
    with pytest.raises(ValueError, match="neither text"):
        text_reranker.postprocess_nodes(text_nodes(), QueryBundle(""))


def test_batch_size_and_input_order_do_not_change_scores(cross_encoder: Any) -> None:
    nodes = text_nodes()
    one = MultimodalReranker(cross_encoder, top_n=10, precision="fp32", batch_size=1)
    many = MultimodalReranker(cross_encoder, top_n=10, precision="fp32", batch_size=64)
    a = {item.node.node_id: item.score for item in one.postprocess_nodes(nodes, query_str="a cat")}
    b = {item.node.node_id: item.score for item in many.postprocess_nodes(nodes[::-1], query_str="a cat")}
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], abs=1e-5)


def test_mixed_list_is_fused_by_the_relevance_of_each_models_scores(
    mixed_reranker: MultimodalReranker, cross_encoder: Any, blip: tuple[Any, Any], image_files: dict[str, Path]
) -> None:
    """Two scorers on different scales (a cross-encoder's sigmoid, BLIP's ITM probability) are fused by
    relevance: both are probabilities, so the order is by their values, computed here by hand."""
    query = "a cat photo"
    nodes = _mixed_nodes(image_files)
    result = mixed_reranker.postprocess_nodes(nodes, query_str=query)
    assert len(result) == len(nodes)
    by_rank = {item.retrieval_rank: item for item in result}
    assert {by_rank[p].scorer for p in range(4)} == {mixed_reranker.scorers[0].name}
    assert {by_rank[p].scorer for p in range(4, 7)} == {mixed_reranker.scorers[1].name}
    text_scores = dict(enumerate(cross_encoder.predict([(query, t) for t in TEXTS[:4]]).tolist()))
    image_scores = {4 + i: by_rank[4 + i].model_score for i in range(3)}  # BLIP parity is tested elsewhere
    for position, score in text_scores.items():
        assert by_rank[position].model_score == pytest.approx(score, abs=1e-5)
    hand = {**text_scores, **image_scores}  # sigmoid outputs and ITM probabilities: relevances as they are
    assert [item.retrieval_rank for item in result] == rank_by_score(hand)
    assert [item.score for item in result] == pytest.approx([hand[p] for p in rank_by_score(hand)], abs=1e-5)


def test_a_logit_scorer_is_fused_through_the_sigmoid(cross_encoder: Any, blip: tuple[Any, Any],
                                                      image_files: dict[str, Path]) -> None:
    """A cross-encoder without an activation gives logits; its relevance is their sigmoid, and it is
    fused with BLIP's probabilities on that scale (hand computation)."""
    import copy

    logits_model = copy.copy(cross_encoder)
    logits_model.activation_fn = torch.nn.Identity()
    reranker = MultimodalReranker([logits_model, BlipITMScorer(*blip, precision="fp32")], top_n=20, precision="fp32")
    assert [score_scale(s) for s in reranker.scorers] == ["logit", "probability"]
    query = "a cat photo"
    result = reranker.postprocess_nodes(_mixed_nodes(image_files), query_str=query)
    raw = {item.retrieval_rank: item.model_score for item in result}
    hand = {p: float(sigmoid(raw[p])) if p < 4 else raw[p] for p in raw}
    assert [item.retrieval_rank for item in result] == rank_by_score(hand)
    assert [item.score for item in result] == pytest.approx([hand[p] for p in rank_by_score(hand)], abs=1e-6)
    assert all(0.0 <= item.score <= 1.0 for item in result)


def test_text_and_image_node_is_read_whole_by_a_vlm_and_as_image_by_blip(
    vlm: Any, blip: tuple[Any, Any], image_files: dict[str, Path]
) -> None:
    captioned = [image_node(image_files["png"], text="a cat photo")]
    vlm_result = MultimodalReranker(vlm, precision="fp32").postprocess_nodes(captioned, query_str="cat")
    picture = Image.open(image_files["png"]).convert("RGB")
    expected = vlm.predict([("cat", {"text": "a cat photo", "image": picture})])
    blip_result = MultimodalReranker(BlipITMScorer(*blip, precision="fp32")).postprocess_nodes(captioned, query_str="cat")
    plain = MultimodalReranker(BlipITMScorer(*blip, precision="fp32")).postprocess_nodes(
        [image_node(image_files["png"])], query_str="cat"
    )
    assert vlm_result[0].score == pytest.approx(float(expected[0]), abs=1e-4)
    assert blip_result[0].score == pytest.approx(plain[0].score, abs=1e-6)


def test_unsupported_node_raises_naming_it_on_request(cross_encoder: Any, image_files: dict[str, Path]) -> None:
    reranker = MultimodalReranker(cross_encoder, precision="fp32", on_unsupported="raise")
    nodes = text_nodes(TEXTS[:2]) + [image_node(image_files["png"])]
    with pytest.raises(UnsupportedModalityError, match=f"#2 node {nodes[2].node.node_id} \\(image\\)"):
        reranker.postprocess_nodes(nodes, query_str="a cat")


def test_unsupported_node_keeps_its_retrieval_rank_by_default(cross_encoder: Any, image_files: dict[str, Path]) -> None:
    reranker = MultimodalReranker(cross_encoder, top_n=10, precision="fp32")
    assert reranker.on_unsupported == "keep"
    nodes = text_nodes(TEXTS[:4])
    nodes.insert(1, image_node(image_files["png"]))
    with pytest.warns(UnscoredNodesWarning, match="image nodes are kept at their retrieval rank.*BLIP"):
        result = reranker.postprocess_nodes(nodes, query_str="a cat photo")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnscoredNodesWarning)  # once per reranker, not once per query
        again = reranker.postprocess_nodes(nodes, query_str="a dog")
    assert again[1].node is nodes[1].node
    assert result[1].node is nodes[1].node
    # It keeps the score it came with (never None: LlamaIndex code sorts and cuts on scores).
    assert result[1].score == nodes[1].score and result[1].scorer is None and result[1].skipped_reason
    scored = [item for item in result if item.scorer is not None]
    assert len(scored) == 4
    assert [item.score for item in scored] == sorted((item.score for item in scored), reverse=True)


@pytest.mark.parametrize("broken", ["truncated", "zero_byte", "not_image", "missing"])
def test_unloadable_image_is_named_in_the_error(
    mixed_reranker: MultimodalReranker, image_files: dict[str, Path], broken_images: dict[str, Path], broken: str
) -> None:
    nodes = _mixed_nodes(image_files) + [image_node(broken_images[broken])]
    with pytest.raises(ImageLoadError) as info:
        mixed_reranker.postprocess_nodes(nodes, query_str="a cat photo")
    assert str(broken_images[broken]) in str(info.value)


def test_skip_mode_keeps_unloadable_nodes_at_the_bottom_and_reports_them(
    cross_encoder: Any, blip: tuple[Any, Any], image_files: dict[str, Path], broken_images: dict[str, Path]
) -> None:
    reranker = MultimodalReranker(
        [cross_encoder, BlipITMScorer(*blip, precision="fp32")], top_n=20, precision="fp32", on_error="skip"
    )
    bad_base64 = NodeWithScore(node=ImageNode(image="@@not base64@@"), score=0.1)
    nodes = [image_node(broken_images["missing"], score=0.99)] + _mixed_nodes(image_files) + [bad_base64]
    with pytest.warns(SkippedItemsWarning) as record:
        result = reranker.postprocess_nodes(nodes, query_str="a cat photo")
    assert len(result) == len(nodes)
    assert [item.retrieval_rank for item in result[-2:]] == [0, len(nodes) - 1]
    assert all(item.score == 0.0 and item.scorer is None and item.skipped_reason for item in result[-2:])
    assert all(item.scorer is not None for item in result[:-2])
    failures = record[0].message.failures
    assert [failure.position for failure in failures] == [0, len(nodes) - 1]
    assert str(broken_images["missing"]) in str(record[0].message)


def test_query_image_from_image_path_or_data_uri(blip: tuple[Any, Any], image_files: dict[str, Path]) -> None:
    reranker = MultimodalReranker(BlipITMScorer(*blip, precision="fp32"), top_n=10)
    by_path = reranker.postprocess_nodes(text_nodes(), QueryBundle("", image_path=str(image_files["png"])))
    uri = "data:image/png;base64," + base64.b64encode(image_files["png"].read_bytes()).decode()
    by_uri = reranker.postprocess_nodes(text_nodes(), QueryBundle("", custom_embedding_strs=["a caption", uri]))
    other = reranker.postprocess_nodes(text_nodes(), QueryBundle("", image_path=str(image_files["jpeg"])))
    assert [(i.retrieval_rank, i.score) for i in by_path] == [(i.retrieval_rank, i.score) for i in by_uri]
    assert [i.score for i in by_path] != pytest.approx([i.score for i in other])


def test_unloadable_query_image_raises_naming_the_query(blip: tuple[Any, Any], broken_images: dict[str, Path]) -> None:
    reranker = MultimodalReranker(BlipITMScorer(*blip, precision="fp32"), on_error="skip")
    with pytest.raises(ImageLoadError, match="query image .*missing.jpg"):
        reranker.postprocess_nodes(text_nodes(), QueryBundle("", image_path=str(broken_images["missing"])))


async def test_async_matches_sync(text_reranker: MultimodalReranker) -> None:
    nodes = text_nodes()
    sync = text_reranker.postprocess_nodes(nodes, query_str="a cat photo")
    result = await text_reranker.apostprocess_nodes(nodes, query_str="a cat photo")
    assert [(i.retrieval_rank, i.score) for i in result] == [(i.retrieval_rank, i.score) for i in sync]


def test_auto_precision_keeps_the_fp32_ranking(cross_encoder: Any) -> None:
    texts = [f"{a} {b} {c}" for a in ("cat", "dog", "car") for b in ("photo", "chart", "river") for c in ("red", "blue")]
    nodes = text_nodes(texts)
    auto = MultimodalReranker(cross_encoder, top_n=len(texts), precision="auto")
    exact = MultimodalReranker(cross_encoder, top_n=len(texts), precision="fp32")
    a = {i.retrieval_rank: i.score for i in auto.postprocess_nodes(nodes, query_str="a cat photo")}
    b = {i.retrieval_rank: i.score for i in exact.postprocess_nodes(nodes, query_str="a cat photo")}
    from scipy.stats import spearmanr

    assert auto.scorers[0].precision == resolve_precision("auto", "cpu")
    if auto.scorers[0].precision != "fp32":
        assert max(abs(a[p] - b[p]) for p in a) > 0  # the low precision really ran
    assert spearmanr([a[p] for p in range(len(texts))], [b[p] for p in range(len(texts))]).statistic > 0.95
    assert next(cross_encoder.parameters()).dtype == torch.float32  # the caller's model is not converted


def test_scorer_is_chosen_from_the_checkpoint(
    tiny_bert_cross_encoder_dir: Path, tiny_blip_itm_dir: Path, tiny_qwen_vl_reranker_dir: Path
) -> None:
    pytest.importorskip("torchvision")
    text, itm, vl = (
        MultimodalReranker(str(path)).scorers[0]
        for path in (tiny_bert_cross_encoder_dir, tiny_blip_itm_dir, tiny_qwen_vl_reranker_dir)
    )
    assert isinstance(text, CrossEncoderScorer) and text.pairs == {("text", "text")}
    assert isinstance(itm, BlipITMScorer) and itm.pairs == {("text", "image"), ("image", "text")}
    assert isinstance(vl, CrossEncoderScorer) and ("image", "text+image") in vl.pairs


def test_invalid_arguments_are_rejected(cross_encoder: Any) -> None:
    with pytest.raises(TypeError, match="accepted"):
        MultimodalReranker(object())
    with pytest.raises(ValueError, match="on_error"):
        MultimodalReranker(cross_encoder, on_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_unsupported"):
        MultimodalReranker(cross_encoder, on_unsupported="drop")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="precision"):
        MultimodalReranker(cross_encoder, precision="int4")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one"):
        MultimodalReranker([])


def test_text_node_subclasses_and_image_nodes_with_only_text_are_read_as_text(text_reranker: MultimodalReranker) -> None:
    nodes = [NodeWithScore(node=TextNode(text="a cat photo")), NodeWithScore(node=ImageNode(text="a cat photo"))]
    result = text_reranker.postprocess_nodes(nodes, query_str="cat")
    assert result[0].score == pytest.approx(result[1].score, abs=1e-6)


def test_a_model_loaded_by_name_stores_low_precision_weights_but_scores_in_fp32(
    cross_encoder: Any, tiny_bert_cross_encoder_dir: Path
) -> None:
    """Loaded by name in bf16: linear weights are stored rounded (autocast would round them anyway),
    the score head stays fp32 so scores aren't bf16 steps; a ready object is never converted."""
    # bf16 asked for: auto may measure fp32 (or ONNX Runtime) fastest for a tiny model; bf16 runs on any CPU.
    by_name = MultimodalReranker(str(tiny_bert_cross_encoder_dir), top_n=10, precision="bf16", backend="torch")
    assert by_name.scorers[0].precision == "bf16"
    model = by_name.scorers[0].model
    linears = {name: m.weight.dtype for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert linears.pop("0.model.classifier") == torch.float32
    assert set(linears.values()) == {torch.bfloat16}
    nodes = text_nodes()
    scores = {i.retrieval_rank: i.score for i in by_name.postprocess_nodes(nodes, query_str="a cat photo")}
    exact = cross_encoder.predict([("a cat photo", text) for text in TEXTS])
    assert max(abs(scores[p] - exact[p]) for p in scores) < 0.02
    assert len(set(scores.values())) == len(TEXTS)
    assert {p.dtype for p in cross_encoder.parameters()} == {torch.float32}


def test_public_exports() -> None:
    import llama_index_mm_st.rerank as rerank

    assert sorted(rerank.__all__) == sorted([
        "BlipITMScorer", "LoadedParts", "CrossEncoderScorer", "DEFAULT_RRF_K", "LoadOptions",
        "MultimodalReranker", "RerankedNode", "SCORER_BY_ARCHITECTURE", "Scorer",
    ])
    assert MultimodalReranker.class_name() == "MultimodalReranker"


def test_instruction_goes_only_to_models_with_a_chat_template(cross_encoder: Any, vlm: Any) -> None:
    with pytest.raises(ValueError, match="none of the models takes one"):
        MultimodalReranker(cross_encoder, instruction="Find pets.")
    with pytest.raises(ValueError, match="chat template"):
        CrossEncoderScorer(cross_encoder, instruction="Find pets.")
    both = MultimodalReranker([cross_encoder, vlm], instruction="Find pets.")
    assert [getattr(s, "instruction") for s in both.scorers] == [None, "Find pets."]


def test_url_images_are_fetched_only_when_allowed(blip: tuple[Any, Any]) -> None:
    """The reranker shares the URL policy: off by default, the URL node is skipped and named, not fetched."""
    url = "http://127.0.0.1:9/never-contacted.png"
    reranker = MultimodalReranker(BlipITMScorer(*blip, precision="fp32"), top_n=5, on_error="skip")
    assert reranker.allow_urls is False and reranker.allow_private_urls is False
    with pytest.warns(SkippedItemsWarning) as record:
        (result,) = reranker.postprocess_nodes([NodeWithScore(node=ImageNode(image_url=url), score=0.5)], query_str="cat")
    assert result.score == 0.0 and result.scorer is None and "URL fetching is off" in result.skipped_reason
    assert url in str(record[0].message)
    allowed = MultimodalReranker(BlipITMScorer(*blip, precision="fp32"), on_error="skip", allow_urls=True)
    with pytest.warns(SkippedItemsWarning) as record:
        allowed.postprocess_nodes([NodeWithScore(node=ImageNode(image_url=url), score=0.5)], query_str="cat")
    assert "private address" in str(record[0].message)


def test_unscored_nodes_merge_by_their_relevance_over_a_relevance_store(cross_encoder: Any,
                                                                         image_files: dict[str, Path]) -> None:
    """Over a store that fuses by relevance the incoming scores are relevances too: an image no scorer
    reads is ordered among the reranked texts by its own, and every score sorts (LlamaIndex sorts them)."""
    reranker = MultimodalReranker(cross_encoder, top_n=10, precision="fp32", unscored_order="relevance")
    nodes = text_nodes(TEXTS[:4]) + [image_node(image_files["png"], score=0.999)]
    with pytest.warns(UnscoredNodesWarning):
        result = reranker.postprocess_nodes(nodes, query_str="a cat photo")
    assert result[0].node is nodes[4].node and result[0].score == 0.999
    assert [item.score for item in result] == sorted((item.score for item in result), reverse=True)
    assert sorted(result, key=lambda item: item.score)  # no None anywhere
    with pytest.raises(ValueError, match="unscored_order"):
        MultimodalReranker(cross_encoder, unscored_order="bottom")


def test_a_fitted_calibration_maps_a_scorers_relevance(cross_encoder: Any) -> None:
    name = MultimodalReranker(cross_encoder, precision="fp32").scorers[0].name
    plain = MultimodalReranker(cross_encoder, top_n=10, precision="fp32")
    fitted = MultimodalReranker(cross_encoder, top_n=10, precision="fp32",
                                calibration={name: {"text": {"weights": [0.0], "bias": 1.0}}})
    before = plain.postprocess_nodes(text_nodes(), query_str="a cat")
    after = fitted.postprocess_nodes(text_nodes(), query_str="a cat")
    assert [item.score for item in after] == pytest.approx([float(sigmoid(1.0))] * len(after))
    raw = {item.retrieval_rank: item.model_score for item in before}
    assert all(item.model_score == pytest.approx(raw[item.retrieval_rank]) for item in after)
