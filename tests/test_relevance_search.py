"""Abstention through the search step and the query engine, over the relevance simulator: a query whose
concept the index lacks gets "nothing relevant (best: ...)" and no LLM call; one it holds gets hits that
clear the cut. A cut needs relevance scores, and says so otherwise."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from llama_index.core.llms import CompletionResponse, MockLLM
from llama_index.core.bridge.pydantic import Field

from llama_index_mm_st import build_pipeline
from llama_index_mm_st.abstain import NO_EVIDENCE
from llama_index_mm_st.errors import InvalidQueryError
from llama_index_mm_st.search import SearchRequest, search
from llama_index_mm_st.store import MultimodalQdrantStore
from tests.fixtures.relevance_sim import SIGLIP, nodes, simulate

SIZE = dict(texts=400, images=400, captioned=40, filename_captions=40, pdf_pages=40, audio=80, families=60,
            absent_families=8, queries=20, unanswerable=20)


class SimEmbedding:
    """The simulator's query vectors, looked up by the query's words (what a model would embed)."""

    model_name = "sim"

    def __init__(self, corpus: Any) -> None:
        self.vectors = {q.words: q.vector.tolist() for q in corpus.queries}

    def supports(self, modality: str) -> bool:
        return modality == "text"

    def get_query_embedding(self, text: str) -> list[float]:
        return self.vectors[text]

    async def aget_query_embedding(self, text: str) -> list[float]:
        return self.vectors[text]


class CountingLLM(MockLLM):
    calls: int = Field(default=0)

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        self.calls += 1
        return super().complete(prompt, formatted=formatted, **kwargs)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, MultimodalQdrantStore, SimEmbedding]]:
    corpus = simulate(SIGLIP, seed=5, **SIZE)
    store = MultimodalQdrantStore(path=str(tmp_path_factory.mktemp("abstain")))
    store.add(nodes(corpus))
    yield corpus, store, SimEmbedding(corpus)
    store.close()


def test_the_search_step_abstains_and_names_the_best_hit(world) -> None:  # type: ignore[no-untyped-def]
    corpus, store, embedding = world
    silent = [search(store, embedding, text=q.words, min_relevance=0.5) for q in corpus.unanswerable]
    abstained = [r for r in silent if r.abstained]
    assert len(abstained) >= 0.8 * len(silent)
    result = abstained[0]
    assert result.hits == [] and result.nodes == [] and result.score_kind == "relevance"
    assert result.best is not None and result.best.score < 0.5
    assert result.abstention.startswith(f"nothing relevant (best: {result.best.score:.2f}, ")
    plain = search(store, embedding, text=corpus.unanswerable[0].words)
    assert not plain.abstained and len(plain.hits) == 10  # without a cut: ten hits, each saying how weak it is
    answered = search(store, embedding, text=corpus.answerable[0].words, min_relevance=0.5)
    assert not answered.abstained and answered.hits and all(h.score >= 0.5 for h in answered.hits)
    assert {h.id for h in answered.hits} & corpus.answerable[0].relevant


def test_a_cut_needs_relevance_scores(world) -> None:  # type: ignore[no-untyped-def]
    corpus, store, embedding = world
    words = corpus.answerable[0].words
    with pytest.raises(InvalidQueryError) as caught:
        search(store, embedding, text=words, min_relevance=0.5, fusion="rrf")
    assert caught.value.param == "min_relevance" and "fuses by 'rrf'" in caught.value.reason
    with pytest.raises(InvalidQueryError) as caught:
        search(store, embedding, text=words, min_relevance=0.5, mode="sparse")
    assert caught.value.param == "min_relevance"
    with pytest.raises(InvalidQueryError) as caught:
        SearchRequest(text=words, min_relevance=1.5).check()
    assert caught.value.param == "min_relevance"


def test_the_query_engine_answers_no_relevant_evidence_without_the_llm(world) -> None:  # type: ignore[no-untyped-def]
    corpus, store, embedding = world
    answered = corpus.answerable[0]
    retriever = build_pipeline(store, embedding, top_k=5, min_relevance=0.5)
    quiet = next(q for q in corpus.unanswerable if not retriever.retrieve(q.words))
    llm = CountingLLM()
    engine = retriever.as_query_engine(llm=llm)
    response = engine.query(quiet.words)
    assert str(response) == NO_EVIDENCE and response.metadata == {"abstained": True} and llm.calls == 0
    assert response.source_nodes == []
    response = engine.query(answered.words)
    assert str(response) != NO_EVIDENCE and llm.calls == 1 and response.source_nodes


async def test_the_async_query_engine_abstains_too(world) -> None:  # type: ignore[no-untyped-def]
    corpus, store, embedding = world
    retriever = build_pipeline(store, embedding, top_k=5, min_relevance=0.5)
    quiet = next(q for q in corpus.unanswerable if not retriever.retrieve(q.words))
    llm = CountingLLM()
    response = await retriever.as_query_engine(llm=llm).aquery(quiet.words)
    assert str(response) == NO_EVIDENCE and llm.calls == 0


def test_min_relevance_applies_after_reranking(world) -> None:  # type: ignore[no-untyped-def]
    """A reranker's relevance is cut too: one that finds everything irrelevant leaves nothing."""
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.schema import NodeWithScore

    class Doubting(BaseNodePostprocessor):
        def _postprocess_nodes(self, nodes, query_bundle=None):  # type: ignore[no-untyped-def]
            return [NodeWithScore(node=n.node, score=0.1) for n in nodes]

    corpus, store, embedding = world
    words = corpus.answerable[0].words
    assert search(store, embedding, text=words, min_relevance=0.5).hits
    result = search(store, embedding, Doubting(), SearchRequest(text=words, min_relevance=0.5))
    assert result.abstained and result.best is not None and result.best.score == pytest.approx(0.1)
