"""A text's cost is bounded before tokenising (``text_limits``): the tokenizer never sees more than
``char_limit(window)`` characters of it, and what the model reads is the reference's all the same."""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from llama_index_mm_st.text_limits import (CHARS_PER_TOKEN, UNKNOWN_WINDOW, bound_text, char_limit, declared_window,
                                           paired_limit)

WORDS = "circle red sky valve part blue square noon page white round four".split()


def _words(chars: int, seed: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(chars // 3))[:chars]


def test_the_window_is_the_truncation_length_first_then_the_tokenizer_then_the_positions() -> None:
    config = SimpleNamespace(max_position_embeddings=512)
    tokenizer = SimpleNamespace(model_max_length=int(1e30))  # a tokenizer saved without a limit
    assert declared_window(SimpleNamespace(max_seq_length=128, tokenizer=tokenizer, config=config)) == 128
    assert declared_window(SimpleNamespace(tokenizer=tokenizer, config=config)) == 512
    assert declared_window(SimpleNamespace(processor=SimpleNamespace(tokenizer=SimpleNamespace(model_max_length=64))),
                           SimpleNamespace(config=config)) == 64
    assert declared_window(SimpleNamespace(), None) is None
    assert char_limit(77) == 77 * CHARS_PER_TOKEN and char_limit(None) == UNKNOWN_WINDOW * CHARS_PER_TOKEN
    assert bound_text("abcdef", 4) == "abcd" and bound_text("abc", 4) == "abc"


def test_a_pair_keeps_its_order_of_length() -> None:
    limit = 100
    assert paired_limit("d" * 500, "q" * 300, limit) == 200  # the longer side keeps twice the query's cut
    assert paired_limit("d" * 250, "q" * 300, limit) == 50  # the shorter keeps half, when the query is cut
    assert paired_limit("d" * 50, "q" * 80, limit) == 100  # nothing is cut: both fit
    assert paired_limit("d" * 500, None, limit) == 200


@pytest.fixture(scope="module")
def clip(tiny_clip_dir: Path) -> Any:
    from llama_index_mm_st import MultimodalEmbedding

    return MultimodalEmbedding(str(tiny_clip_dir), device="cpu", precision="fp32")


def test_a_long_text_is_cut_before_the_tokenizer_and_embeds_as_sentence_transformers_does(
        clip: Any, tiny_clip_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sentence_transformers import SentenceTransformer

    window = clip.text_window
    assert window == 77
    long = _words(40_000, 0)
    seen: list[int] = []
    preprocess = clip.model.preprocess

    def spy(inputs: list, *args: Any, **kwargs: Any) -> Any:
        seen.extend(len(item) for item in inputs if isinstance(item, str))
        return preprocess(inputs, *args, **kwargs)

    monkeypatch.setattr(clip.model, "preprocess", spy)
    ours = clip.embed([long, "a red circle"], "text").embeddings
    assert seen and max(seen) == char_limit(window)  # the tokenizer saw the cut text, never 40,000 characters
    reference = SentenceTransformer(str(tiny_clip_dir), device="cpu").encode([long, "a red circle"],
                                                                           normalize_embeddings=True)
    np.testing.assert_allclose(np.asarray(ours), reference, atol=1e-5)


def test_long_queries_and_documents_rerank_as_the_cross_encoder_does(tiny_bert_cross_encoder_dir: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from sentence_transformers import CrossEncoder

    from llama_index_mm_st import MultimodalReranker
    from llama_index_mm_st.rerank.routing import text_limit

    reranker = MultimodalReranker([str(tiny_bert_cross_encoder_dir)], device="cpu", precision="fp32", top_n=10)
    (scorer,) = reranker.scorers
    limit = text_limit(scorer)
    assert limit == char_limit(128)
    query = _words(3 * limit // 2, 1)  # longer than the limit: cut
    documents = [_words(5 * limit, 2), "a red circle at noon", _words(4 * limit // 3, 3), _words(limit // 4, 4)]
    seen: list[int] = []
    score = scorer.score

    def spy(query_side: Any, sides: Any, batch_size: int) -> Any:
        seen.extend(len(side.text) for side in [query_side, *sides])
        return score(query_side, sides, batch_size)

    monkeypatch.setattr(scorer, "score", spy)
    ranked = reranker.postprocess_nodes([NodeWithScore(node=TextNode(text=d)) for d in documents],
                                        query_bundle=QueryBundle(query))
    assert max(seen) <= 2 * limit and seen[0] == limit
    ours = {node.retrieval_rank: node.score for node in ranked}
    reference = CrossEncoder(str(tiny_bert_cross_encoder_dir), device="cpu").predict([(query, d) for d in documents])
    np.testing.assert_allclose([ours[i] for i in range(len(documents))], reference, atol=1e-5)
