"""Async calls: same vectors as sync, coalesced into shared batches, errors kept per caller."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from llama_index_mm_st import errors
from llama_index_mm_st.embedding import MultimodalEmbedding


@pytest.fixture()
def counted(tiny_clip_dir) -> tuple[MultimodalEmbedding, list[int]]:
    """The embedding, and the batch size of every forward pass of its model (a torch forward hook, so torch)."""
    embedding = MultimodalEmbedding(str(tiny_clip_dir), device="cpu", precision="fp32", backend="torch")
    sizes: list[int] = []
    embedding.model.register_forward_hook(lambda module, args, output: sizes.append(len(output["sentence_embedding"])))
    return embedding, sizes


async def test_concurrent_queries_are_coalesced_and_equal_sync(counted):
    embedding, sizes = counted
    queries = [f"query number {i}" for i in range(64)]
    results = await asyncio.gather(*(embedding.aget_query_embedding(q) for q in queries))
    assert sum(sizes) == 64
    assert len(sizes) <= 3, sizes  # 64 callers, a handful of forward passes (batch_size 32)
    sizes.clear()
    expected = [embedding.get_query_embedding(q) for q in queries]
    assert len(sizes) == 64  # the sync loop, by contrast, runs one pass per call
    np.testing.assert_allclose(np.array(results), np.array(expected), atol=1e-5)


async def test_async_image_errors_stay_with_their_caller(counted, image_files, broken_images):
    embedding, _ = counted
    good = embedding.aget_image_embedding(image_files["png"])
    bad = embedding.aget_image_embedding(broken_images["truncated"])
    results = await asyncio.gather(good, bad, return_exceptions=True)
    assert isinstance(results[1], errors.ImageLoadError)
    np.testing.assert_allclose(results[0], embedding.get_image_embedding(image_files["png"]), atol=1e-5)


async def test_async_batch_and_acall(clip_embedding, image_files):
    from llama_index.core.schema import ImageNode, TextNode

    vectors = await clip_embedding.aget_image_embedding_batch([image_files["png"], image_files["bmp"]])
    np.testing.assert_allclose(vectors[1], clip_embedding.get_image_embedding(image_files["bmp"]), atol=1e-5)
    nodes = [TextNode(text="hello"), ImageNode(image_path=str(image_files["png"]))]
    await clip_embedding.acall(nodes)
    assert all(n.embedding is not None for n in nodes)
