"""Late-interaction fixtures: the tiny ColQwen2 and ColPali loaded once per session, ours and
sentence-transformers' own ``MultiVectorEncoder`` for reference."""

from __future__ import annotations

from pathlib import Path

import pytest

from llama_index_mm_st.embedding import MultimodalEmbedding


@pytest.fixture(scope="session")
def colqwen2_embedding(tiny_colqwen2_dir: Path) -> MultimodalEmbedding:
    return MultimodalEmbedding(str(tiny_colqwen2_dir), device="cpu", precision="fp32")


@pytest.fixture(scope="session")
def colpali_embedding(tiny_colpali_dir: Path) -> MultimodalEmbedding:
    return MultimodalEmbedding(str(tiny_colpali_dir), device="cpu", precision="fp32")


@pytest.fixture(scope="session")
def late_pair(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """(ours, sentence-transformers' MultiVectorEncoder) for the family named by the test's parameter."""
    from sentence_transformers import MultiVectorEncoder

    directory = request.getfixturevalue(f"tiny_{request.param}_dir")
    return (MultimodalEmbedding(str(directory), device="cpu", precision="fp32"),
            MultiVectorEncoder(str(directory), device="cpu"))
