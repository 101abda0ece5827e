"""Batch invariance, mixed lists in input order, and multi-process encoding."""

from __future__ import annotations


import numpy as np
import pytest
from llama_index.core.schema import ImageNode, TextNode

from llama_index_mm_st.embedding import MultimodalEmbedding

SHORT = "zebra"
LONG = "a very long caption about a red car driving on a wet street at night next to the river and a tree " * 2


@pytest.mark.parametrize("model_fixture", ["clip_embedding", "siglip_embedding", "qwen_embedding"])
def test_text_embedding_does_not_depend_on_batch_neighbours(request, model_fixture):
    embedding: MultimodalEmbedding = request.getfixturevalue(model_fixture)
    alone = np.array(embedding.get_text_embedding(SHORT))
    in_batch = np.array(embedding.get_text_embedding_batch([LONG, SHORT, "cat", LONG + " more"])[1])
    np.testing.assert_allclose(in_batch, alone, atol=1e-5)
    query_alone = np.array(embedding.get_query_embedding(SHORT))
    query_batch = np.array(embedding.embed([LONG, SHORT], "text", role="query").embeddings[1])
    np.testing.assert_allclose(query_batch, query_alone, atol=1e-5)


@pytest.mark.parametrize("model_fixture", ["clip_embedding", "siglip_embedding", "qwen_embedding"])
def test_image_embedding_does_not_depend_on_batch_neighbours(request, model_fixture, image_files):
    embedding: MultimodalEmbedding = request.getfixturevalue(model_fixture)
    alone = np.array(embedding.get_image_embedding(image_files["png"]))
    batch = embedding.get_image_embedding_batch([image_files["jpeg"], image_files["png"], image_files["tiff"]])
    np.testing.assert_allclose(batch[1], alone, atol=1e-5)


def test_sentence_transformers_default_padding_is_what_we_fix(tiny_siglip_dir, siglip_embedding):
    """Why the SigLIP profile exists: plain encode() pads to the batch's longest text."""
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(tiny_siglip_dir), device="cpu")
    alone = reference.encode([SHORT], normalize_embeddings=True)[0]
    beside_long = reference.encode([SHORT, LONG], normalize_embeddings=True)[0]
    assert float(alone @ beside_long) < 0.999  # sentence-transformers: depends on the neighbour
    ours_alone = np.array(siglip_embedding.get_text_embedding(SHORT))
    ours_beside = np.array(siglip_embedding.get_text_embedding_batch([SHORT, LONG])[0])
    assert float(ours_alone @ ours_beside) > 0.99999


def test_mixed_nodes_get_embeddings_of_their_own_modality_in_order(clip_embedding, image_files):
    nodes = [
        TextNode(text="first text"),
        ImageNode(image_path=str(image_files["png"])),
        TextNode(text="second text"),
        ImageNode(image_path=str(image_files["gif"]), text="a gif with a caption"),
        ImageNode(image_path=str(image_files["bmp"])),
    ]
    returned = clip_embedding(nodes)
    assert [n.node_id for n in returned] == [n.node_id for n in nodes]
    np.testing.assert_allclose(nodes[0].embedding, clip_embedding.get_text_embedding(nodes[0].get_content(metadata_mode="embed")), atol=1e-5)
    np.testing.assert_allclose(nodes[2].embedding, clip_embedding.get_text_embedding(nodes[2].get_content(metadata_mode="embed")), atol=1e-5)
    for index, fmt in ((1, "png"), (3, "gif"), (4, "bmp")):
        np.testing.assert_allclose(nodes[index].embedding, clip_embedding.get_image_embedding(image_files[fmt]), atol=1e-5)
    np.testing.assert_allclose(nodes[3].text_embedding, clip_embedding.get_text_embedding(
        nodes[3].get_content(metadata_mode="embed")), atol=1e-5)
    assert nodes[1].text_embedding is None and nodes[4].text_embedding is None


def test_image_documents_are_images_and_get_their_text_embedded(clip_embedding, image_files):
    from llama_index.core.schema import ImageDocument

    document = ImageDocument(image_path=str(image_files["webp"]), text="a caption")
    clip_embedding([document])
    np.testing.assert_allclose(document.embedding, clip_embedding.get_image_embedding(image_files["webp"]), atol=1e-5)
    np.testing.assert_allclose(document.text_embedding, clip_embedding.get_text_embedding(
        document.get_content(metadata_mode="embed")), atol=1e-5)


def test_embed_restores_input_order_across_modality_groups(clip_embedding, image_files):
    nodes = [ImageNode(image_path=str(image_files["png"])), TextNode(text="words"),
             ImageNode(image_path=str(image_files["jpeg"])), TextNode(text="more words")]
    result = clip_embedding.embed(nodes)
    assert result.ok
    expected = [clip_embedding.get_image_embedding(image_files["png"]),
                clip_embedding.get_text_embedding(nodes[1].get_content(metadata_mode="embed")),
                clip_embedding.get_image_embedding(image_files["jpeg"]),
                clip_embedding.get_text_embedding(nodes[3].get_content(metadata_mode="embed"))]
    np.testing.assert_allclose(np.array(result.embeddings), np.array(expected), atol=1e-5)


def test_vlm_can_fuse_text_and_image_of_a_node(tiny_qwen3_vl_embedder_dir, image_files):
    embedding = MultimodalEmbedding(str(tiny_qwen3_vl_embedder_dir), device="cpu", precision="fp32",
                                    fuse_text_and_image=True)
    node = ImageNode(image_path=str(image_files["png"]), text="a caption")
    embedding([node])
    fused = embedding.get_text_image_embedding(node.get_content(metadata_mode="embed"), image_files["png"])
    np.testing.assert_allclose(node.embedding, fused, atol=1e-5)
    assert not np.allclose(node.embedding, embedding.get_image_embedding(image_files["png"]), atol=1e-3)


def test_many_items_cross_batches_and_keep_order(tiny_clip_dir, image_files):
    embedding = MultimodalEmbedding(str(tiny_clip_dir), device="cpu", precision="fp32", batch_size=3)
    paths = [image_files[f] for f in ("png", "jpeg", "webp", "gif", "bmp", "tiff")] * 2
    batched = np.array(embedding.get_image_embedding_batch(paths))
    singles = np.array([embedding.get_image_embedding(p) for p in paths])
    np.testing.assert_allclose(batched, singles, atol=1e-5)


def test_multi_process_encoding_equals_single_process(tiny_clip_dir, image_files):
    single = MultimodalEmbedding(str(tiny_clip_dir), device="cpu", precision="fp32")
    spread = MultimodalEmbedding(str(tiny_clip_dir), device="cpu", precision="fp32", devices=["cpu", "cpu"])
    spread._encoder.settings = type(spread._encoder.settings)(**{**spread._encoder.settings.__dict__,
                                                                 "multi_process_min_items": 2})
    texts = [f"caption number {i}" for i in range(8)]
    np.testing.assert_allclose(np.array(spread.get_text_embedding_batch(texts)),
                               np.array(single.get_text_embedding_batch(texts)), atol=1e-5)
    paths = list(image_files.values())
    np.testing.assert_allclose(np.array(spread.get_image_embedding_batch(paths)),
                               np.array(single.get_image_embedding_batch(paths)), atol=1e-5)


def test_auto_precision_is_close_to_fp32(tiny_clip_dir, image_files, clip_embedding):
    fast = MultimodalEmbedding(str(tiny_clip_dir), device="cpu")
    assert fast.precision in ("bf16", "fp32")
    paths = list(image_files.values())
    a = np.array(fast.get_image_embedding_batch(paths))
    b = np.array(clip_embedding.get_image_embedding_batch(paths))
    cosine = np.sum(a * b, axis=1)
    assert cosine.min() > 0.99, cosine


def test_forward_passes_come_in_a_few_row_counts_and_the_padding_is_dropped(tiny_clip_dir):
    """Every batch size from 1 to the cap runs as one of 1, 2, 4, 8, 16, 24, 32 rows (CPU kernel caches
    keep one entry per shape), never more than 7 rows of padding above 8, and the vectors equal a
    forward pass of exactly those rows."""
    from llama_index_mm_st.embedding.buckets import bucket_rows

    shapes = {bucket_rows(rows, 32) for rows in range(1, 33)}
    assert shapes == {1, 2, 4, 8, 16, 24, 32}
    assert all(rows <= bucket_rows(rows, 32) < rows + 8 for rows in range(9, 33))
    assert bucket_rows(40, 32) == 40  # a batch at or over the cap is not padded

    options = {"device": "cpu", "precision": "fp32", "backend": "torch", "batch_size": 32}
    bucketed = MultimodalEmbedding(str(tiny_clip_dir), bucket_batches=True, **options)
    exact = MultimodalEmbedding(str(tiny_clip_dir), bucket_batches=False, **options)
    seen: list[int] = []
    texts = [f"caption number {i} of a red car" for i in range(19)]
    from sentence_transformers import SentenceTransformer

    original = SentenceTransformer.forward

    def recording(self, features, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(int(features["input_ids"].shape[0]))
        return original(self, features, *args, **kwargs)

    SentenceTransformer.forward = recording  # type: ignore[method-assign]
    try:
        got = np.array(bucketed.get_text_embedding_batch(texts))
    finally:
        SentenceTransformer.forward = original  # type: ignore[method-assign]
    assert seen == [24]  # 19 rows ran as 24, not as 32
    np.testing.assert_allclose(got, np.array(exact.get_text_embedding_batch(texts)), atol=1e-5)


def test_text_lengths_come_in_a_few_buckets_with_little_padding():
    """Token lengths run as multiples of 4 below 32, then of an eighth of the next power of two: few
    shapes (24 for a 512-token window, 13 for CLIP's 77) and at most 3 tokens or a quarter of padding."""
    from llama_index_mm_st.embedding.buckets import text_length_bucket

    assert len({text_length_bucket(n, 512) for n in range(1, 513)}) == 24
    assert len({text_length_bucket(n, 77) for n in range(1, 78)}) == 13
    for n in range(1, 513):
        padded = text_length_bucket(n, 512)
        assert n <= padded <= 512 and (padded - n <= 3 or padded - n < n / 4), (n, padded)
    assert text_length_bucket(70, 77) == 77  # capped at the window


def test_bucketing_is_on_by_default_only_in_half_precision(tiny_clip_dir):
    """Half precision keeps a kernel per shape (bf16 memory grew 100+ MB unbucketed); fp32 stays flat
    without buckets, so there the padding would only cost compute."""
    def setting(**options):  # type: ignore[no-untyped-def]
        return MultimodalEmbedding(str(tiny_clip_dir), device="cpu", backend="torch", **options)._encoder.settings.bucket_batches

    assert setting(precision="bf16") is True
    assert setting(precision="fp32") is False
    assert setting(precision="fp32", bucket_batches=True) is True
    assert setting(precision="bf16", bucket_batches=False) is False
