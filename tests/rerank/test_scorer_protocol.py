"""The ``Scorer`` protocol: four members make a scorer; what it can do besides it declares (``abilities``),
and the reranker acts on the declaration, never on which attributes happen to exist."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from llama_index_mm_st.images import DecodeOptions
from llama_index_mm_st.multivector import attach_multivector
from llama_index_mm_st.rerank import MultimodalReranker, Scorer
from llama_index_mm_st.rerank.scorers.base import (NO_ABILITIES, DeclaresAbilities, LoadedParts, MultivectorScorer, ScorerAbilities,
                                                   abilities_of)

WIDTH = 4


class LengthScorer:
    """The protocol's four members only: scores a text by its length."""

    name = "length"
    pairs = frozenset({("text", "text")})
    decode_options = DecodeOptions()

    def __init__(self) -> None:
        self.calls: list[str] = []

    def score(self, query: LoadedParts, documents: Sequence[LoadedParts], batch_size: int) -> list[float]:
        self.calls.append("score")
        return [float(len(d.text or "")) for d in documents]

    def score_multivectors(self, query: LoadedParts, multivectors: Sequence[np.ndarray]) -> list[float]:
        """Has the method, but does not declare the ability: never given stored multivectors."""
        self.calls.append("score_multivectors")
        return [0.0 for _ in multivectors]


class StoredScorer(LengthScorer):
    """Declares that it scores stored multivectors of width ``WIDTH``, and an instruction."""

    name = "stored"

    @property
    def abilities(self) -> ScorerAbilities:
        return ScorerAbilities(multivector_dim=WIDTH, instruction="find the invoice")

    def score_multivectors(self, query: LoadedParts, multivectors: Sequence[np.ndarray]) -> list[float]:
        self.calls.append("score_multivectors")
        return [float(matrix.sum()) for matrix in multivectors]


def _candidates() -> list[NodeWithScore]:
    nodes = []
    for i, text in enumerate(["a", "bbbbbbbb", "ccc"]):
        node = TextNode(text=text, id_=f"n{i}")
        attach_multivector(node, np.full((2, WIDTH), float(i), dtype=np.float32))
        nodes.append(NodeWithScore(node=node, score=1.0))
    return nodes


def test_a_scorer_with_the_four_members_is_a_scorer_and_declares_nothing():
    plain = LengthScorer()
    assert isinstance(plain, Scorer) and not isinstance(plain, DeclaresAbilities)
    assert abilities_of(plain) is NO_ABILITIES
    reranker = MultimodalReranker(plain)
    ranked = reranker.postprocess_nodes(_candidates(), QueryBundle("invoice"))
    assert [n.node.node_id for n in ranked] == ["n1", "n2", "n0"]  # by length: score() ran
    assert plain.calls == ["score"]  # a score_multivectors it did not declare is not called
    assert reranker.describe() == [{"scorer": "length", "backend": "torch", "reason": "a Scorer given as an object"}]


def test_a_declared_ability_is_what_the_reranker_uses():
    stored = StoredScorer()
    assert isinstance(stored, MultivectorScorer) and abilities_of(stored).multivector_dim == WIDTH
    reranker = MultimodalReranker(stored, instruction="find the invoice")  # accepted: a scorer declares it
    ranked = reranker.postprocess_nodes(_candidates(), QueryBundle("invoice"))
    assert stored.calls == ["score_multivectors"]  # stored multivectors scored, nothing encoded again
    assert [n.node.node_id for n in ranked] == ["n2", "n1", "n0"]  # by the stored matrices' sums


def test_an_instruction_no_scorer_declares_is_refused():
    import pytest

    with pytest.raises(ValueError, match="instruction"):
        MultimodalReranker(LengthScorer(), instruction="find the invoice")
