"""Embedding fixtures: loaded tiny models, shared per session (loading is the slow part)."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path
from typing import Iterator

import pytest
from sentence_transformers import SentenceTransformer

from llama_index_mm_st.embedding import MultimodalEmbedding


@pytest.fixture(scope="session")
def clip_embedding(tiny_clip_dir: Path) -> MultimodalEmbedding:
    """URLs allowed, private addresses included: the tests' image server listens on 127.0.0.1."""
    return MultimodalEmbedding(
        str(tiny_clip_dir), device="cpu", precision="fp32", allow_urls=True, allow_private_urls=True
    )


@pytest.fixture(scope="session")
def clip_reference(tiny_clip_dir: Path) -> SentenceTransformer:
    return SentenceTransformer(str(tiny_clip_dir), device="cpu")


@pytest.fixture(scope="session")
def siglip_embedding(tiny_siglip_dir: Path) -> MultimodalEmbedding:
    return MultimodalEmbedding(str(tiny_siglip_dir), device="cpu", precision="fp32")


@pytest.fixture(scope="session")
def qwen_embedding(tiny_qwen3_vl_embedder_dir: Path) -> MultimodalEmbedding:
    return MultimodalEmbedding(str(tiny_qwen3_vl_embedder_dir), device="cpu", precision="fp32")


@pytest.fixture(scope="session")
def qwen_reference(tiny_qwen3_vl_embedder_dir: Path) -> SentenceTransformer:
    return SentenceTransformer(str(tiny_qwen3_vl_embedder_dir), device="cpu")


# Late interaction: the tiny ColQwen2 and ColPali, ours and sentence-transformers' own MultiVectorEncoder.
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


@pytest.fixture(scope="session")
def image_server(image_files: dict[str, Path]) -> Iterator[str]:
    """A local HTTP server on 127.0.0.1 serving the fixture images; yields its base URL."""
    directory = str(next(iter(image_files.values())).parent)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=directory, **kwargs)

        def log_message(self, *args):  # type: ignore[no-untyped-def]
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
