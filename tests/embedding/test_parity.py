"""Parity: our fp32 embeddings equal sentence-transformers (or transformers) on the same model.

Tolerance 1e-5 absolute per component, fp32. Reference images are decoded by PIL directly
(``Image.open(...).convert("RGB")``), so every input kind is checked against the same pixels.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from llama_index.core.schema import ImageDocument, ImageNode
from PIL import Image
from transformers import AutoModel, AutoTokenizer

TOL = 1e-5
TEXTS = ["a red car on a street", "chart of quarterly revenue", "zebra", "error code 0x80070005 in the office report"]


def _pil(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def test_clip_text_matches_encode_query_and_document(clip_embedding, clip_reference):
    ours_q = np.array([clip_embedding.get_query_embedding(t) for t in TEXTS])
    ours_d = np.array(clip_embedding.get_text_embedding_batch(TEXTS))
    ref_q = clip_reference.encode_query(TEXTS, normalize_embeddings=True)
    ref_d = clip_reference.encode_document(TEXTS, normalize_embeddings=True)
    np.testing.assert_allclose(ours_q, ref_q, atol=TOL)
    np.testing.assert_allclose(ours_d, ref_d, atol=TOL)


def _input_kinds(path: Path, base_url: str) -> dict[str, object]:
    data = path.read_bytes()
    b64 = base64.b64encode(data).decode()
    return {
        "str path": str(path),
        "Path": path,
        "http URL": f"{base_url}/{path.name}",
        "data URI": f"data:image/png;base64,{b64}",
        "bytes": data,
        "BytesIO": io.BytesIO(data),
        "PIL": _pil(path),
        "numpy": np.asarray(_pil(path)),
        "ImageNode.image_path": ImageNode(image_path=str(path)),
        "ImageNode.image (base64)": ImageNode(image=b64),
        "ImageNode.image_url (http)": ImageNode(image_url=f"{base_url}/{path.name}"),
        "ImageDocument.image_path": ImageDocument(image_path=str(path)),
        "ImageDocument.image (base64)": ImageDocument(image=b64),
    }


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp", "gif", "bmp", "tiff"])
def test_clip_every_image_input_kind_matches_sentence_transformers(clip_embedding, clip_reference, image_files,
                                                                   image_server, fmt):
    path = image_files[fmt]
    reference = clip_reference.encode_document([_pil(path)], normalize_embeddings=True)[0]
    kinds = _input_kinds(path, image_server)
    ours = clip_embedding.get_image_embedding_batch(list(kinds.values()))
    for name, vector in zip(kinds, ours):
        np.testing.assert_allclose(vector, reference, atol=TOL, err_msg=f"input kind {name}")


def test_siglip_text_matches_transformers_max_length_padding(siglip_embedding, tiny_siglip_dir):
    model = AutoModel.from_pretrained(tiny_siglip_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_siglip_dir)
    tokens = tokenizer(TEXTS, padding="max_length", max_length=64, truncation=True, return_tensors="pt")
    with torch.no_grad():
        features = model.get_text_features(**tokens)
    features = getattr(features, "pooler_output", features)
    reference = torch.nn.functional.normalize(features, dim=-1).numpy()
    np.testing.assert_allclose(np.array(siglip_embedding.get_text_embedding_batch(TEXTS)), reference, atol=TOL)
    np.testing.assert_allclose(np.array(siglip_embedding.get_query_embedding(TEXTS[0])), reference[0], atol=TOL)


def test_siglip_images_match_sentence_transformers(siglip_embedding, tiny_siglip_dir, image_files):
    from sentence_transformers import SentenceTransformer

    reference_model = SentenceTransformer(str(tiny_siglip_dir), device="cpu")
    paths = list(image_files.values())
    reference = reference_model.encode_document([_pil(p) for p in paths], normalize_embeddings=True)
    np.testing.assert_allclose(np.array(siglip_embedding.get_image_embedding_batch(paths)), reference, atol=TOL)


def test_vlm_text_images_and_pairs_match_sentence_transformers(qwen_embedding, qwen_reference, image_files):
    paths = [image_files["png"], image_files["jpeg"]]
    pils = [_pil(p) for p in paths]
    np.testing.assert_allclose(
        np.array([qwen_embedding.get_query_embedding(t) for t in TEXTS[:2]]),
        qwen_reference.encode_query(TEXTS[:2], normalize_embeddings=True), atol=TOL)
    np.testing.assert_allclose(
        np.array(qwen_embedding.get_text_embedding_batch(TEXTS[:2])),
        qwen_reference.encode_document(TEXTS[:2], normalize_embeddings=True), atol=TOL)
    np.testing.assert_allclose(
        np.array(qwen_embedding.get_image_embedding_batch(paths)),
        qwen_reference.encode_document(pils, normalize_embeddings=True), atol=TOL)
    pairs = [{"text": "a caption", "image": p} for p in paths]
    ours = qwen_embedding.embed(pairs, "text+image").embeddings
    reference = qwen_reference.encode_document([{"text": "a caption", "image": im} for im in pils],
                                               normalize_embeddings=True)
    np.testing.assert_allclose(np.array(ours), reference, atol=TOL)
    query = qwen_embedding.get_text_image_embedding("a caption", paths[0], role="query")
    np.testing.assert_allclose(
        query, qwen_reference.encode_query([{"text": "a caption", "image": pils[0]}], normalize_embeddings=True)[0],
        atol=TOL)


def test_model_prompts_are_used_for_queries_and_documents(tiny_clip_dir):
    """A model that defines query/document prompts gets them, as encode_query/encode_document do."""
    from sentence_transformers import SentenceTransformer

    from llama_index_mm_st.embedding import MultimodalEmbedding

    model = SentenceTransformer(str(tiny_clip_dir), device="cpu",
                                prompts={"query": "search query: ", "document": "search document: "})
    reference = SentenceTransformer(str(tiny_clip_dir), device="cpu",
                                    prompts={"query": "search query: ", "document": "search document: "})
    embedding = MultimodalEmbedding(model=model, device="cpu", precision="fp32")
    query = embedding.get_query_embedding("zebra")
    document = embedding.get_text_embedding("zebra")
    np.testing.assert_allclose(query, reference.encode_query(["zebra"], normalize_embeddings=True)[0], atol=TOL)
    np.testing.assert_allclose(document, reference.encode_document(["zebra"], normalize_embeddings=True)[0], atol=TOL)
    assert not np.allclose(query, document, atol=1e-3)


def test_truncate_dim_and_normalize_follow_sentence_transformers(tiny_clip_dir, clip_reference):
    from llama_index_mm_st.embedding import MultimodalEmbedding

    embedding = MultimodalEmbedding(str(tiny_clip_dir), device="cpu", precision="fp32", truncate_dim=8,
                                    normalize=False)
    ours = np.array(embedding.get_text_embedding_batch(TEXTS))
    reference = clip_reference.encode_document(TEXTS, truncate_dim=8)
    assert ours.shape == (len(TEXTS), 8) and embedding.dimension == 8
    np.testing.assert_allclose(ours, reference, atol=TOL)
