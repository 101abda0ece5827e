"""``/v1/search``: the library's pipeline over the served store, answering the hits ``mmst search --json`` prints.

The search itself is ``build_pipeline(store, embedding, reranker, top_k=..., mode=..., modality=...,
filters=...).aretrieve(...)``: the query embedding goes through the embedding's own dynamic batcher and
the store's queries through its batched engine calls, so concurrent searches coalesce. The hits are
``hits.search_hits`` records, so a search over HTTP returns exactly what the library and the CLI do.
The queue of searches is bounded like the models' (429 with ``Retry-After`` when full).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Optional

from llama_index.core.schema import QueryBundle
from llama_index.core.vector_stores.types import MetadataFilters

from ..defaults import RERANK_CANDIDATES_PER_RESULT
from ..errors import ItemError, UnsupportedFilterError
from ..hits import score_kind, search_hits
from ..pipeline import MediaQueryBundle, build_pipeline
from .embed import EmbedService
from .errors import APIError, Overloaded, bad_item
from .items import check_header, data_uri_payload, media_bytes
from .metrics import Metrics
from .rerank import RerankService
from .settings import ServeSettings

EXAMPLE_KINDS = ("image", "audio", "video")


class SearchService:
    """Searches of one store with the served embedding (and, on request, the served rerankers)."""

    def __init__(self, store: Any, embed: EmbedService, rerank: Optional[RerankService], settings: ServeSettings,
                 metrics: Metrics) -> None:
        self.store, self.embed, self.rerank = store, embed, rerank
        self.limits = settings.limits
        self.metrics = metrics
        self._lock = threading.Lock()
        self._running = 0
        self._seconds_per_search: Optional[float] = None

    @property
    def late(self) -> bool:
        schema = self.store.schema
        return schema is not None and schema.late_interaction

    async def search(self, request: Any) -> dict[str, Any]:
        bundle = await self._bundle(request)
        filters = _filters(request.filters)
        if request.rerank and self.rerank is None:
            raise APIError(400, "this server has no reranker (start it with --rerank MODEL)", code="no_reranker",
                           param="rerank")
        reranker = self.rerank.reranker if request.rerank and self.rerank is not None else None
        candidates = request.top_k * RERANK_CANDIDATES_PER_RESULT if reranker is not None else request.top_k
        options = _quality_options(request)
        try:
            retriever = build_pipeline(self.store, self.embed.embedding, reranker, top_k=candidates,
                                       mode=request.mode, modality=request.modality, filters=filters, **options)
        except ValueError as exc:  # an option this search can't take (MMR in sparse mode, say)
            named = next((name for name in options if name in str(exc)), None)  # the option the message is about
            raise APIError(400, str(exc), code="invalid_request", param=named) from None
        self._admit()
        start = time.monotonic()
        try:
            results = (await retriever.aretrieve(bundle))[: request.top_k]
        except UnsupportedFilterError as exc:
            raise APIError(400, str(exc), code="unsupported_filter", param="filters") from None
        except ItemError as exc:
            raise bad_item(_example_param(request) or "query", exc.reason) from None
        finally:
            self._release(time.monotonic() - start)
        self.metrics.items.labels("search").inc()
        schema = self.store.schema
        kind = score_kind(request.mode, len(reranker.scorers) if reranker is not None else 0, self.late,
                          fusion=request.fusion or "rrf", mmr=request.mmr is not None,
                          sparse=schema.sparse_vectors if schema is not None else ("bm25",))
        return {"object": "list", "results": [hit.to_dict() for hit in search_hits(results, kind)],
                "score_kind": kind, "model": self.embed.embedding.model_name}

    def _admit(self) -> None:
        with self._lock:
            if self._running >= self.limits.max_queue:
                wait = self._seconds_per_search or 1.0
                raise Overloaded(f"{self._running} searches are running, at most {self.limits.max_queue}", wait)
            self._running += 1
        self.metrics.queue_depth.labels("search").set(self._running)

    def _release(self, seconds: float) -> None:
        with self._lock:
            self._running -= 1
            previous = self._seconds_per_search
            self._seconds_per_search = seconds if previous is None else 0.3 * seconds + 0.7 * previous
        self.metrics.queue_depth.labels("search").set(self._running)

    async def _bundle(self, request: Any) -> QueryBundle:
        """The query as the pipeline takes it, refused (400) where ``mmst search`` refuses it."""
        text = request.query
        if text is not None and not text.strip():
            raise APIError(400, "the query text is empty (only whitespace)", code="empty_query", param="query")
        given = [kind for kind in EXAMPLE_KINDS if getattr(request, kind) is not None]
        if len(given) > 1:
            raise APIError(400, f"a search takes one example at a time, got {given}", code="invalid_request",
                           param=given[1])
        if text is None and not given:
            raise APIError(400, "a search needs 'query' (text), or an 'image', 'audio' or 'video' example, or both",
                           code="invalid_request", param="query")
        if request.mode == "sparse":
            if given:
                raise APIError(400, f"mode 'sparse' matches exact words and {given[0]} has none; use mode hybrid "
                                    "or dense", code="invalid_request", param="mode")
            if not len(self.store.sparse_query_vector(text).indices):
                raise APIError(400, f"mode 'sparse' matches exact words, and {text!r} has none it can search for "
                                    "(only stop words or punctuation)", code="invalid_request", param="query")
        if not given:
            return QueryBundle(query_str=text)
        kind = given[0]
        self.embed.check_modality(kind)
        value = getattr(request, kind)
        data = await asyncio.to_thread(self._example_bytes, value, kind)
        if kind == "image":
            return QueryBundle(query_str=text or "", image_path=f"data:image/*;base64,{data_uri_payload(value, data)}")
        return MediaQueryBundle(query_str=text or "", media=data, media_kind=kind)  # type: ignore[arg-type]

    def _example_bytes(self, value: str, kind: str) -> bytes:
        data = media_bytes(value, kind, self.embed.rules)
        check_header(data, kind, kind, self.embed.rules)
        return data


QUALITY_OPTIONS = ("mmr", "max_per_document", "fusion", "rrf_k", "rrf_weights")
"""The body's search-quality fields, passed to ``build_pipeline`` under the same names when given."""


def _quality_options(request: Any) -> dict[str, Any]:
    """The body's search-quality options, as ``build_pipeline`` takes them (it refuses bad combinations)."""
    options = {name: getattr(request, name) for name in QUALITY_OPTIONS if getattr(request, name) is not None}
    if "max_per_document" in options:
        options["document_key"] = request.document_key
    return options


def _example_param(request: Any) -> Optional[str]:
    return next((kind for kind in EXAMPLE_KINDS if getattr(request, kind) is not None), None)


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
