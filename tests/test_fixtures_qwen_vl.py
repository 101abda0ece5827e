"""The fabricated Qwen3-VL embedder and reranker load in Sentence Transformers and behave like VLMs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.fixtures.qwen_vl import EMBEDDER_PROMPTS, HIDDEN_SIZE

pytest.importorskip("torchvision")


def _image(seed: int, size: tuple[int, int] = (64, 48)) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def embedder(tiny_qwen3_vl_embedder_dir: Path):  # type: ignore[no-untyped-def]
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(tiny_qwen3_vl_embedder_dir), device="cpu")


@pytest.fixture(scope="module")
def reranker(tiny_qwen_vl_reranker_dir: Path):  # type: ignore[no-untyped-def]
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(tiny_qwen_vl_reranker_dir), device="cpu")


def test_embedder_saves_the_qwen3_vl_embedding_layout(tiny_qwen3_vl_embedder_dir: Path) -> None:
    st_config = json.loads((tiny_qwen3_vl_embedder_dir / "config_sentence_transformers.json").read_text())
    pooling = json.loads((tiny_qwen3_vl_embedder_dir / "1_Pooling" / "config.json").read_text())
    assert st_config["prompts"] == EMBEDDER_PROMPTS
    assert pooling["pooling_mode"] == "lasttoken"
    total = sum(f.stat().st_size for f in tiny_qwen3_vl_embedder_dir.rglob("*") if f.is_file())
    assert total < 3_000_000


def test_embedder_encodes_text_images_and_pairs_as_distinct_unit_vectors(embedder) -> None:  # type: ignore[no-untyped-def]
    inputs = ["a cat photo", "a red car", _image(0), _image(1, (100, 30)), {"text": "a cat photo", "image": _image(0)}]
    vectors = embedder.encode(inputs)
    assert vectors.shape == (5, HIDDEN_SIZE)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors @ vectors.T
    off_diagonal = similarity[~np.eye(5, dtype=bool)]
    assert off_diagonal.max() < 0.999  # every input gets its own vector; text+image differs from each part


def test_embedder_mixed_batch_matches_one_at_a_time(embedder) -> None:  # type: ignore[no-untyped-def]
    inputs = ["a cat photo", _image(2), {"text": "a red car", "image": _image(3)}]
    batched = embedder.encode(inputs)
    single = np.stack([embedder.encode([item])[0] for item in inputs])
    np.testing.assert_allclose(batched, single, atol=1e-4)


def test_query_prompt_changes_the_vector_and_document_prompt_is_the_default(embedder) -> None:  # type: ignore[no-untyped-def]
    plain = embedder.encode(["a cat photo"])
    query = embedder.encode_query(["a cat photo"])
    document = embedder.encode_document(["a cat photo"])
    assert float(query[0] @ plain[0]) < 0.999
    np.testing.assert_allclose(document, plain, atol=1e-5)


def test_reranker_scores_text_and_image_pairs(reranker) -> None:  # type: ignore[no-untyped-def]
    image = _image(0)
    pairs = [
        ("a cat photo", "a red car"),
        ("a cat photo", "the cat sits on a tree"),
        ("a cat photo", image),
        (image, "a red car"),
        ("a cat photo", {"text": "a cat", "image": image}),
    ]
    scores = reranker.predict(pairs)
    assert scores.shape == (len(pairs),)
    assert np.isfinite(scores).all()
    assert len(set(np.round(scores, 6).tolist())) == len(pairs)


def test_reranker_batch_matches_single_pairs_and_instruction_matters(reranker) -> None:  # type: ignore[no-untyped-def]
    pairs = [("a cat photo", "a red car"), ("a cat photo", _image(4)), (_image(5), "a cat")]
    batched = reranker.predict(pairs)
    single = np.array([reranker.predict([pair])[0] for pair in pairs])
    np.testing.assert_allclose(batched, single, atol=1e-4)
    instructed = reranker.predict(pairs[:1], prompt="Find photos of cats.")
    assert abs(float(instructed[0]) - float(batched[0])) > 1e-6
