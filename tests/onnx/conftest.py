"""ONNX fixtures: the tiny models on ONNX Runtime, exported once per session into the session's cache
(``MMST_ONNX_CACHE``, set in tests/conftest.py), and a fresh cache for tests that watch a build."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")

from llama_index_mm_st.embedding import MultimodalEmbedding  # noqa: E402
from llama_index_mm_st.onnx.cache import CACHE_ENV  # noqa: E402
from tests.cli.conftest import corpus, run_cli  # noqa: E402, F401  (the CLI's fixtures, for test_pipeline)


@pytest.fixture(scope="session")
def clip_onnx(tiny_clip_dir: Path) -> MultimodalEmbedding:
    return MultimodalEmbedding(str(tiny_clip_dir), backend="onnx")


@pytest.fixture(scope="session")
def clip_torch(tiny_clip_dir: Path) -> MultimodalEmbedding:
    return MultimodalEmbedding(str(tiny_clip_dir), backend="torch", precision="fp32")


@pytest.fixture(scope="session")
def tiny_siglip2_naflex_dir(fixture_root: Path) -> Path:
    from tests.fixtures import models

    path = fixture_root / "models" / "siglip2_naflex"
    if not (path / "config.json").exists():
        models.build_tiny_siglip2_naflex(path)
    return path


@pytest.fixture()
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty graph cache for this test only (builds and decisions start from nothing)."""
    root = tmp_path / "onnx-cache"
    monkeypatch.setenv(CACHE_ENV, str(root))
    return root


def graph_metas(root: Path) -> list[dict]:
    """Every entry's meta.json under a cache root."""
    import json

    return [json.loads(path.read_text()) for path in sorted((root / "graphs").glob("*/meta.json"))]
