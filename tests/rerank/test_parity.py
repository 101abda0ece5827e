"""Scores equal the reference libraries' own (fp32, tolerance 1e-5): sentence-transformers'
``CrossEncoder.predict`` for text cross-encoders and VLM rerankers, transformers' BLIP ITM softmax."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from llama_index.core.schema import QueryBundle
from PIL import Image

from llama_index_mm_st.rerank import MultimodalReranker

from .nodes import TEXTS, image_node, text_nodes

TOLERANCE = 1e-5


def _by_rank(reranked: list[Any]) -> dict[int, float]:
    return {item.retrieval_rank: item.score for item in reranked}


def _rgb(path: Path) -> Image.Image:
    return Image.open(path).convert("RGB")


def test_text_cross_encoder_equals_predict(cross_encoder: Any, tiny_bert_cross_encoder_dir: Path) -> None:
    query = "a cat photo in the garden"
    reranker = MultimodalReranker(str(tiny_bert_cross_encoder_dir), top_n=len(TEXTS), precision="fp32", batch_size=4)
    ours = _by_rank(reranker.postprocess_nodes(text_nodes(), query_str=query))
    expected = cross_encoder.predict([(query, text) for text in TEXTS])
    np.testing.assert_allclose([ours[i] for i in range(len(TEXTS))], expected, atol=TOLERANCE, rtol=0)
    assert np.ptp(expected) > 1e-3  # the model tells these pairs apart, so equality means something


def test_vlm_equals_predict_for_text_image_and_pairs(vlm: Any, image_files: dict[str, Path]) -> None:
    query = "a cat photo"
    instruction = "Find pictures and notes about pets."
    nodes = text_nodes(TEXTS[:3]) + [
        image_node(image_files["png"]),
        image_node(image_files["jpeg"], text="a dog in the garden"),
    ]
    reranker = MultimodalReranker(vlm, top_n=10, precision="fp32", instruction=instruction)
    ours = _by_rank(reranker.postprocess_nodes(nodes, query_str=query))
    documents: list[Any] = list(TEXTS[:3]) + [
        _rgb(image_files["png"]),
        {"text": "a dog in the garden", "image": _rgb(image_files["jpeg"])},
    ]
    expected = vlm.predict([(query, document) for document in documents], prompt=instruction)
    np.testing.assert_allclose([ours[i] for i in range(len(documents))], expected, atol=TOLERANCE, rtol=0)
    default_prompt = vlm.predict([(query, TEXTS[0])])
    assert abs(float(default_prompt[0]) - float(expected[0])) > 1e-6  # the instruction reached the model


def test_vlm_image_query_equals_predict(vlm: Any, image_files: dict[str, Path]) -> None:
    nodes = text_nodes(TEXTS[:3]) + [image_node(image_files["webp"])]
    reranker = MultimodalReranker(vlm, top_n=10, precision="fp32")
    ours = _by_rank(reranker.postprocess_nodes(nodes, QueryBundle("", image_path=str(image_files["png"]))))
    query = _rgb(image_files["png"])
    documents: list[Any] = list(TEXTS[:3]) + [_rgb(image_files["webp"])]
    expected = vlm.predict([(query, document) for document in documents])
    np.testing.assert_allclose([ours[i] for i in range(len(documents))], expected, atol=TOLERANCE, rtol=0)


def _itm_probability(blip: tuple[Any, Any], text: str, image: Image.Image) -> float:
    model, processor = blip
    inputs = processor(images=image, text=text, return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs, use_itm_head=True).itm_score
    return float(logits.softmax(dim=-1)[0, 1])


def test_blip_text_query_equals_itm_probability(blip: tuple[Any, Any], tiny_blip_itm_dir: Path, image_files: dict[str, Path]) -> None:
    query = "a red car in the city"
    names = ["jpeg", "png", "webp", "gif", "bmp", "tiff"]
    nodes = [image_node(image_files[name], inline=(i % 2 == 0)) for i, name in enumerate(names)]
    reranker = MultimodalReranker(str(tiny_blip_itm_dir), top_n=10, precision="fp32", batch_size=4)
    ours = _by_rank(reranker.postprocess_nodes(nodes, query_str=query))
    expected = [_itm_probability(blip, query, _rgb(image_files[name])) for name in names]
    np.testing.assert_allclose([ours[i] for i in range(len(names))], expected, atol=TOLERANCE, rtol=0)
    assert np.ptp(expected) > 1e-3


def test_blip_image_query_equals_itm_probability(blip: tuple[Any, Any], image_files: dict[str, Path]) -> None:
    model, processor = blip
    from llama_index_mm_st.rerank import BlipITMScorer

    scorer = BlipITMScorer(model, processor, precision="fp32")
    reranker = MultimodalReranker(scorer, top_n=10, batch_size=4)
    ours = _by_rank(reranker.postprocess_nodes(text_nodes(), QueryBundle("", image_path=str(image_files["png"]))))
    expected = [_itm_probability(blip, text, _rgb(image_files["png"])) for text in TEXTS]
    np.testing.assert_allclose([ours[i] for i in range(len(TEXTS))], expected, atol=TOLERANCE, rtol=0)
