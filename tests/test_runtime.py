"""Device and precision choice."""

from __future__ import annotations

import pytest
import torch

from llama_index_mm_st import runtime


def test_auto_precision_follows_the_hardware(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: True)
    assert runtime.resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: False)
    assert runtime.resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert runtime.resolve_precision("auto", "cuda") == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert runtime.resolve_precision("auto", "cuda") == "fp16"
    assert runtime.resolve_precision("auto", "mps") == "fp32"


def test_explicit_precision_wins_and_unknown_is_rejected():
    assert runtime.resolve_precision("fp16", "cpu") == "fp16"
    with pytest.raises(ValueError, match="precision must be one of"):
        runtime.resolve_precision("int4", "cpu")
    assert runtime.torch_dtype("bf16") is torch.bfloat16


def test_device_auto_picks_what_exists(monkeypatch):
    assert runtime.resolve_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.resolve_device(None) == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert runtime.resolve_device("auto") == "cpu"


def test_this_machine_detection_reads_cpu_flags():
    flags = open("/proc/cpuinfo").read()
    assert runtime.cpu_has_fast_bf16() == (" avx512_bf16" in flags or " amx_bf16" in flags)
