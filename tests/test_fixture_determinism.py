"""Fixture models are byte-identical across builds: every file of two builds has the same sha256.

A non-deterministic fixture (a tokenizer trained in hash-map order) made rankings, and so tests,
depend on the build (tests/store/test_llamaindex.py failed 7 times in 19 runs).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import pytest

from tests.fixtures import audio_models, late_models, models, qwen_vl, rerank_models, sparse_models

BUILDERS: dict[str, Callable[[Path], Path]] = {
    "clip": models.build_tiny_clip,
    "clap": audio_models.build_tiny_clap,
    "siglip": models.build_tiny_siglip,
    "bert_cross_encoder": rerank_models.build_tiny_bert_cross_encoder,
    "blip_itm": rerank_models.build_tiny_blip_itm,
    "qwen3_vl_embedder": qwen_vl.build_tiny_qwen3_vl_embedder,
    "qwen_vl_reranker": qwen_vl.build_tiny_qwen_vl_reranker,
    "colqwen2": late_models.build_tiny_colqwen2,
    "colpali": late_models.build_tiny_colpali,
    "splade": sparse_models.build_tiny_splade,
}


def digests(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_two_builds_are_byte_identical(name, tmp_path):
    if name.startswith(("qwen", "colqwen")):
        pytest.importorskip("torchvision")  # Qwen-VL processors need it (NOTES.md)
    first, second = BUILDERS[name](tmp_path / "first"), BUILDERS[name](tmp_path / "second")
    a, b = digests(first), digests(second)
    assert "tokenizer.json" in a and "config.json" in a and len(a) >= 4
    assert a == b
