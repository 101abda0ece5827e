"""``RemoteMultimodalStore``: a LlamaIndex vector store whose index is served by ``mmst serve``.

For an app server without torch or Qdrant: ``VectorStoreIndex.from_vector_store(RemoteMultimodalStore(url),
embed_model=RemoteMultimodalEmbedding(url))`` searches, inserts into and deletes from the index the
server holds (the server is its one writer; see ``serve/nodes.py``). Every call is one HTTP request (an
``add`` one per ``add_batch_size`` nodes), with nodes in ``node_wire``'s form; 429 and 503 are retried
after ``Retry-After`` (``remote.http.Endpoint``). Each operation is written once, as a generator of
requests that a sync and an async driver run, so the sync and async twins cannot drift apart.

With ``is_embedding_query=False`` LlamaIndex's retriever sends the query text alone and the server
embeds it with its own model (one round trip instead of two). Nodes added without vectors are embedded
by the server too (text and inline images; a server path only under its ``--index-root``).
"""

from __future__ import annotations

from typing import Any, Dict, Generator, List, Optional, Sequence

import numpy as np
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryResult,
)

from ..errors import RemoteServerError, refuse_unknown
from ..multivector import pooled, query_multivector
from ..node_wire import encode_vector, node_from_wire, node_to_wire
from .http import Endpoint, RetryPolicy

Call = tuple[str, str, Any]
"""One request: method, path, JSON body."""
Steps = Generator[Call, Any, Any]
CLIENT_ERRORS = frozenset({400, 413, 422})
"""Answers that mean the call itself was wrong: raised as ``ValueError``, as an in-process store would."""


class RemoteMultimodalStore(BasePydanticVectorStore):
    """The index a ``mmst serve --store DIR`` serves, as a LlamaIndex vector store (``base_url`` e.g.
    ``http://search-box:7997``). Needs only httpx, LlamaIndex and numpy: no torch, no Qdrant."""

    stores_text: bool = True
    flat_metadata: bool = False

    base_url: str = Field(description="The server, e.g. http://search-box:7997.")
    api_key: Optional[str] = Field(default=None, exclude=True, repr=False,
                                   description="Sent as 'Authorization: Bearer KEY'; never serialised.")
    timeout: float = Field(default=120.0, gt=0, description="Seconds to wait for one answer (an add embeds).")
    max_retries: int = Field(default=5, ge=0, description="Retries of a 429, a 503 or a refused connection.")
    max_retry_wait: float = Field(default=30.0, gt=0, description="Longest wait before a retry.")
    add_batch_size: int = Field(default=256, gt=0, le=2048, description="Nodes per add request.")
    headers: Dict[str, str] = Field(default_factory=dict, description="Extra HTTP headers.")

    _endpoint: Endpoint = PrivateAttr()

    def __init__(self, base_url: str, api_key: Optional[str] = None, **kwargs: Any) -> None:
        refuse_unknown(type(self).__name__, kwargs, set(type(self).model_fields))
        super().__init__(base_url=base_url.rstrip("/"), api_key=api_key, **kwargs)  # type: ignore[call-arg]
        root = self.base_url[:-3] if self.base_url.endswith("/v1") else self.base_url
        self._endpoint = Endpoint(root, api_key, self.timeout,
                                  RetryPolicy(self.max_retries, max_retry_wait_s=self.max_retry_wait), self.headers)

    @classmethod
    def class_name(cls) -> str:
        return "RemoteMultimodalStore"

    @property
    def client(self) -> Endpoint:
        """The HTTP endpoint (``remote.http.Endpoint``) every call goes through."""
        return self._endpoint

    # ---------------------------------------------------------------- the operations, once each

    def _add(self, nodes: Sequence[BaseNode]) -> Steps:
        ids: List[str] = []
        for start in range(0, len(nodes), self.add_batch_size):
            batch = nodes[start : start + self.add_batch_size]
            answer = yield "POST", "/v1/nodes", {"nodes": [node_to_wire(node) for node in batch]}
            ids += answer["ids"]
        return ids

    def _query(self, query: VectorStoreQuery, options: Dict[str, Any]) -> Steps:
        answer = yield "POST", "/v1/nodes/query", query_body(query, options)
        return VectorStoreQueryResult(
            nodes=[node_from_wire(item, f"result[{i}]") for i, item in enumerate(answer["nodes"])],
            similarities=list(answer["similarities"]), ids=list(answer["ids"]))

    def _get(self, node_ids: Optional[List[str]], filters: Optional[MetadataFilters]) -> Steps:
        answer = yield "POST", "/v1/nodes/get", {"node_ids": node_ids, "filters": filters_body(filters)}
        return [node_from_wire(item, f"nodes[{i}]") for i, item in enumerate(answer["nodes"])]

    def _delete_document(self, ref_doc_id: str) -> Steps:
        from urllib.parse import quote

        yield "DELETE", f"/v1/documents/{quote(ref_doc_id, safe='')}", None
        return None

    def _delete_nodes(self, node_ids: Optional[List[str]], filters: Optional[MetadataFilters]) -> Steps:
        if node_ids is None and filters is None:
            raise ValueError("delete_nodes needs node_ids or filters; use clear() to delete everything")
        yield "POST", "/v1/nodes/delete", {"node_ids": node_ids, "filters": filters_body(filters)}
        return None

    def _clear(self) -> Steps:
        yield "POST", "/v1/nodes/delete", {"all": True}
        return None

    def _info(self) -> Steps:
        return (yield "GET", "/v1/index", None)

    # ---------------------------------------------------------------- the vector-store interface

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> List[str]:
        """Write nodes to the served index (nodes without vectors are embedded by the server)."""
        return self._run(self._add(list(nodes)))

    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> List[str]:
        return await self._arun(self._add(list(nodes)))

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The served store's query (``MultimodalQdrantStore.query``: per-query options as keywords)."""
        return self._run(self._query(query, kwargs))

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        return await self._arun(self._query(query, kwargs))

    def get_nodes(self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None,
                  **kwargs: Any) -> List[BaseNode]:
        return self._run(self._get(node_ids, filters))

    async def aget_nodes(self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None,
                         **kwargs: Any) -> List[BaseNode]:
        return await self._arun(self._get(node_ids, filters))

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of a document (its LlamaIndex id, or its id in the documents API)."""
        self._run(self._delete_document(ref_doc_id))

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        await self._arun(self._delete_document(ref_doc_id))

    def delete_nodes(self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None,
                     **delete_kwargs: Any) -> None:
        self._run(self._delete_nodes(node_ids, filters))

    async def adelete_nodes(self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None,
                            **delete_kwargs: Any) -> None:
        await self._arun(self._delete_nodes(node_ids, filters))

    def clear(self) -> None:
        """Delete every node (the index and its schema stay)."""
        self._run(self._clear())

    async def aclear(self) -> None:
        await self._arun(self._clear())

    def info(self) -> Dict[str, Any]:
        """What the served index holds: points, documents, dimension, vectors, model, writable."""
        return self._run(self._info())

    async def ainfo(self) -> Dict[str, Any]:
        return await self._arun(self._info())

    def count(self) -> int:
        return int(self.info()["points"])

    def close(self) -> None:
        self._endpoint.close()

    # ---------------------------------------------------------------- drivers

    def _run(self, steps: Steps) -> Any:
        try:
            call = next(steps)
            while True:
                call = steps.send(self._send(call))
        except StopIteration as done:
            return done.value

    async def _arun(self, steps: Steps) -> Any:
        try:
            call = next(steps)
            while True:
                call = steps.send(await self._asend(call))
        except StopIteration as done:
            return done.value

    def _send(self, call: Call) -> Any:
        try:
            return self._endpoint.request(*call)
        except RemoteServerError as exc:
            return _answer_of(call, exc)

    async def _asend(self, call: Call) -> Any:
        try:
            return await self._endpoint.arequest(*call)
        except RemoteServerError as exc:
            return _answer_of(call, exc)


def _answer_of(call: Call, error: RemoteServerError) -> Any:
    """A failed call as LlamaIndex stores answer: deleting what is not there is no error; a call the server
    finds wrong is a ``ValueError`` (its message names the server and the node or field)."""
    method, path, _ = call
    if method == "DELETE" and error.status == 404:
        return None
    if error.status in CLIENT_ERRORS:
        raise ValueError(str(error)) from None
    raise error


def filters_body(filters: Optional[MetadataFilters]) -> Optional[Dict[str, Any]]:
    return None if filters is None else filters.model_dump(mode="json")


def query_body(query: VectorStoreQuery, options: Dict[str, Any]) -> Dict[str, Any]:
    """A ``VectorStoreQuery`` (and the store's per-query options) as ``/v1/nodes/query`` takes it."""
    options = dict(options)
    body: Dict[str, Any] = {
        "similarity_top_k": query.similarity_top_k, "doc_ids": query.doc_ids, "node_ids": query.node_ids,
        "query_str": query.query_str, "mode": getattr(query.mode, "value", query.mode), "alpha": query.alpha,
        "filters": filters_body(query.filters), "mmr_threshold": query.mmr_threshold,
        "sparse_top_k": query.sparse_top_k, "hybrid_top_k": query.hybrid_top_k,
    }
    tokens = options.pop("query_multivector", None)
    carried = query_multivector(query.query_embedding) if query.query_embedding is not None else None
    if query.query_embedding is not None:  # a bare matrix of token vectors is sent as its pooled vector and rows
        vector = pooled(carried) if carried is not None and not hasattr(query.query_embedding, "multivector") \
            else query.query_embedding
        body["query_embedding"] = encode_vector(vector)
    tokens = tokens if tokens is not None else carried
    if tokens is not None:
        matrix = np.asarray(tokens, dtype=np.float32)
        body["query_multivector"] = {"rows": int(matrix.shape[0]), "data": encode_vector(matrix.reshape(-1))}
    if options:
        body["options"] = options
    return {key: value for key, value in body.items() if value is not None}
