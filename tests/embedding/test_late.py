"""Late interaction: our token vectors equal sentence-transformers' ``MultiVectorEncoder`` per
token (fp32, 1e-5), on a tiny ColQwen2 and a tiny ColPali; the node keeps a pooled vector and
carries the multivector outside its metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest
from llama_index.core.schema import ImageNode, TextNode
from PIL import Image

from llama_index_mm_st.multivector import PooledVector, maxsim, node_multivector, pooled

TOL = 1e-5
FAMILIES = ["colqwen2", "colpali"]
QUERIES = ["quarterly revenue by region", "zebra", "error code 0x80070005 in the office report", "a red car"]


def _pages(count: int = 5) -> list[Image.Image]:
    """Random RGB pages of different sizes (so ColQwen2 gives them different token counts)."""
    rng = np.random.default_rng(3)
    sizes = [(80, 64), (40, 40), (120, 90), (56, 112), (30, 70)][:count]
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


def _assert_same_tokens(ours: list[np.ndarray], reference: list, what: str) -> float:
    worst = 0.0
    assert len(ours) == len(reference)
    for index, (mine, theirs) in enumerate(zip(ours, reference)):
        theirs = np.asarray(theirs.cpu() if hasattr(theirs, "cpu") else theirs, dtype=np.float32)
        assert mine.shape == theirs.shape, f"{what} {index}: {mine.shape} tokens vs {theirs.shape}"
        np.testing.assert_allclose(mine, theirs, atol=TOL, err_msg=f"{what} {index}")
        worst = max(worst, float(np.abs(mine - theirs).max()))
    return worst


@pytest.mark.parametrize("late_pair", FAMILIES, indirect=True)
def test_query_and_document_tokens_match_sentence_transformers(late_pair):
    ours, reference = late_pair
    assert ours.late_interaction
    pages = _pages()
    queries = [ours.get_query_embedding(q) for q in QUERIES]
    documents = ours.embed(pages, "image", role="document").embeddings
    assert all(isinstance(v, PooledVector) for v in queries + documents)
    worst_q = _assert_same_tokens([q.multivector for q in queries], reference.encode_query(QUERIES), "query")
    worst_d = _assert_same_tokens([d.multivector for d in documents], reference.encode_document(pages), "page")
    print(f"max |ours - sentence-transformers| per token: queries {worst_q:.2e}, pages {worst_d:.2e}")
    # The MaxSim scores follow: the model's own similarity over its own vectors.
    ref_scores = reference.similarity(reference.encode_query(QUERIES), reference.encode_document(pages)).numpy()
    ours_scores = np.array([[maxsim(q.multivector, d.multivector) for d in documents] for q in queries])
    np.testing.assert_allclose(ours_scores, ref_scores, atol=1e-4)


@pytest.mark.parametrize("late_pair", ["colqwen2"], indirect=True)
def test_token_pooling_matches_sentence_transformers_pooling(late_pair, tiny_colqwen2_dir):
    from sentence_transformers.multi_vector_encoder.modules import HierarchicalTokenPooling

    from llama_index_mm_st.embedding import MultimodalEmbedding

    _, reference = late_pair
    ours = MultimodalEmbedding(str(tiny_colqwen2_dir), device="cpu", precision="fp32", token_pool_factor=2)
    pages = _pages()
    mine = [d.multivector for d in ours.embed(pages, "image").embeddings]
    theirs = reference.encode_document(pages, token_pooling=HierarchicalTokenPooling(pool_factor=2))
    _assert_same_tokens(mine, theirs, "pooled page")
    full = [d.multivector for d in late_pair[0].embed(pages, "image").embeddings]
    assert sum(len(m) for m in mine) < sum(len(f) for f in full)
    # Queries are never pooled.
    np.testing.assert_allclose(ours.get_query_embedding("zebra").multivector,
                               late_pair[0].get_query_embedding("zebra").multivector, atol=TOL)


def test_nodes_keep_a_pooled_embedding_and_carry_the_multivector_outside_metadata(colqwen2_embedding, tmp_path):
    path = tmp_path / "page.png"
    _pages(1)[0].save(path)
    page = ImageNode(image_path=str(path), text="Revenue grew in EMEA", metadata={"page": 1})
    text = TextNode(text="a plain text chunk")
    out = colqwen2_embedding([page, text])
    for node in out:
        matrix = node_multivector(node)
        assert matrix is not None and matrix.shape[1] == colqwen2_embedding.dimension
        assert type(node.embedding) is list and len(node.embedding) == colqwen2_embedding.dimension
        np.testing.assert_allclose(node.embedding, pooled(matrix), atol=1e-6)
        # Nothing of it in what LlamaIndex serialises (payloads, docstores, prompts read these).
        dumped = json.dumps(node.to_dict())
        assert "_mmst_multivector" not in dumped and set(node.metadata) <= {"page"}
    # The page is read by its pixels; its words are BM25's, not a second model vector.
    assert getattr(page, "text_embedding", None) is None
    reference = colqwen2_embedding.embed([str(path)], "image").embeddings[0]
    np.testing.assert_allclose(node_multivector(page), reference.multivector, atol=TOL)


def test_a_single_vector_model_is_not_late(tiny_clip_dir):
    from llama_index_mm_st.embedding import MultimodalEmbedding

    clip = MultimodalEmbedding(str(tiny_clip_dir), device="cpu", precision="fp32")
    assert not clip.late_interaction
    assert type(clip.get_query_embedding("zebra")) is list
    with pytest.raises(ValueError, match="late-interaction"):
        MultimodalEmbedding(str(tiny_clip_dir), device="cpu", token_pool_factor=2)


@pytest.mark.parametrize("late_pair", ["colqwen2"], indirect=True)
def test_image_queries_and_async_queries_take_the_query_path(late_pair):
    import asyncio

    ours, reference = late_pair
    page = _pages(1)[0]
    image_query = ours.get_image_query_embedding(page)
    _assert_same_tokens([image_query.multivector], reference.encode_query([page]), "image query")
    text_query = asyncio.run(ours.aget_query_embedding("zebra"))
    assert isinstance(text_query, PooledVector)
    _assert_same_tokens([text_query.multivector], reference.encode_query(["zebra"]), "async query")
