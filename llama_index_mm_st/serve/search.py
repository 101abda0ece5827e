"""``/v1/search``: the library's search step (``search.asearch``) over the served store, with its model work
in the server's lanes.

The body becomes a ``search.SearchRequest``; the step checks it, embeds the query, queries the store,
reranks and returns the hits ``mmst search --json`` prints. Its model calls go through ``LaneCalls``: the
query's embedding waits in the embedding lane beside ``/v1/embeddings`` items, and the reranking in the
reranker lane beside ``/v1/rerank`` requests, under the same admission (429 with ``Retry-After``), cost
budgets, wait bounds and hang detection, with the queue depth in ``/metrics``. One scheduler per model.
Refusals are the step's ``InvalidQueryError``s, answered 400 with the field as ``param``.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any, List, Optional

from llama_index.core.schema import NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import MetadataFilters

from ..errors import InvalidQueryError, UnsupportedFilterError
from ..inputs import QueryParts
from ..search import SearchRequest, asearch
from ..types import Modality
from .embed import EmbedService
from .errors import APIError
from .items import Prepared, data_uri_payload, decode_for_model, prepare_media
from .metrics import Metrics
from .rerank import RerankService
from .settings import ServeSettings

EXAMPLE_KINDS = ("image", "audio", "video")
WIRE_NAMES = {"text": "query"}
"""``SearchRequest`` fields whose body name differs (the body's text is ``query``, as in ``/v1/rerank``)."""
QUALITY_OPTIONS = ("mmr", "max_per_document", "fusion", "rrf_k", "rrf_weights", "min_relevance")
"""The body's search-quality fields, passed to the search step under the same names when given."""


class LaneCalls:
    """A search's model work in the server's lanes (``pipeline.ModelCalls``). The example was read and
    prepared (decoded, header-checked) before the search, in the request's own worker thread."""

    def __init__(self, embed: EmbedService, rerank: Optional[RerankService], example: Optional[Prepared],
                 kind: Optional[Modality]) -> None:
        self.embed, self.rerank_service, self.example, self.kind = embed, rerank, example, kind

    async def embed_query(self, query: QueryParts) -> List[float]:
        if self.example is None or self.kind is None:
            prepared = await self.embed.prepare([query.text or ""], "text", "query")
            embedded = await self.embed.embed(prepared, "text", "query", "query", indexed=False)
        else:
            embedded = await self.embed.embed([self.example], self.kind, "query", self.kind, indexed=False)
        return embedded.vectors[0]

    async def embed_evidence(self, call: Any) -> Any:
        """One of a search's evidence calls (crops, windows, sentences of its hits) in the embedding lane."""
        from .evidence import evidence_jobs, evidence_rows

        # urgent as the query's own vector is: a person waits for this search (bulk embedding can wait)
        return evidence_rows(await self.embed.lane.run(evidence_jobs(call, self.embed.rules), urgent=True))

    async def rerank(self, nodes: List[NodeWithScore], query_bundle: QueryBundle) -> List[NodeWithScore]:
        if self.rerank_service is None:  # the search step asks only when a reranker was given
            raise APIError(400, "this server has no reranker", code="no_reranker", param="rerank")
        return await self.rerank_service.rerank_nodes(query_bundle, nodes)


class SearchService:
    """Searches of one store with the served embedding (and, on request, the served rerankers)."""

    def __init__(self, store: Any, embed: EmbedService, rerank: Optional[RerankService], settings: ServeSettings,
                 metrics: Metrics) -> None:
        self.store, self.embed, self.rerank = store, embed, rerank
        self.metrics = metrics

    async def search(self, body: Any) -> dict[str, Any]:
        if body.rerank and self.rerank is None:
            raise APIError(400, "this server has no reranker (start it with --rerank MODEL)", code="no_reranker",
                           param="rerank")
        request = _request(body)
        try:
            request.check()  # refused before the example is read or a lane is entered
            kind, value = request.example
            example = None
            if kind is not None:
                self.embed.check_modality(kind)
                example, readable = await self._example(value, kind)
                request = replace(request, **{kind: readable})
            reranker = self.rerank.reranker if body.rerank and self.rerank is not None else None
            calls = LaneCalls(self.embed, self.rerank, example, kind)
            result = await asearch(self.store, self.embed.embedding, reranker, request, calls=calls)
        except InvalidQueryError as exc:
            param = WIRE_NAMES.get(exc.param, exc.param)
            raise APIError(400, f"{param}: {exc.reason}", code=exc.code, param=param) from None
        except UnsupportedFilterError as exc:
            raise APIError(400, str(exc), code="unsupported_filter", param="filters") from None
        self.metrics.items.labels("search").inc()
        answer = {"object": "list", "results": result.to_dicts(), "score_kind": result.score_kind,
                  "model": self.embed.embedding.model_name}
        if request.min_relevance is not None:  # said either way, so a client need not guess from an empty list
            answer["abstained"] = result.abstained
            if result.abstained:
                answer["message"] = result.abstention
                answer["best"] = None if result.best is None else result.best.to_dict()
        return answer

    async def _example(self, value: str, kind: Modality) -> tuple[Prepared, Any]:
        """The example ready for the embedding lane (an image decoded as the model will read it), and as the
        library reads it for the rest of the search (the reranker): a ``data:`` URI of an image's bytes, or
        the bytes of audio or video. A URL is fetched once, here, under the server's URL policy."""
        rules = self.embed.rules

        def read() -> tuple[Prepared, Any]:
            prepared = prepare_media(value, kind, kind, rules)
            if kind != "image":
                return prepared, prepared.payload
            uri = f"data:image/*;base64,{data_uri_payload(value, prepared.payload)}"
            return decode_for_model(prepared, kind, self.embed.embedding.decode_options), uri

        return await asyncio.to_thread(read)


def _request(body: Any) -> SearchRequest:
    """The body as the library's request (its fields are checked by the search step)."""
    options = {name: getattr(body, name) for name in QUALITY_OPTIONS if getattr(body, name) is not None}
    if "max_per_document" in options:
        options["document_key"] = body.document_key
    examples = {kind: getattr(body, kind) for kind in EXAMPLE_KINDS if getattr(body, kind) is not None}
    return SearchRequest(text=body.query, **examples, top_k=body.top_k, mode=body.mode, modality=body.modality,
                         filters=_filters(body.filters), rerank=body.rerank, evidence=body.evidence, **options)


def _filters(value: Optional[dict]) -> Optional[MetadataFilters]:
    if value is None:
        return None
    from pydantic import ValidationError

    try:
        return MetadataFilters.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        raise APIError(422, f"filters{'.' + where if where else ''}: {first.get('msg')} (LlamaIndex MetadataFilters "
                            "JSON: {\"filters\": [{\"key\", \"value\", \"operator\"}], \"condition\": \"and\"})",
                       code="validation_error", param="filters") from None


__all__ = ["LaneCalls", "SearchService"]
