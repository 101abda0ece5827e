"""One search, written once: what ``mmst search``, ``/v1/search`` and ``mmst eval`` each run.

A front end states its search as a ``SearchRequest`` and calls ``search`` (or ``asearch``). This module
owns every decision between the request and the hits:

- the query checks (empty text, one example at most, a sparse search needs words, the model must read
  the example's modality) and the option checks (``pipeline.check_options``), each an
  ``InvalidQueryError`` whose ``param`` names the request field; front ends map ``param`` to their own
  wording (a CLI flag, a server's 400) and never read the message to decide anything;
- how many candidates the reranker sees (``RERANK_CANDIDATES_PER_RESULT`` per result asked for), and
  that the answer holds ``top_k`` hits;
- what the scores are (``hits.score_kind``), from the mode, the rerankers and the index.

The model work (the query embedding, the reranking) runs in-process, or through ``calls``
(``pipeline.ModelCalls``): the server passes its model lanes there, so a search waits in the same
queues, under the same admission and budgets, as ``/v1/embeddings`` and ``/v1/rerank``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, List, Mapping, Optional, Sequence

from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import BasePydanticVectorStore, MetadataFilters

from .defaults import RERANK_CANDIDATES_PER_RESULT
from .errors import InvalidQueryError, ItemError
from .hits import ScoreKind, SearchHit, score_kind, search_hits
from .pipeline import (
    EXAMPLE_KINDS,
    ModelCalls,
    MultimodalRetriever,
    SearchMode,
    check_options,
    effective_fusion,
    fuses_by_relevance,
    query_bundle,
    relevance_needed,
)
from .inputs import read_query
from .types import Modality

__all__ = ["SearchRequest", "SearchResult", "SearchSetup", "asearch", "search"]


@dataclass(frozen=True)
class SearchRequest:
    """One search as every front end states it.

    ``text`` and at most one example (``image``, ``audio`` or ``video``: a path, URL, ``data:`` URI or
    bytes): the example drives the dense search, the text BM25 and the rerankers. ``rerank``: use the
    reranker given to ``search`` (if any). The other fields are ``build_pipeline``'s options.
    """

    text: Optional[str] = None
    image: Any = None
    audio: Any = None
    video: Any = None
    top_k: int = 10
    mode: SearchMode = "hybrid"
    modality: Optional[Modality] = None
    filters: Optional[MetadataFilters] = None
    rerank: bool = True
    mmr: Optional[float] = None
    max_per_document: Optional[int] = None
    document_key: Optional[str] = None
    fusion: Optional[str] = None
    rrf_k: Optional[int] = None
    rrf_weights: Optional[Mapping[str, float]] = None
    min_relevance: Optional[float] = None
    """Keep only hits at or above this relevance (after reranking too); with none left, the result says
    so (``SearchResult.abstained``) and names the best hit it dropped. Needs relevance scores."""
    evidence: bool = False
    """Find where each returned hit matched (``SearchHit.evidence``: regions, spans, passages), for the
    ``top_k`` hits only, after reranking."""

    @property
    def example(self) -> tuple[Optional[Modality], Any]:
        """(kind, value) of the example, or (None, None) for a text-only search."""
        kind = next((kind for kind in EXAMPLE_KINDS if getattr(self, kind) is not None), None)
        return kind, None if kind is None else getattr(self, kind)

    def check(self) -> None:
        """The checks that need nothing but the request (no store, no model): fail before anything loads."""
        if self.text is not None and not isinstance(self.text, str):
            raise InvalidQueryError("text", f"must be a string, got {type(self.text).__name__}")
        if self.text is not None and not self.text.strip():
            raise InvalidQueryError("text", "the query text is empty (only whitespace)", "empty_text")
        query_bundle(self.text, image=self.image, audio=self.audio, video=self.video)  # one example, or text
        kind, _ = self.example
        if self.mode == "sparse" and kind is not None:
            noun = {"image": "an image", "audio": "an audio clip", "video": "a video"}[kind]
            raise InvalidQueryError("mode", f"'sparse' matches exact words and {noun} has none", "sparse_example")
        check_options(mode=self.mode, top_k=self.top_k, mmr=self.mmr, max_per_document=self.max_per_document,
                      fusion=self.fusion, rrf_k=self.rrf_k,
                      rrf_weights=None if self.rrf_weights is None else dict(self.rrf_weights),
                      min_relevance=self.min_relevance)


@dataclass(frozen=True)
class SearchResult:
    """The hits (ranked from 1), the nodes they were made from, and what their scores are.

    ``abstained``: ``min_relevance`` left no hit (the index holds nothing relevant enough); ``best`` is
    then the best hit it dropped (None when the search found nothing at all)."""

    hits: List[SearchHit]
    nodes: List[NodeWithScore]
    score_kind: ScoreKind
    request: SearchRequest = field(repr=False)
    abstained: bool = False
    best: Optional[SearchHit] = None

    def to_dicts(self) -> List[dict[str, Any]]:
        """The hits as ``mmst search --json`` prints them and ``/v1/search`` sends them."""
        return [hit.to_dict() for hit in self.hits]

    @property
    def abstention(self) -> str:
        """What an abstaining search says in one line: "nothing relevant (best: 0.21, photo.jpg)"."""
        if self.best is None:
            return "nothing relevant (the index returned nothing)"
        return f"nothing relevant (best: {self.best.score or 0.0:.2f}, {hit_label(self.best)})"


def hit_label(hit: SearchHit) -> str:
    """A hit in a few words: its file's name (and page or time), else the start of its text, else its id."""
    if hit.source:
        name = hit.source.rstrip("/").rsplit("/", 1)[-1] or hit.source
        if hit.page is not None:
            return f"{name} page {hit.page}"
        return name if hit.time_s is None else f"{name} at {hit.time_s:.1f} s"
    text = " ".join(hit.text.split())
    return (text[:40] + "...") if len(text) > 40 else (text or hit.id)


def search(store: BasePydanticVectorStore, embedding: Any, reranker: Optional[BaseNodePostprocessor] = None,
           request: Optional[SearchRequest] = None, **fields: Any) -> SearchResult:
    """Run one search. Give a ``SearchRequest``, or its fields as keywords (``search(store, emb, text="x")``).

    Raises ``InvalidQueryError`` (naming the field) for a search the request makes impossible, before any
    model or store work where the request alone shows it, and for an example that can't be read.
    """
    request = _request(request, fields)
    retriever, bundle = _prepare(store, embedding, reranker, request)
    if request.mode != "sparse":
        with _ExampleErrors(request):
            bundle.embedding = retriever.embed_query(read_query(bundle))
    result = _result(store, request, retriever, retriever.retrieve(bundle))
    if request.evidence:
        from .evidence.attach import attach_evidence

        result = _with_nodes(result, attach_evidence(result.nodes, embedding, bundle, store))
    return result


async def asearch(store: BasePydanticVectorStore, embedding: Any, reranker: Optional[BaseNodePostprocessor] = None,
                  request: Optional[SearchRequest] = None, *, calls: Optional[ModelCalls] = None,
                  **fields: Any) -> SearchResult:
    """``search`` for async callers; ``calls`` runs the model work elsewhere (the server's lanes)."""
    request = _request(request, fields)
    retriever, bundle = _prepare(store, embedding, reranker, request)
    if request.mode != "sparse":
        query = read_query(bundle)
        with _ExampleErrors(request):
            bundle.embedding = await (calls.embed_query(query) if calls is not None else retriever.aembed_query(query))
    result = _result(store, request, retriever, await retriever.aretrieve_with(bundle, calls))
    if request.evidence:
        from .evidence.attach import aattach_evidence

        run = getattr(calls, "embed_evidence", None)  # the server's embedding lane, when it runs the calls
        result = _with_nodes(result, await aattach_evidence(result.nodes, embedding, bundle, store, run=run))
    return result


def _with_nodes(result: SearchResult, nodes: List[NodeWithScore]) -> SearchResult:
    """The result rebuilt from ``nodes`` (the same hits, now carrying their evidence)."""
    return replace(result, hits=search_hits(nodes, result.score_kind), nodes=nodes)


def candidates(request: SearchRequest, reranked: bool) -> int:
    """How many hits the store returns: ``top_k``, or ``RERANK_CANDIDATES_PER_RESULT`` times that for a
    reranker to choose from."""
    return request.top_k * RERANK_CANDIDATES_PER_RESULT if reranked else request.top_k


def result_score_kind(store: Any, request: SearchRequest, rerankers: int) -> ScoreKind:
    """What the hits' scores are for this request over this store."""
    schema = getattr(store, "schema", None)
    late = bool(schema is not None and schema.late_interaction)
    sparse: Sequence[str] = schema.sparse_vectors if schema is not None else ("bm25",)
    fusion = effective_fusion(store, request.fusion, request.rrf_weights)
    return score_kind(request.mode, rerankers, late, fusion=fusion, mmr=request.mmr is not None, sparse=sparse)


# ---------------------------------------------------------------- the steps


def _request(request: Optional[SearchRequest], fields: dict[str, Any]) -> SearchRequest:
    if request is not None and fields:
        raise TypeError("give a SearchRequest or its fields as keywords, not both")
    if request is None:
        from .errors import refuse_unknown

        refuse_unknown("search", fields, SearchRequest.__dataclass_fields__)
        request = SearchRequest(**fields)
    return request


def _active_reranker(reranker: Optional[BaseNodePostprocessor], request: SearchRequest) -> Optional[BaseNodePostprocessor]:
    """The reranker this search uses, keeping ``top_k`` results (a copy when its own ``top_n`` differs)."""
    if reranker is None or not request.rerank:
        return None
    if "top_n" in type(reranker).model_fields and getattr(reranker, "top_n") != request.top_k:
        reranker = reranker.model_copy(update={"top_n": request.top_k})
    return reranker


def _prepare(store: BasePydanticVectorStore, embedding: Any, reranker: Optional[BaseNodePostprocessor],
             request: SearchRequest) -> tuple[MultimodalRetriever, QueryBundle]:
    request.check()
    kind, _ = request.example
    if kind is not None and not embedding.supports(kind):
        reads = ", ".join(m for m in ("text", "image", "audio", "video") if embedding.supports(m))
        raise InvalidQueryError(kind, f"the model {embedding.model_name} cannot read {kind}; it reads {reads}",
                                "unsupported_modality")
    if request.mode == "sparse":
        _check_words(store, request.text or "")
    if request.min_relevance is not None and not fuses_by_relevance(store, request.fusion, request.mode,
                                                                    request.rrf_weights):
        raise InvalidQueryError("min_relevance", relevance_needed(store, request.fusion, request.mode), "no_relevance")
    active = _active_reranker(reranker, request)
    retriever = MultimodalRetriever(
        store, embedding, active, top_k=candidates(request, active is not None), mode=request.mode,
        modality=request.modality, filters=request.filters, mmr=request.mmr, max_per_document=request.max_per_document,
        document_key=request.document_key, fusion=request.fusion, rrf_k=request.rrf_k,
        rrf_weights=None if request.rrf_weights is None else dict(request.rrf_weights))
    return retriever, query_bundle(request.text, image=request.image, audio=request.audio, video=request.video)


def _check_words(store: Any, text: str) -> None:
    """A sparse search needs a word the index's sparse vectors can match (stop words and punctuation alone
    give BM25 none); a learned sparse model expands any text, so it is not asked."""
    from .store import MultimodalQdrantStore

    if not isinstance(store, MultimodalQdrantStore):
        return
    schema = store.schema
    if schema is not None and schema.learned_sparse is not None:
        return
    if not len(store.sparse_query_vector(text).indices):
        raise InvalidQueryError("text", f"mode 'sparse' matches exact words, and {text!r} has none it can search "
                                        "for (only stop words or punctuation)", "no_words")


class _ExampleErrors:
    """Around the query's embedding: an example that can't be read (a corrupt image, a missing file) is the
    request's ``InvalidQueryError`` naming that field, with the item's own reason."""

    def __init__(self, request: SearchRequest) -> None:
        self.kind = request.example[0]

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: Optional[BaseException], traceback: Any) -> bool:
        if self.kind is not None and isinstance(error, ItemError):
            raise InvalidQueryError(self.kind, error.reason, "bad_example") from error
        return False


def _result(store: Any, request: SearchRequest, retriever: MultimodalRetriever,
            nodes: List[NodeWithScore]) -> SearchResult:
    """The first ``top_k`` nodes as hits, with the kind of score they carry: the rerankers' where they ran
    (not for an audio or video example alone: a reranker reads text and images), else the store's."""
    reranker = retriever.reranker
    kind, _ = request.example
    reranked = reranker is not None and (request.text is not None or kind in (None, "image"))
    rerankers = (len(getattr(reranker, "scorers", ())) or 1) if reranked else 0
    score = result_score_kind(store, request, rerankers)
    cut = request.min_relevance
    if cut is not None:
        kept = [n for n in nodes if n.score is not None and n.score >= cut]
        if not kept:
            best = search_hits(nodes[:1], score)
            return SearchResult([], [], score, request, abstained=True, best=best[0] if best else None)
        nodes = kept
    nodes = nodes[: request.top_k]
    return SearchResult(search_hits(nodes, score), nodes, score, request)


@dataclass(frozen=True)
class SearchSetup:
    """A store, its embedding and an optional reranker, with the options every search of a run shares:
    what ``evaluation.evaluate`` runs query after query (``mmst eval``'s rows)."""

    store: Any
    embedding: Any
    reranker: Optional[BaseNodePostprocessor] = None
    request: SearchRequest = field(default_factory=SearchRequest)

    def run(self, text: Optional[str] = None, **changes: Any) -> SearchResult:
        """One search: this setup's request with ``text``, an example (``image=``, ...) and other fields changed."""
        return search(self.store, self.embedding, self.reranker, replace(self.request, text=text, **changes))
