"""The recommended query pipeline in a few lines: hybrid RRF retrieval, then optional reranking.

``MultimodalRetriever`` is a LlamaIndex ``BaseRetriever``, so it plugs into anything that takes a
retriever; ``as_query_engine(llm=...)`` wraps it for answer synthesis with any LLM. A query is text,
an image (``QueryBundle.image_path`` or ``search(image=...)``), or both: the text drives BM25 and
the reranker, the image (when given) drives the dense branches.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, Generator, List, Literal, Optional, Protocol, Union

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from .errors import InvalidQueryError, refuse_unknown
from .inputs import MediaQueryBundle, QueryParts, read_query
from .types import Modality

__all__ = ["MediaQueryBundle", "MultimodalRetriever", "SearchMode", "build_pipeline", "check_options", "query_bundle"]

if TYPE_CHECKING:  # a RemoteMultimodalEmbedding works as well: a CPU app server need not import torch
    from .embedding import MultimodalEmbedding

SearchMode = Literal["dense", "sparse", "hybrid"]
_RETRIEVER_BASE_ARGUMENTS = ("callback_manager", "object_map", "objects", "verbose")
"""What LlamaIndex's ``BaseRetriever.__init__`` takes besides ours."""


@dataclass(frozen=True)
class _Embed:
    query: QueryParts


@dataclass(frozen=True)
class _Query:
    query: VectorStoreQuery
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class _Rerank:
    nodes: List[NodeWithScore]
    query_bundle: QueryBundle


Step = Union[_Embed, _Query, _Rerank]
"""One I/O step of a retrieval; ``MultimodalRetriever._steps`` yields them, a driver runs them."""
_STORE_OPTIONS = ("mmr", "mmr_candidates", "max_per_document", "document_key", "fusion", "rrf_k", "rrf_weights")
_MODES = {"dense": VectorStoreQueryMode.DEFAULT, "sparse": VectorStoreQueryMode.SPARSE,
          "hybrid": VectorStoreQueryMode.HYBRID}


class MultimodalRetriever(BaseRetriever):
    """Store query (dense per modality + BM25, fused by RRF in Qdrant) followed by an optional reranker.

    ``top_k`` candidates are retrieved; the reranker (if any) keeps its own ``top_n``. The search-quality
    options go to the store with every query (see ``build_pipeline``); None leaves the store's own.
    """

    def __init__(
        self,
        store: BasePydanticVectorStore,
        embedding: MultimodalEmbedding,
        reranker: Optional[BaseNodePostprocessor] = None,
        *,
        top_k: int = 20,
        mode: SearchMode = "hybrid",
        modality: Optional[Modality] = None,
        filters: Optional[MetadataFilters] = None,
        mmr: Optional[float] = None,
        mmr_candidates: Optional[int] = None,
        max_per_document: Optional[int] = None,
        document_key: Optional[str] = None,
        fusion: Optional[str] = None,
        rrf_k: Optional[int] = None,
        rrf_weights: Optional[Dict[str, float]] = None,
        min_relevance: Optional[float] = None,
        **kwargs: Any,
    ) -> None:
        refuse_unknown(type(self).__name__, kwargs, _RETRIEVER_BASE_ARGUMENTS,
                       named=("top_k", "mode", "modality", "filters", "min_relevance", *_STORE_OPTIONS))
        check_options(mode=mode, top_k=top_k, mmr=mmr, max_per_document=max_per_document, fusion=fusion,
                      rrf_k=rrf_k, rrf_weights=rrf_weights, min_relevance=min_relevance)
        by_relevance = fuses_by_relevance(store, fusion, mode, rrf_weights)
        if min_relevance is not None and not by_relevance:
            raise InvalidQueryError("min_relevance", relevance_needed(store, fusion, mode), "no_relevance")
        if by_relevance and reranker is not None and "unscored_order" in type(reranker).model_fields:
            # Retrieval scores are relevances too: a node no scorer reads is ordered among the reranked by its own.
            reranker = reranker.model_copy(update={"unscored_order": "relevance"})
        super().__init__(**kwargs)
        self.min_relevance = min_relevance
        self.store, self.embedding, self.reranker = store, embedding, reranker
        self.top_k, self.mode, self.modality, self.filters = top_k, mode, modality, filters
        given = {"mmr_threshold": mmr, "mmr_candidates": mmr_candidates, "max_per_document": max_per_document,
                 "document_key": document_key, "fusion": fusion, "rrf_k": rrf_k, "rrf_weights": rrf_weights}
        self.store_options: dict[str, Any] = {key: value for key, value in given.items() if value is not None}

    def _plan(self, query: QueryParts, embedding: Optional[List[float]]) -> VectorStoreQuery:
        text = query.text
        return VectorStoreQuery(
            query_embedding=embedding, query_str=text, similarity_top_k=self.top_k, sparse_top_k=self.top_k,
            hybrid_top_k=self.top_k, mode=_MODES[self.mode], filters=self.filters,
        )

    def _query_kwargs(self, query: QueryParts) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"query_modality": query.modality, **self.store_options}
        if self.modality:
            kwargs["modality"] = self.modality
        return kwargs

    def _steps(self, query_bundle: QueryBundle) -> Generator[Step, Any, List[NodeWithScore]]:
        """The retrieval, written once: it yields each step for a driver to run (sync or async) and is
        sent back the step's result, so ``_retrieve`` and ``_aretrieve`` share every decision."""
        query = read_query(query_bundle)
        embedding = None
        if self.mode != "sparse":
            embedding = query_bundle.embedding  # a caller that embedded the query already (LlamaIndex's convention)
            if embedding is None:
                if query.modality == "text" and query.text is None:
                    raise InvalidQueryError("text", "the query has neither text nor an example", "no_query")
                embedding = yield _Embed(query)
        result = yield _Query(self._plan(query, embedding), self._query_kwargs(query))
        nodes = _with_scores(result)
        # A query that is only an audio or video example has nothing a reranker reads (text or an image).
        rerankable = query.modality in ("text", "image") or query.text is not None
        if self.reranker is not None and nodes and rerankable:
            nodes = yield _Rerank(nodes, query_bundle)
        if self.min_relevance is not None:  # after reranking too: what is left is what clears the cut
            nodes = [n for n in nodes if n.score is not None and n.score >= self.min_relevance]
        return nodes

    def embed_query(self, query: QueryParts) -> List[float]:
        """The query's vector: its example's (image, audio or video) when it has one, else its text's."""
        if query.modality in ("audio", "video"):
            return self._media_query_embedding(query)
        if query.modality == "image":
            return self.embedding.get_image_query_embedding(query.example)
        return self.embedding.get_query_embedding(query.text)

    async def aembed_query(self, query: QueryParts) -> List[float]:
        if query.modality in ("audio", "video"):
            return await asyncio.to_thread(self._media_query_embedding, query)
        if query.modality == "image":
            return await self.embedding.aget_image_query_embedding(query.example)
        return await self.embedding.aget_query_embedding(query.text)

    def _run(self, step: Step) -> Any:
        if isinstance(step, _Embed):
            return self.embed_query(step.query)
        if isinstance(step, _Query):
            return self.store.query(step.query, **step.kwargs)
        return self.reranker.postprocess_nodes(step.nodes, step.query_bundle)  # type: ignore[union-attr]

    async def _arun(self, step: Step) -> Any:
        if isinstance(step, _Embed):
            return await self.aembed_query(step.query)
        if isinstance(step, _Query):
            return await self.store.aquery(step.query, **step.kwargs)
        return await self.reranker.apostprocess_nodes(step.nodes, step.query_bundle)  # type: ignore[union-attr]

    def _retrieve(self, query_bundle: QueryBundle) -> List[NodeWithScore]:
        steps = self._steps(query_bundle)
        try:
            step = next(steps)
            while True:
                step = steps.send(self._run(step))
        except StopIteration as done:
            return done.value

    async def _aretrieve(self, query_bundle: QueryBundle) -> List[NodeWithScore]:
        return await self.aretrieve_with(query_bundle, None)

    async def aretrieve_with(self, query_bundle: QueryBundle, calls: Optional[ModelCalls]) -> List[NodeWithScore]:
        """``aretrieve`` with the model calls (the query embedding, the reranking) run by ``calls`` instead of
        in-process: how the server puts a search's model work in the same queues as its other requests.
        None runs them here (``_arun``). LlamaIndex's retrieval callbacks are not fired on this path."""
        steps = self._steps(query_bundle)
        try:
            step = next(steps)
            while True:
                if calls is not None and isinstance(step, _Embed):
                    result = await calls.embed_query(step.query)
                elif calls is not None and isinstance(step, _Rerank):
                    result = await calls.rerank(step.nodes, step.query_bundle)
                else:
                    result = await self._arun(step)
                step = steps.send(result)
        except StopIteration as done:
            return done.value

    def _media_query_embedding(self, query: QueryParts) -> List[float]:
        return self.embedding.embed([query.example], query.modality, role="query").embeddings[0]  # type: ignore[return-value]

    def search(self, text: Optional[str] = None, *, image: Any = None, audio: Any = None,
               video: Any = None) -> List[NodeWithScore]:
        """Search by text, by an example (an image, audio or video: path or URL), or text and one example.
        The example drives the dense search, the text BM25 and the rerankers."""
        return self.retrieve(query_bundle(text, image=image, audio=audio, video=video))

    def as_query_engine(self, llm: Any = None, *, multimodal: bool = False, evidence: Optional[bool] = None,
                        context_px: Optional[int] = 256, media: bool = False, **kwargs: Any) -> Any:
        """A LlamaIndex ``RetrieverQueryEngine`` over this retriever, answering with ``llm``. When the retriever
        finds nothing (``min_relevance`` cut every hit), it answers ``abstain.NO_EVIDENCE`` without calling
        the LLM (``abstain.AbstainingQueryEngine``).

        ``multimodal=True`` (a chat LLM that reads images) sends each retrieved image to the LLM as an
        image block, followed by its words when it has any (a caption, a PDF page's text); text nodes go
        as text. Images are loaded by this package's rules (paths, PDF page renders, and URLs only when
        the embedding allows them: ``allow_urls``, within its limits), not fetched by LlamaIndex.

        ``evidence`` (default: on with ``multimodal``) finds where each result matched
        (``evidence.EvidenceLocator``, after any other postprocessor): an image or page then goes as the
        crops of its regions plus the whole downscaled to ``context_px`` on its longer side (None: no
        context image), instead of whole; audio and video spans go as audio and video blocks with
        ``media=True`` (an LLM that reads them), else named in words. The source nodes carry the evidence
        (``evidence.node_evidence``). Other ``kwargs`` go to ``RetrieverQueryEngine.from_args``.
        """
        from .abstain import AbstainingQueryEngine

        postprocessors = list(kwargs.pop("node_postprocessors", None) or [])
        if evidence or (evidence is None and multimodal):
            from .evidence import EvidenceLocator

            postprocessors.append(EvidenceLocator(self.embedding, self.store))
        if multimodal:
            from .answer import ImageAnswerBlocks

            postprocessors.append(ImageAnswerBlocks(self.embedding.fetch_options, context_px, media))
            kwargs["multimodal"] = True
        if postprocessors:
            kwargs["node_postprocessors"] = postprocessors
        return AbstainingQueryEngine.from_args(self, llm=llm, **kwargs)


def build_pipeline(
    store: BasePydanticVectorStore,
    embedding: MultimodalEmbedding,
    reranker: Optional[BaseNodePostprocessor] = None,
    **kwargs: Any,
) -> MultimodalRetriever:
    """The recommended pipeline: retrieve (hybrid RRF) -> rerank -> nodes, as a LlamaIndex retriever.

    Parameters
    ----------
    store
        The vector store to search, usually a ``MultimodalQdrantStore``.
    embedding
        The ``MultimodalEmbedding`` the store was filled with; it embeds text and image queries.
    reranker
        Optional node postprocessor (e.g. ``MultimodalReranker``) applied to the candidates; it keeps its own ``top_n``.
    top_k : int, default 20
        Candidates retrieved from the store (give the reranker more than it keeps).
    mode : "hybrid" | "dense" | "sparse", default "hybrid"
        hybrid: dense text and image vectors plus BM25 words, fused by RRF; dense: meaning only;
        sparse: exact words only (BM25), which needs query text.
    modality : "text" | "image" | None, default None
        Only return nodes of this modality ("image" includes captioned images and PDF pages).
    filters : MetadataFilters | None, default None
        LlamaIndex metadata filters applied inside the store query.
    mmr : float | None, default None
        Diversity: MMR's lambda (LlamaIndex's ``mmr_threshold``; 1 = relevance only, 0.5 a balance) as the
        last stage over the fused candidates, in dense or hybrid mode; ``mmr_candidates`` of them (default 5 x top_k).
    max_per_document : int | None, default None
        At most this many hits per document (``ref_doc_id``, or the metadata key ``document_key``, e.g.
        ``"file_path"`` so a PDF's pages count as one), the rest filled from further down.
    fusion : "relevance" | "rrf" | "dbsf" | None, default None (the store's)
        How the ranked lists are fused: by relevance (each hit's standing above its own vector's background,
        with its words: a score in [0, 1] with one meaning for every modality), or by rank (RRF; ``rrf_k`` and
        ``rrf_weights``, e.g. ``{"image": 2, "bm25": 0.5}``, tune it), or DBSF.
    min_relevance : float | None, default None
        With relevance scores: drop hits below this relevance, after reranking too; a query with nothing
        relevant returns no nodes (and ``as_query_engine`` answers "no relevant evidence found").

    ``search(text, image=...)`` queries by text, image or both: the image drives the dense search, the
    text drives BM25 and the reranker. ``as_query_engine(llm=..., multimodal=True)`` answers with images.
    """
    return MultimodalRetriever(store, embedding, reranker, **kwargs)


def _with_scores(result: Any) -> List[NodeWithScore]:
    similarities = result.similarities or [None] * len(result.nodes or [])
    return [NodeWithScore(node=node, score=score) for node, score in zip(result.nodes or [], similarities)]


class ModelCalls(Protocol):
    """Who runs a retrieval's model work (``MultimodalRetriever.aretrieve_with``): the query's embedding
    and the reranking. The server's implementation queues both in its model lanes."""

    async def embed_query(self, query: QueryParts) -> List[float]: ...

    async def rerank(self, nodes: List[NodeWithScore], query_bundle: QueryBundle) -> List[NodeWithScore]: ...


EXAMPLE_KINDS: tuple[Modality, ...] = ("image", "audio", "video")
MAX_RRF_K = 100_000
"""RRF's k above this makes every rank score alike (1/(k+rank) flattens); the engines take a u32."""


def query_bundle(text: Optional[str], *, image: Any = None, audio: Any = None, video: Any = None) -> QueryBundle:
    """The query as LlamaIndex's retrievers take it: text and at most one example (image, audio or video;
    a path, URL, ``data:`` URI or bytes). The example drives the dense search, the text BM25 and rerankers."""
    examples = {"image": image, "audio": audio, "video": video}
    given = [kind for kind in EXAMPLE_KINDS if examples[kind] is not None]
    if len(given) > 1:
        raise InvalidQueryError(given[1], f"a search takes one example at a time, got {given}", "two_examples")
    if text is None and not given:
        raise InvalidQueryError("text", "a search needs text, an image, audio or video example, or both", "no_query")
    if given and given[0] != "image":
        kind = given[0]
        return MediaQueryBundle(query_str=text or "", media=examples[kind], media_kind=kind)  # type: ignore[arg-type]
    return QueryBundle(query_str=text or "", image_path=image)


def effective_fusion(store: Any, fusion: Optional[str], rrf_weights: Optional[Any] = None) -> str:
    """The fusion a search runs: the one asked for; else RRF when RRF weights are given; else the store's."""
    return fusion or ("rrf" if rrf_weights else getattr(store, "fusion", None) or "rrf")


def fuses_by_relevance(store: Any, fusion: Optional[str], mode: str, rrf_weights: Optional[Any] = None) -> bool:
    """Whether a search's scores are relevances: fused by relevance (asked, or the store's own), in a
    dense or hybrid search of an index of single vectors."""
    schema = getattr(store, "schema", None)
    late = bool(schema is not None and schema.late_interaction)
    return effective_fusion(store, fusion, rrf_weights) == "relevance" and mode != "sparse" and not late


def relevance_needed(store: Any, fusion: Optional[str], mode: str) -> str:
    """Why a search has no relevance scores to cut (``min_relevance``), in words."""
    if mode == "sparse":
        return "cuts relevance scores, and a sparse search scores words (BM25) alone: use mode 'dense' or 'hybrid'"
    schema = getattr(store, "schema", None)
    if schema is not None and schema.late_interaction:
        return "cuts relevance scores, and a late-interaction index scores by MaxSim: leave min_relevance out"
    return f"cuts relevance scores, and this search fuses by {effective_fusion(store, fusion)!r}: use fusion 'relevance'"


def check_options(*, mode: str = "hybrid", top_k: int = 1, mmr: Optional[float] = None,
                  max_per_document: Optional[int] = None, fusion: Optional[str] = None, rrf_k: Optional[int] = None,
                  rrf_weights: Optional[Dict[str, float]] = None, min_relevance: Optional[float] = None) -> None:
    """The retrieval options a search can't take, refused before anything runs, each naming its option
    (``InvalidQueryError.param``): the one set of checks behind ``build_pipeline``, the CLI, eval and the server."""
    if mode not in _MODES:
        raise InvalidQueryError("mode", f"must be one of {list(_MODES)}, got {mode!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise InvalidQueryError("top_k", f"must be an integer of at least 1, got {top_k!r}")
    if mmr is not None:
        if not 0.0 <= mmr <= 1.0:
            raise InvalidQueryError("mmr", f"MMR's lambda must be between 0 and 1, got {mmr}")
        if mode == "sparse":
            raise InvalidQueryError("mmr", "MMR compares the hits' dense vectors: use mode 'dense' or 'hybrid' with "
                                           "it, not 'sparse'")
    if max_per_document is not None and max_per_document < 1:
        raise InvalidQueryError("max_per_document", f"must be at least 1, got {max_per_document}")
    from .store.stages import FUSIONS

    if fusion is not None and fusion not in FUSIONS:
        raise InvalidQueryError("fusion", f"must be one of {list(FUSIONS)}, got {fusion!r}")
    if rrf_k is not None and (isinstance(rrf_k, bool) or not isinstance(rrf_k, int) or not 1 <= rrf_k <= MAX_RRF_K):
        raise InvalidQueryError("rrf_k", f"must be an integer from 1 to {MAX_RRF_K}, got {rrf_k!r}")
    if min_relevance is not None and (isinstance(min_relevance, bool) or not isinstance(min_relevance, (int, float))
                                      or not 0.0 <= min_relevance <= 1.0):
        raise InvalidQueryError("min_relevance", f"must be a relevance between 0 and 1, got {min_relevance!r}")
    if rrf_weights is not None:
        if fusion == "dbsf":
            raise InvalidQueryError("rrf_weights", "weights apply to RRF; DBSF normalises each list's scores and "
                                                   "takes no weights")
        if fusion == "relevance":
            raise InvalidQueryError("rrf_weights", "weights apply to RRF; relevance fusion weighs each hit by its "
                                                   "standing above its own background and takes none")
        from .store.settings import check_weights

        try:
            check_weights(rrf_weights)
        except ValueError as exc:
            raise InvalidQueryError("rrf_weights", str(exc)) from None
