"""fp32 on ONNX Runtime equals the reference libraries called directly (tolerance 1e-5), per family:
CLIP and SigLIP text and image towers, CLAP text and audio, a BERT cross-encoder, BLIP ITM. Each test
also checks that the parts really ran on ONNX Runtime (``describe()``), not on a torch fallback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sentence_transformers import CrossEncoder, SentenceTransformer
from transformers import AutoModel, AutoTokenizer, BlipForImageTextRetrieval, BlipProcessor

from llama_index_mm_st.embedding import MultimodalEmbedding
from llama_index_mm_st.rerank import MultimodalReranker
from tests.rerank.nodes import TEXTS as DOCUMENTS, image_node, text_nodes

TOL = 1e-5
TEXTS = ["a red car on a street", "chart of quarterly revenue", "zebra", "error code 0x80070005 in the office report"]


def _rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def _on_onnx(report: dict, parts: list[str]) -> None:
    assert report["backend"] == "onnx" and report["precision"] == "fp32", report
    for part in parts:
        assert report["parts"][part].startswith("onnx fp32: "), report["parts"]
        assert Path(report["parts"][part].split(": ", 1)[1]).is_file()


def test_clip_text_and_images_equal_sentence_transformers(clip_onnx, tiny_clip_dir, image_files):
    _on_onnx(clip_onnx.describe(), ["text", "image"])
    reference = SentenceTransformer(str(tiny_clip_dir), device="cpu")
    np.testing.assert_allclose(clip_onnx.get_text_embedding_batch(TEXTS),
                               reference.encode_document(TEXTS, normalize_embeddings=True), atol=TOL)
    np.testing.assert_allclose([clip_onnx.get_query_embedding(t) for t in TEXTS],
                               reference.encode_query(TEXTS, normalize_embeddings=True), atol=TOL)
    paths = list(image_files.values())
    np.testing.assert_allclose(clip_onnx.get_image_embedding_batch(paths),
                               reference.encode_document([_rgb(p) for p in paths], normalize_embeddings=True), atol=TOL)


def test_siglip_text_and_images_equal_the_references(tiny_siglip_dir, image_files):
    ours = MultimodalEmbedding(str(tiny_siglip_dir), backend="onnx")
    _on_onnx(ours.describe(), ["text", "image"])
    model = AutoModel.from_pretrained(tiny_siglip_dir).eval()
    tokens = AutoTokenizer.from_pretrained(tiny_siglip_dir)(TEXTS, padding="max_length", max_length=64,
                                                             truncation=True, return_tensors="pt")
    with torch.no_grad():
        features = model.get_text_features(**tokens)
    text_reference = torch.nn.functional.normalize(getattr(features, "pooler_output", features), dim=-1).numpy()
    np.testing.assert_allclose(ours.get_text_embedding_batch(TEXTS), text_reference, atol=TOL)
    paths = list(image_files.values())
    image_reference = SentenceTransformer(str(tiny_siglip_dir), device="cpu").encode_document(
        [_rgb(p) for p in paths], normalize_embeddings=True)
    np.testing.assert_allclose(ours.get_image_embedding_batch(paths), image_reference, atol=TOL)


def test_siglip2_naflex_images_of_any_shape_equal_sentence_transformers(tiny_siglip2_naflex_dir, image_files):
    """NaFlex cuts each image into its own grid of patches (``spatial_shapes``): a trace that baked in one
    grid would fail here, on images of other aspect ratios than the traced ones."""
    ours = MultimodalEmbedding(str(tiny_siglip2_naflex_dir), backend="onnx")
    _on_onnx(ours.describe(), ["text", "image"])
    reference = SentenceTransformer(str(tiny_siglip2_naflex_dir), device="cpu")
    rng = np.random.default_rng(3)
    shapes = [(48, 200), (300, 40), (64, 64), (120, 90)]
    images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in shapes]
    images += [_rgb(p) for p in image_files.values()]
    np.testing.assert_allclose(ours.get_image_embedding_batch(images),
                               reference.encode_document(images, normalize_embeddings=True), atol=TOL)


def test_clap_text_and_audio_equal_sentence_transformers(tiny_clap_dir, media_files):
    pytest.importorskip("soundfile")  # what sentence-transformers decodes WAV with
    ours = MultimodalEmbedding(str(tiny_clap_dir), backend="onnx")
    _on_onnx(ours.describe(), ["text", "audio"])
    reference = SentenceTransformer(str(tiny_clap_dir), device="cpu")
    names = ["tone", "chirp", "noise", "stereo"]
    np.testing.assert_allclose(np.array(ours.embed([media_files[n] for n in names], "audio").embeddings),
                               reference.encode([str(media_files[n]) for n in names], normalize_embeddings=True),
                               atol=TOL)
    np.testing.assert_allclose(ours.get_text_embedding_batch(TEXTS),
                               reference.encode(TEXTS, normalize_embeddings=True), atol=TOL)


def test_text_cross_encoder_equals_predict(tiny_bert_cross_encoder_dir):
    reranker = MultimodalReranker(str(tiny_bert_cross_encoder_dir), backend="onnx", top_n=len(DOCUMENTS), batch_size=4)
    _on_onnx(reranker.describe()[0], ["scores"])
    query = "a cat photo in the garden"
    ours = {r.retrieval_rank: r.score for r in reranker.postprocess_nodes(text_nodes(), query_str=query)}
    expected = CrossEncoder(str(tiny_bert_cross_encoder_dir), device="cpu").predict([(query, d) for d in DOCUMENTS])
    np.testing.assert_allclose([ours[i] for i in range(len(DOCUMENTS))], expected, atol=TOL, rtol=0)
    assert np.ptp(expected) > 1e-3  # the model tells these pairs apart, so equality means something


def test_blip_itm_equals_the_itm_head_both_ways(tiny_blip_itm_dir, image_files):
    reranker = MultimodalReranker(str(tiny_blip_itm_dir), backend="onnx", top_n=10, batch_size=4)
    _on_onnx(reranker.describe()[0], ["vision", "text"])
    model = BlipForImageTextRetrieval.from_pretrained(str(tiny_blip_itm_dir)).eval()
    processor = BlipProcessor.from_pretrained(str(tiny_blip_itm_dir))

    def probability(text: str, image: Image.Image) -> float:
        with torch.no_grad():
            logits = model(**processor(images=image, text=text, return_tensors="pt"), use_itm_head=True).itm_score
        return float(logits.softmax(dim=-1)[0, 1])

    names = ["jpeg", "png", "webp", "gif", "bmp", "tiff"]
    query = "a red car in the city"
    ours = {r.retrieval_rank: r.score for r in reranker.postprocess_nodes(
        [image_node(image_files[n]) for n in names], query_str=query)}
    expected = [probability(query, _rgb(image_files[n])) for n in names]
    np.testing.assert_allclose([ours[i] for i in range(len(names))], expected, atol=TOL, rtol=0)
    assert np.ptp(expected) > 1e-3
    from llama_index.core.schema import QueryBundle

    by_image = {r.retrieval_rank: r.score for r in reranker.postprocess_nodes(
        text_nodes(), QueryBundle("", image_path=str(image_files["png"])))}
    expected = [probability(text, _rgb(image_files["png"])) for text in DOCUMENTS]
    np.testing.assert_allclose([by_image[i] for i in range(len(DOCUMENTS))], expected, atol=TOL, rtol=0)


def test_every_batch_size_and_bucket_gives_the_same_vectors(clip_onnx, clip_torch, image_files):
    """Dynamic batch and sequence axes: 1..7 items (bucketed to 1, 2, 4, 8 rows) and texts of every length."""
    texts = [" ".join(["word"] * n) for n in range(1, 40, 5)]
    for size in range(1, 8):
        np.testing.assert_allclose(clip_onnx.get_text_embedding_batch(texts[:size]),
                                   clip_torch.get_text_embedding_batch(texts[:size]), atol=TOL)
    paths = list(image_files.values())
    np.testing.assert_allclose(clip_onnx.get_image_embedding_batch(paths[:3]),
                               clip_torch.get_image_embedding_batch(paths[:3]), atol=TOL)
