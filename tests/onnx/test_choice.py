"""The (backend, precision) rules, ``auto``'s measured choice on this CPU, its record, and what happens
without onnxruntime."""

from __future__ import annotations

import logging
import sys

import pytest
import torch

from llama_index_mm_st import runtime
from llama_index_mm_st.embedding import MultimodalEmbedding
from llama_index_mm_st.errors import MissingDependencyError
from llama_index_mm_st.onnx.choice import plan
from llama_index_mm_st.onnx.measure import MIN_AGREEMENT, MIN_GAIN, ROUNDS, Measurement, pick
from llama_index_mm_st.rerank import MultimodalReranker


def test_pairs_that_cannot_run_are_refused_by_name():
    with pytest.raises(ValueError, match="backend must be one of"):
        plan("tensorrt", "auto", "cpu")
    with pytest.raises(ValueError, match="precision must be one of"):
        plan("auto", "int4", "cpu")
    with pytest.raises(ValueError, match="int8.*backend='onnx'"):
        plan("torch", "int8", "cpu")
    with pytest.raises(ValueError, match="precision='bf16' needs backend='torch'"):
        plan("onnx", "bf16", "cpu")
    with pytest.raises(ValueError, match="runs on the CPU"):
        plan("onnx", "auto", "cuda:0")


def test_a_bad_pair_fails_before_any_model_loads(tiny_clip_dir):
    with pytest.raises(ValueError, match="int8"):
        MultimodalEmbedding(str(tiny_clip_dir), backend="torch", precision="int8")
    with pytest.raises(ValueError, match="backend must be one of"):
        MultimodalReranker("no/such-model-is-loaded", backend="openvino")


def test_auto_goes_to_torch_without_measuring_where_onnx_is_not_the_question(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    gpu = plan("auto", "auto", "cuda")
    assert (gpu.onnx_precision, gpu.torch_precision, gpu.measure) == (None, "bf16", False) and "cuda" in gpu.reason
    explicit = plan("auto", "fp16", "cpu")
    assert explicit.onnx_precision is None and "precision='fp16' runs on torch" in explicit.reason
    measured = plan("auto", "auto", "cpu")
    assert (measured.onnx_precision, measured.measure) == ("fp32", True)
    lossy = plan("auto", "int8", "cpu")
    assert (lossy.onnx_precision, lossy.measure) == ("int8", False)  # asked for: no measurement decides it


def test_pick_takes_a_winner_that_is_exact_or_agrees_and_beats_its_noise():
    reference = Measurement("torch fp32", 10.0)
    onnx = Measurement("onnx fp32", 13.0, 0.99999, speedup=1.3, noise=0.02)
    assert pick([reference, onnx, Measurement("torch bf16", 40.0, MIN_AGREEMENT + 1e-4, 4.0, 0.1)]).path == "torch bf16"
    assert pick([reference, onnx, Measurement("torch bf16", 40.0, 0.99, 4.0, 0.1)]).path == "onnx fp32"  # lossy
    assert pick([reference, Measurement("onnx fp32", 8.0, 1.0, 0.8, 0.01)]).path == "torch fp32"
    assert pick([reference, Measurement("onnx fp32", 13.0, 1.0, 1.3, 0.4)]).path == "torch fp32"  # within its noise


def _chosen_by_the_margin_rule(measurements: list[dict]) -> str:
    """What the recorded measurements say ``auto`` must take: torch fp32 unless an eligible path's
    speedup beats 1 by more than max(its noise, MIN_GAIN); then the largest such speedup."""
    winners = [m for m in measurements if m["speedup"] is not None
               and (m["path"] == "onnx fp32" or m["agreement"] >= MIN_AGREEMENT)
               and m["speedup"] - 1 > max(m["noise"], MIN_GAIN)]
    return max(winners, key=lambda m: m["speedup"])["path"] if winners else "torch fp32"


def test_auto_measures_this_cpu_takes_the_fastest_and_remembers(fresh_cache, tiny_clip_dir, monkeypatch):
    embedding = MultimodalEmbedding(str(tiny_clip_dir))
    report = embedding.describe()
    paths = {m["path"]: m for m in report["measurements"]}
    assert {"torch fp32", "onnx fp32"} <= set(paths)
    assert ("torch bf16" in paths) == runtime.cpu_has_fast_bf16()  # emulated bf16 is never a candidate
    assert paths["onnx fp32"]["agreement"] > 0.99999 and paths["torch fp32"]["agreement"] is None
    assert paths["onnx fp32"]["speedup"] > 0 and paths["onnx fp32"]["noise"] >= 0
    chosen = _chosen_by_the_margin_rule(report["measurements"])
    assert f"{report['backend']} {report['precision']}" == chosen == f"{embedding.backend} {embedding.precision}"
    assert report["reason"].startswith(f"auto measured {chosen} fastest") and "probe batch of 8 images" in report["reason"]
    assert f"{ROUNDS} interleaved rounds" in report["reason"]
    assert report["requested"] == {"backend": "auto", "precision": "auto"}

    from llama_index_mm_st.onnx import selection

    def no_measuring(*args, **kwargs):
        raise AssertionError("the recorded decision should have been used")

    monkeypatch.setattr(selection, "measure", no_measuring)
    assert MultimodalEmbedding(str(tiny_clip_dir)).describe() == report


def test_auto_measures_native_bf16_and_gates_it_by_agreement(fresh_cache, tiny_clip_dir, monkeypatch):
    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: True)  # as on an AVX512-BF16 or AMX CPU
    embedding = MultimodalEmbedding(str(tiny_clip_dir))
    report = embedding.describe()
    paths = {m["path"]: m for m in report["measurements"]}
    assert set(paths) == {"torch fp32", "onnx fp32", "torch bf16"}
    assert 0.5 < paths["torch bf16"]["agreement"] < 1.0  # bf16 rounds: a real, lossy measurement
    chosen = _chosen_by_the_margin_rule(report["measurements"])
    assert f"{report['backend']} {report['precision']}" == chosen
    weights = next(embedding.model.parameters()).dtype
    assert (weights == torch.bfloat16) == (chosen == "torch bf16")


def test_without_onnxruntime_onnx_names_the_extra_and_auto_stays_on_torch(tiny_clip_dir, tiny_bert_cross_encoder_dir,
                                                                          monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now fails
    with pytest.raises(MissingDependencyError, match=r"llama-index-mm-st\[onnx\]"):
        MultimodalEmbedding(str(tiny_clip_dir), backend="onnx")
    with pytest.raises(MissingDependencyError, match=r"\[onnx\]"):
        MultimodalReranker(str(tiny_bert_cross_encoder_dir), backend="onnx")
    with caplog.at_level(logging.INFO, logger="llama_index_mm_st.onnx"):
        embedding = MultimodalEmbedding(str(tiny_clip_dir))
        reranker = MultimodalReranker(str(tiny_bert_cross_encoder_dir))
    assert embedding.backend == "torch" and "onnxruntime is not installed" in embedding.describe()["reason"]
    assert reranker.describe()[0]["backend"] == "torch"
    lines = [r.getMessage() for r in caplog.records if "onnxruntime is not installed" in r.getMessage()]
    assert len(lines) == 2 and all(r.levelno == logging.INFO for r in caplog.records if r.name == "llama_index_mm_st.onnx")
