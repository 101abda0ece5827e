"""A late-interaction model as a reranker scorer: MaxSim of the query's token vectors against each
candidate's, equal to sentence-transformers' own similarity; candidates that carry their stored
multivector (results of a late-interaction store) are scored from it without being encoded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from llama_index.core.schema import ImageNode, NodeWithScore, QueryBundle, TextNode
from PIL import Image

from llama_index_mm_st.multivector import attach_multivector, maxsim
from llama_index_mm_st.rerank import MultimodalReranker

QUERY = "quarterly revenue by region"


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("late_pages")
    rng = np.random.default_rng(5)
    paths = []
    for i, (w, h) in enumerate([(80, 64), (40, 40), (120, 90), (56, 112), (64, 64)]):
        path = folder / f"page{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def reference(tiny_colqwen2_dir: Path):  # type: ignore[no-untyped-def]
    from sentence_transformers import MultiVectorEncoder

    return MultiVectorEncoder(str(tiny_colqwen2_dir), device="cpu")


def _candidates(pages: list[Path]) -> list[NodeWithScore]:
    nodes = [NodeWithScore(node=ImageNode(image_path=str(p), text=f"page {i} words"), score=1.0 - i / 10)
             for i, p in enumerate(pages)]
    return nodes + [NodeWithScore(node=TextNode(text="a text chunk about revenue"), score=0.1)]


def _reference_scores(reference, pages: list[Path]) -> list[float]:  # type: ignore[no-untyped-def]
    query = reference.encode_query([QUERY])
    images = reference.encode_document([Image.open(p).convert("RGB") for p in pages])
    text = reference.encode_document(["a text chunk about revenue"])  # one modality per call
    return reference.similarity(query, images + text)[0].tolist()


def test_maxsim_reranking_equals_sentence_transformers(tiny_colqwen2_dir, pages, reference) -> None:
    reranker = MultimodalReranker(str(tiny_colqwen2_dir), top_n=6, precision="fp32", device="cpu")
    out = reranker.postprocess_nodes(_candidates(pages), QueryBundle(QUERY))
    expected = _reference_scores(reference, pages)
    got = {r.retrieval_rank: r.model_score for r in out}
    np.testing.assert_allclose([got[i] for i in range(6)], expected, atol=1e-4)
    # The relevance is the mean best match per query token: MaxSim over the query's token count.
    tokens = len(reference.encode_query([QUERY])[0])
    relevance = {r.retrieval_rank: r.score for r in out}
    np.testing.assert_allclose([relevance[i] for i in range(6)], np.clip(np.array(expected) / tokens, 0, 1), atol=1e-5)
    assert [r.score for r in out] == sorted(relevance.values(), reverse=True)


def test_stored_multivectors_are_scored_without_encoding(tiny_colqwen2_dir, pages, reference, monkeypatch) -> None:
    reranker = MultimodalReranker(str(tiny_colqwen2_dir), top_n=6, precision="fp32", device="cpu")
    scorer = reranker.scorers[0]
    rng = np.random.default_rng(9)
    candidates = _candidates(pages)
    stored = {}
    for position, item in enumerate(candidates[:3]):  # as a late-interaction store returns them
        matrix = rng.normal(size=(7, scorer.dimension)).astype(np.float32)
        attach_multivector(item.node, matrix)
        stored[position] = matrix
    encoded: list[int] = []
    original = scorer._encode

    def counting(inputs, role, batch_size):  # type: ignore[no-untyped-def]
        if role == "document":
            encoded.append(len(inputs))
        return original(inputs, role, batch_size)

    monkeypatch.setattr(scorer, "_encode", counting)
    out = reranker.postprocess_nodes(candidates, QueryBundle(QUERY))
    assert sum(encoded) == 3  # only the three candidates without a multivector (2 pages, 1 text) were encoded
    tokens = reference.encode_query([QUERY])[0].numpy()
    got = {r.retrieval_rank: r.model_score for r in out}
    for position, matrix in stored.items():
        assert got[position] == pytest.approx(maxsim(tokens, matrix), abs=1e-4)
    expected = _reference_scores(reference, pages)
    np.testing.assert_allclose([got[i] for i in (3, 4, 5)], [expected[i] for i in (3, 4, 5)], atol=1e-4)


def test_a_ready_multi_vector_encoder_is_a_scorer(reference, pages) -> None:
    reranker = MultimodalReranker(reference, top_n=2, precision="fp32")
    out = reranker.postprocess_nodes(_candidates(pages), QueryBundle(QUERY))
    assert len(out) == 2 and out[0].scorer
