"""Evidence fixtures: loaded tiny models and query-by-example files (a picture pasted into a larger one,
a PDF with a unique word, a recording with a clip pasted in), shared per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from llama_index_mm_st.embedding import MultimodalEmbedding


@pytest.fixture(scope="session")
def clip(tiny_clip_dir: Path) -> MultimodalEmbedding:
    return MultimodalEmbedding(str(tiny_clip_dir), device="cpu", precision="fp32")


@pytest.fixture(scope="session")
def siglip(tiny_siglip_dir: Path) -> MultimodalEmbedding:
    return MultimodalEmbedding(str(tiny_siglip_dir), device="cpu", precision="fp32")


@pytest.fixture(scope="session")
def clap(tiny_clap_dir: Path) -> MultimodalEmbedding:
    return MultimodalEmbedding(str(tiny_clap_dir), device="cpu", precision="fp32")


@pytest.fixture(scope="session")
def colqwen2_embedding(tiny_colqwen2_dir: Path) -> MultimodalEmbedding:
    return MultimodalEmbedding(str(tiny_colqwen2_dir), device="cpu", precision="fp32")


@pytest.fixture(scope="session")
def colpali_embedding(tiny_colpali_dir: Path) -> MultimodalEmbedding:
    return MultimodalEmbedding(str(tiny_colpali_dir), device="cpu", precision="fp32")
