"""The whole path on ONNX Runtime: ``mmst index`` and ``mmst search`` with ``--backend onnx`` give the
torch results, ``mmst info`` says what ``auto`` measured, and a pickled embedding or reranker (what Ray
workers and a server receive) carries its backend and reuses the cached graphs."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from llama_index_mm_st.embedding import MultimodalEmbedding
from llama_index_mm_st.onnx.cache import CACHE_ENV
from llama_index_mm_st.rerank import MultimodalReranker
from tests.cli.conftest import RARE_TEXT

from .conftest import graph_metas


def _search(run_cli, store: Path, *args: str) -> list[dict]:  # type: ignore[no-untyped-def]
    code, out, err = run_cli("search", *args, "--store", str(store), "--json")
    assert code == 0, err
    return json.loads(out)


def test_index_and_search_with_backend_onnx_equal_torch(run_cli, corpus, tmp_path, tiny_clip_dir,
                                                        tiny_bert_cross_encoder_dir, fresh_cache):
    store = tmp_path / "index"
    code, out, err = run_cli("index", str(corpus), "--store", str(store), "--model", str(tiny_clip_dir),
                             "--backend", "onnx", "--no-progress")
    assert code == 0 and "in the index: 2 text, 4 image, 1 text+image" in out, err
    assert {m["part"][1] for m in graph_metas(fresh_cache)} == {"text", "image"}  # onnx really ran
    for args in ([RARE_TEXT, "--mode", "dense"], ["--image", str(corpus / "photos" / "sample_png.png"), "--mode", "dense"],
                 ["quarterly revenue", "--rerank", str(tiny_bert_cross_encoder_dir), "--modality", "text"]):
        onnx = _search(run_cli, store, *args, "--backend", "onnx")
        # The same points, queried through torch in fp32 (auto would pick bf16 on a CPU that runs it natively).
        torch = _search(run_cli, store, *args, "--backend", "torch", "--precision", "fp32")
        assert [r["source"] for r in onnx] == [r["source"] for r in torch] and onnx
        np.testing.assert_allclose([r["score"] for r in onnx], [r["score"] for r in torch], atol=1e-5)
    assert onnx[0]["score_kind"] == "relevance"  # the rerankers' relevance (over relevance fusion) was compared
    assert any(m["part"] == ["cross-encoder scores"] for m in graph_metas(fresh_cache))
    with pytest.raises(SystemExit) as refused:  # argparse names the choices
        run_cli("search", "x", "--store", str(store), "--backend", "tensorrt")
    assert refused.value.code == 2


def test_info_says_what_auto_measured_for_the_index_model(run_cli, corpus, tmp_path, tiny_clip_dir,
                                                          fresh_cache):
    store = tmp_path / "index"
    assert run_cli("index", str(corpus / "notes.txt"), "--store", str(store), "--model", str(tiny_clip_dir),
                   "--no-progress", "--backend", "torch")[0] == 0
    code, out, _ = run_cli("info", "--store", str(store))
    assert code == 0 and "model backend: not measured on this CPU yet" in out
    chosen = MultimodalEmbedding(str(tiny_clip_dir)).describe()  # auto measures and records
    code, out, _ = run_cli("info", "--store", str(store))
    line = next(line for line in out.splitlines() if line.startswith("model backend: "))
    assert line == f"model backend: {chosen['backend']} {chosen['precision']} ({chosen['reason']})"


def test_pickles_carry_the_backend_and_reuse_the_cached_graphs(tiny_clip_dir, tiny_bert_cross_encoder_dir):
    embedding = MultimodalEmbedding(str(tiny_clip_dir), backend="onnx", precision="int8")
    reranker = MultimodalReranker(str(tiny_bert_cross_encoder_dir), backend="onnx")
    root = Path(os.environ[CACHE_ENV])  # the session's cache, shared with the other tests
    built = {m["key"]: m["built_at"] for m in graph_metas(root)}
    embedding_copy, reranker_copy = pickle.loads(pickle.dumps((embedding, reranker)))
    assert embedding_copy.describe() == embedding.describe() and embedding_copy.precision == "int8"
    assert reranker_copy.describe() == reranker.describe()
    assert {m["key"]: m["built_at"] for m in graph_metas(root)} == built  # nothing exported again
    texts = ["a red car", "zebra"]
    np.testing.assert_allclose(embedding_copy.get_text_embedding_batch(texts), embedding.get_text_embedding_batch(texts))
