"""What does not export stays on torch, says why in one log line, and never fails: a part whose trace
does not generalise (Qwen3-VL's image path), late-interaction models, VLM rerankers, model objects."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from llama_index_mm_st.embedding import MultimodalEmbedding
from llama_index_mm_st.rerank import MultimodalReranker

TEXTS = ["a red car on a street", "chart of quarterly revenue"]


def _onnx_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "llama_index_mm_st.onnx"]


def test_a_part_that_does_not_export_runs_on_torch_and_the_rest_on_onnx(tiny_qwen3_vl_embedder_dir, image_files,
                                                                        caplog):
    pytest.importorskip("torchvision")
    with caplog.at_level(logging.INFO, logger="llama_index_mm_st.onnx"):
        ours = MultimodalEmbedding(str(tiny_qwen3_vl_embedder_dir), backend="onnx")
    parts = ours.describe()["parts"]
    # Qwen3-VL's image features carry their patch grid; the traced graph fails the check on other image sizes.
    assert parts["image"].startswith("torch fp32: the image tower did not export (")
    assert parts["text"].startswith("onnx fp32: ")
    lines = _onnx_lines(caplog)
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING and "image: torch fp32" in lines[0].getMessage()
    reference = SentenceTransformer(str(tiny_qwen3_vl_embedder_dir), device="cpu")
    paths = [image_files["png"], image_files["jpeg"]]
    from PIL import Image

    pils = [Image.open(p).convert("RGB") for p in paths]
    np.testing.assert_allclose(ours.get_image_embedding_batch(paths),
                               reference.encode_document(pils, normalize_embeddings=True), atol=1e-5)
    np.testing.assert_allclose(ours.get_text_embedding_batch(TEXTS),
                               reference.encode_document(TEXTS, normalize_embeddings=True), atol=1e-5)


def test_late_interaction_models_stay_on_torch_with_one_info_line(tiny_colpali_dir, caplog):
    with caplog.at_level(logging.INFO, logger="llama_index_mm_st.onnx"):
        late = MultimodalEmbedding(str(tiny_colpali_dir))
    assert late.backend == "torch" and "late-interaction" in late.describe()["reason"]
    lines = _onnx_lines(caplog)
    assert len(lines) == 1 and lines[0].levelno == logging.INFO


def test_vlm_rerankers_and_model_objects_stay_on_torch(tiny_qwen_vl_reranker_dir, tiny_clip_dir,
                                                       tiny_bert_cross_encoder_dir, caplog):
    pytest.importorskip("torchvision")
    from sentence_transformers import CrossEncoder

    with caplog.at_level(logging.INFO, logger="llama_index_mm_st.onnx"):
        vlm = MultimodalReranker(str(tiny_qwen_vl_reranker_dir), backend="onnx")
        given = MultimodalEmbedding(model=SentenceTransformer(str(tiny_clip_dir), device="cpu"), backend="onnx")
        given_reranker = MultimodalReranker(CrossEncoder(str(tiny_bert_cross_encoder_dir), device="cpu"), backend="onnx")
    assert vlm.describe()[0]["backend"] == "torch" and "VLM rerankers" in vlm.describe()[0]["reason"]
    assert given.backend == "torch" and "given as an object" in given.describe()["reason"]
    assert given_reranker.describe()[0]["backend"] == "torch" and "given as an object" in given_reranker.describe()[0]["reason"]
    lines = _onnx_lines(caplog)  # backend="onnx" was asked for: each says it stayed on torch, as a warning
    assert len(lines) == 3 and all(r.levelno == logging.WARNING for r in lines)
