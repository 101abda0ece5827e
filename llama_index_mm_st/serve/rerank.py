"""Rerank requests: a query and documents -> ``MultimodalReranker`` -> scores by document index.

Documents are strings, or objects ``{"text": ...}``, ``{"image": <data URI or URL>}`` or both (an image
with its caption), as in Jina's multimodal reranker API; the query is the same. They become LlamaIndex
nodes the library reads by its one rule (``inputs.read_node``): a string a ``TextNode``, an image an
``ImageNode`` with its pixels inline, so the reranker routes each pair to the scorer that reads it exactly
as it does in-process. One rerank request is one job in the reranker's lane (its queue is bounded too).
"""

from __future__ import annotations

import asyncio
import math
from io import BytesIO
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Union

from llama_index.core.schema import ImageNode, NodeWithScore, QueryBundle, TextNode

from ..errors import ItemError
from ..images import DecodeOptions, decode

from .embed import non_finite
from .errors import APIError, bad_item
from .items import MediaRules, check_header, data_uri_payload, media_bytes
from .lanes import Job, Lane, Outcome, first_error
from .metrics import Metrics
from .settings import ServeSettings

Side = Union[str, dict]


@dataclass(frozen=True)
class Scored:
    """A document's place in the ranking; ``score`` is None for one no loaded scorer reads (kept at its
    retrieval position, as ``MultimodalReranker(on_unsupported="keep")`` keeps it), with the reason."""

    index: int
    score: Optional[float]
    reason: Optional[str] = None


class RerankService:
    """The reranker behind a lane of its own (one request per batch: a reranker scores one query)."""

    def __init__(self, reranker: Any, settings: ServeSettings, metrics: Metrics, rules: MediaRules) -> None:
        # A copy that ranks every document (a request's top_n is applied to its answer), and returns a
        # document it cannot read unscored (named in a 400) instead of raising for the whole batch.
        self.reranker = reranker.model_copy(update={
            "top_n": max(settings.limits.max_request_items, settings.limits.max_top_k),
            "on_error": "skip", "on_unsupported": "keep"})
        self.rules = rules
        self.metrics = metrics
        self.lane = Lane("reranker", self._run_group, settings.limits, metrics, max_batch_items=1)

    @property
    def model_names(self) -> list[str]:
        return [scorer.name for scorer in self.reranker.scorers]

    async def nodes(self, documents: Sequence[Side]) -> List[NodeWithScore]:
        return await asyncio.to_thread(lambda: [self._node(doc, f"documents[{i}]") for i, doc in enumerate(documents)])

    async def query(self, query: Side) -> QueryBundle:
        if isinstance(query, str):
            return QueryBundle(query_str=query)
        text, image = await asyncio.to_thread(self._parts, query, "query")
        return QueryBundle(query_str=text or "", image_path=None if image is None else f"data:image/*;base64,{image}")

    async def rerank(self, query: QueryBundle, nodes: List[NodeWithScore], keep_unscored: bool = False) -> List[Scored]:
        """Every document in ranked order. One no scorer reads is a 400 naming it (code ``unscored``), or,
        with ``keep_unscored``, stays at its position unscored."""
        ranked = await self.rerank_nodes(query, nodes)
        scored = [Scored(r.retrieval_rank, None if r.score is None else float(r.score), r.skipped_reason)
                  for r in ranked]
        broken = next((entry for entry in scored if entry.score is not None and not math.isfinite(entry.score)), None)
        if broken is not None:
            raise non_finite(f"documents[{broken.index}]", "score")
        unscored = next((entry for entry in scored if entry.score is None), None)
        if unscored is not None and not keep_unscored:
            raise APIError(400, f"documents[{unscored.index}]: {unscored.reason or 'it could not be scored'} (add a "
                                "reranker that reads it, or send \"unscored\": \"keep\")", code="unscored",
                           param=f"documents[{unscored.index}]")
        return scored

    async def rerank_nodes(self, query: QueryBundle, nodes: List[NodeWithScore]) -> List[Any]:
        """Every node ranked by the reranker (``RerankedNode``s), through the reranker's lane: ``/v1/rerank``
        and ``/v1/search`` share its queue, admission and hang detection."""
        (outcome,) = await self.lane.run([Job("rerank", (query, nodes))])
        self.metrics.items.labels("rerank").inc(len(nodes))
        failed = first_error([outcome])
        if failed is not None:
            error = failed[1]
            if isinstance(error, APIError):
                raise error
            raise APIError(400, str(error), code="invalid_item")
        return outcome

    def _run_group(self, key: Any, payloads: List[Any]) -> List[Outcome]:
        (query, nodes), = payloads
        try:
            return [self.reranker.postprocess_nodes(nodes, query)]
        except ValueError as exc:  # the library's input errors (ImageLoadError, UnsupportedModalityError) are ValueErrors
            return [exc]

    def _parts(self, side: dict, param: str) -> tuple[Optional[str], Optional[str]]:
        """(text, base64 image) of an object side; at least one, and nothing else."""
        unknown = sorted(set(side) - {"text", "image"})
        if unknown:
            raise bad_item(param, f"unknown keys {unknown}: a document is a string, or an object with 'text' "
                                  "and/or 'image' (a data: URI)")
        text, image = side.get("text"), side.get("image")
        if text is None and image is None:
            raise bad_item(param, "an object document needs 'text' or 'image'")
        if text is not None and not isinstance(text, str) or image is not None and not isinstance(image, str):
            raise bad_item(param, "'text' and 'image' must be strings")
        if image is None:
            return text, None
        data = media_bytes(image, param, self.rules)
        check_header(data, "image", param, self.rules)
        try:  # decoded once here, so a truncated image is a 400 naming it rather than a hole in the ranking
            decode(BytesIO(data), param, DecodeOptions(max_pixels=self.rules.max_pixels)).close()
        except ItemError as exc:
            raise bad_item(param, exc.reason) from None
        return text, data_uri_payload(image, data)

    def _node(self, document: Side, param: str) -> NodeWithScore:
        if isinstance(document, str):
            return NodeWithScore(node=TextNode(id_=param, text=document))
        text, image = self._parts(document, param)
        if image is None:
            return NodeWithScore(node=TextNode(id_=param, text=text or ""))
        return NodeWithScore(node=ImageNode(id_=param, text=text or "", image=image))
