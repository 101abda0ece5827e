"""int8 (ONNX Runtime dynamic quantization) is opt-in, really quantized, and within its bounds.

The tiny fabricated towers (hidden size 32, random weights) are the hardest case for int8: a few
weights carry each output. Measured here: min cosine 0.86-0.99 against fp32. Full-size models are
measured in bench/ and the README (min cosine 0.999+ on ViT-B/32, rank agreement of a retrieval run).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from llama_index_mm_st.embedding import MultimodalEmbedding
from llama_index_mm_st.rerank import MultimodalReranker
from tests.rerank.nodes import TEXTS as DOCUMENTS, text_nodes

TINY_MIN_COSINE = 0.8
TEXTS = ["a red car on a street", "chart of quarterly revenue", "zebra", "error code 0x80070005 in the office report"]
QUANTIZED_OPS = {"MatMulInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul", "ConvInteger", "QLinearMatMul"}


def _ops(report_part: str) -> set[str]:
    path = Path(report_part.split(": ", 1)[1])
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def test_int8_is_quantized_and_stays_near_fp32(tiny_clip_dir, clip_torch, image_files):
    int8 = MultimodalEmbedding(str(tiny_clip_dir), precision="int8")  # backend "auto": int8 means ONNX Runtime
    report = int8.describe()
    assert (report["backend"], report["precision"], int8.precision) == ("onnx", "int8", "int8")
    for part in ("text", "image"):
        assert report["parts"][part].startswith("onnx int8: ") and _ops(report["parts"][part]) & QUANTIZED_OPS
    paths = list(image_files.values())
    for ours, exact in ((int8.get_text_embedding_batch(TEXTS), clip_torch.get_text_embedding_batch(TEXTS)),
                        (int8.get_image_embedding_batch(paths), clip_torch.get_image_embedding_batch(paths))):
        cosines = np.sum(np.array(ours) * np.array(exact), axis=1)  # unit vectors
        assert cosines.min() >= TINY_MIN_COSINE
        assert np.abs(np.array(ours) - np.array(exact)).max() > 1e-4  # lossy: not the fp32 graph in disguise


def test_int8_cross_encoder_keeps_the_ranking_close(tiny_bert_cross_encoder_dir):
    query = "a cat photo in the garden"
    exact = MultimodalReranker(str(tiny_bert_cross_encoder_dir), backend="torch", precision="fp32", top_n=len(DOCUMENTS))
    int8 = MultimodalReranker(str(tiny_bert_cross_encoder_dir), backend="onnx", precision="int8", top_n=len(DOCUMENTS))
    assert int8.describe()[0]["parts"]["scores"].startswith("onnx int8: ")
    ours = {r.retrieval_rank: r.score for r in int8.postprocess_nodes(text_nodes(), query_str=query)}
    theirs = {r.retrieval_rank: r.score for r in exact.postprocess_nodes(text_nodes(), query_str=query)}
    diffs = [abs(ours[i] - theirs[i]) for i in range(len(DOCUMENTS))]
    assert 1e-5 < max(diffs) < 0.05  # sigmoid scores: quantized, and close
    assert np.corrcoef([ours[i] for i in range(len(DOCUMENTS))], [theirs[i] for i in range(len(DOCUMENTS))])[0, 1] > 0.9


def test_int8_is_refused_where_it_cannot_run(tiny_clip_dir):
    with pytest.raises(ValueError, match="int8.*ONNX Runtime"):
        MultimodalEmbedding(str(tiny_clip_dir), backend="torch", precision="int8")
