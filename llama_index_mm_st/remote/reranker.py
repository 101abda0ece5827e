"""``RemoteReranker``: a LlamaIndex node postprocessor whose rerankers run on a server (``POST /rerank``).

Nodes are read by the library's rule (``inputs.read_node``): a text node goes as its text (what an
embedding model reads of it, as ``MultimodalReranker`` scores it), an image node as ``{"image": <data
URI>}`` with ``"text"`` when it has words, so a server running ``MultimodalReranker`` (``mmst serve
--rerank``) scores every pair as it would in-process; a text-only server (Infinity, Jina) gets
strings. The query is ``query_str``, with ``image_path`` as an image. Results are new
``NodeWithScore`` objects (the caller's nodes are not modified), best first, ``top_n`` of them.
"""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Literal, Optional, Union

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import NodeWithScore, QueryBundle

from ..errors import ImageLoadError, UnsupportedModalityError
from ..inputs import read_node, read_query
from .http import Endpoint, RejectedItem, RetryPolicy
from .wire import image_value


class RemoteReranker(BaseNodePostprocessor):
    """Rerank with the models of a server at ``base_url`` (``mmst serve --rerank ...``, Infinity, a Jina-
    or Cohere-compatible API)."""

    base_url: str = Field(description="The server, e.g. http://gpu-box:7997 (or .../v1).")
    api_key: Optional[str] = Field(default=None, exclude=True, repr=False,
                                   description="Sent as 'Authorization: Bearer KEY'; never serialised.")
    model: Optional[str] = Field(default=None, description="The reranker to ask for; None: the server's.")
    top_n: int = Field(default=5, ge=1, description="How many nodes to return.")
    on_unsupported: Literal["keep", "raise"] = Field(
        default="keep", description="A node no server reranker reads: keep it at its retrieval rank, unscored "
                                    "(as MultimodalReranker does), or raise UnsupportedModalityError.")
    timeout: float = Field(default=60.0, gt=0, description="Seconds to wait for one answer.")
    max_retries: int = Field(default=5, ge=0, description="Retries of a 429, a 503 or a refused connection.")
    max_retry_wait: float = Field(default=30.0, gt=0, description="Longest wait before a retry.")
    headers: Dict[str, str] = Field(default_factory=dict, description="Extra HTTP headers.")

    _endpoint: Endpoint = PrivateAttr()

    def __init__(self, base_url: str, api_key: Optional[str] = None, top_n: int = 5, **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - set(type(self).model_fields))
        if unknown:
            raise TypeError(f"unknown arguments {unknown}; valid: {sorted(type(self).model_fields)}")
        super().__init__(base_url=base_url, api_key=api_key, top_n=top_n, **kwargs)
        self._endpoint = Endpoint(self.base_url, self.api_key, self.timeout,
                                  RetryPolicy(self.max_retries, max_retry_wait_s=self.max_retry_wait), self.headers)

    @classmethod
    def class_name(cls) -> str:
        return "RemoteReranker"

    def _body(self, nodes: List[NodeWithScore], query_bundle: Optional[QueryBundle]) -> Dict[str, Any]:
        if query_bundle is None:
            raise ValueError("RemoteReranker needs a query: pass query_bundle or query_str")
        body: Dict[str, Any] = {"query": _query(query_bundle), "documents": [_document(n) for n in nodes],
                                "top_n": min(self.top_n, len(nodes))}
        if self.on_unsupported == "keep":
            body["unscored"] = "keep"  # mmst serve's extension; a text-only server scores every string anyway
        if self.model is not None:
            body["model"] = self.model
        return body

    def _answer(self, answer: Any, nodes: List[NodeWithScore]) -> List[NodeWithScore]:
        """The server's ranking, in its order (an unscored node kept in place has no score)."""
        results = answer.get("results", [])[: self.top_n]
        return [NodeWithScore(node=nodes[int(r["index"])].node,
                              score=None if r.get("relevance_score") is None else float(r["relevance_score"]))
                for r in results]

    def _postprocess_nodes(self, nodes: List[NodeWithScore],
                           query_bundle: Optional[QueryBundle] = None) -> List[NodeWithScore]:
        if not nodes:
            return []
        body = self._body(nodes, query_bundle)
        try:
            return self._answer(self._endpoint.request("POST", "/rerank", body), nodes)
        except RejectedItem as rejected:
            raise _node_error(nodes, rejected) from None

    async def _apostprocess_nodes(self, nodes: List[NodeWithScore],
                                  query_bundle: Optional[QueryBundle] = None) -> List[NodeWithScore]:
        if not nodes:
            return []
        body = await asyncio.to_thread(self._body, nodes, query_bundle)
        try:
            return self._answer(await self._endpoint.arequest("POST", "/rerank", body), nodes)
        except RejectedItem as rejected:
            raise _node_error(nodes, rejected) from None

    def close(self) -> None:
        self._endpoint.close()


def _query(bundle: QueryBundle) -> Union[str, Dict[str, str]]:
    """The query's words and its image, read by the package's one query rule (``inputs.read_query``:
    ``image_path``, else a ``data:`` image URI), as the in-process reranker reads it."""
    side = read_query(bundle).image_parts()
    if side.image is None:
        if side.text is None:
            raise ValueError("the query has neither text (query_str) nor an image (image_path or a data: URI)")
        return side.text
    image = image_value(side.image)
    return {"image": image} if side.text is None else {"text": side.text, "image": image}


def _document(item: NodeWithScore) -> Union[str, Dict[str, str]]:
    parts = read_node(item.node)
    if parts.has_media:
        raise UnsupportedModalityError(f"node {parts.node_id} is {parts.modality}; RemoteReranker sends text and "
                                       "images")
    if parts.image is None:
        return parts.embed_text
    image = image_value(parts.image)
    return {"text": parts.embed_text, "image": image} if parts.words.strip() else {"image": image}


def _node_error(nodes: List[NodeWithScore], rejected: RejectedItem) -> Exception:
    node = nodes[rejected.index].node
    if rejected.code == "unscored":
        return UnsupportedModalityError(f"node {node.node_id}: {rejected.reason}")
    return ImageLoadError(f"node {node.node_id}", rejected.reason)
