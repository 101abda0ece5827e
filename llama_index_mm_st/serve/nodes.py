"""``/v1/nodes``: the served index as a LlamaIndex vector store, for ``RemoteMultimodalStore``.

A vector store's calls, one route each, with nodes in ``node_wire``'s form:

- ``POST /v1/nodes`` (``add``): nodes with their vectors are written as given (checked by the store,
  all or nothing); nodes without any vector are embedded first, through the embedding lane, by the
  store's node rule (``embed_nodes``), so an app without a model can still insert text and images.
- ``POST /v1/nodes/query``: a ``VectorStoreQuery`` (plus the store's per-query options); without a
  ``query_embedding`` the server embeds ``query_str`` itself (one round trip instead of two).
- ``POST /v1/nodes/get``, ``POST /v1/nodes/delete`` (ids and/or filters, or ``all``); ``delete(ref_doc_id)``
  is ``DELETE /v1/documents/{id}``.
- ``GET /v1/index``: what the index holds (points, documents, dimension, vectors, model, writable).

Nothing here reads a server file a client named unless it is under ``--index-root`` (an image node to
embed whose ``image_path`` is elsewhere is refused), and URLs only under the server's URL policy.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from fastapi import APIRouter, Request
from fastapi.responses import Response
from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode
from pydantic import BaseModel, ConfigDict, Field

from ..errors import UnsupportedFilterError
from ..fetch import is_url
from ..inputs import NodeParts, read_node, storable
from ..node_wire import decode_vector, node_from_wire, node_to_wire
from .body import parse_body
from .documents import _json, _writer
from .embed import NODES
from .errors import APIError, bad_item
from .lanes import Job
from .lifecycle import ServerState
from .routes import body_schema

router = APIRouter()


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class AddNodes(_Body):
    nodes: List[Dict[str, Any]] = Field(min_length=1)


class NodeQuery(_Body):
    """A ``VectorStoreQuery`` as JSON (vectors as base64 float32 or lists), and the store's query options."""

    query_embedding: Optional[Union[str, List[float]]] = None
    query_str: Optional[str] = None
    similarity_top_k: int = Field(default=1, ge=1)
    doc_ids: Optional[List[str]] = None
    node_ids: Optional[List[str]] = None
    mode: VectorStoreQueryMode = VectorStoreQueryMode.DEFAULT
    alpha: Optional[float] = None
    filters: Optional[Dict[str, Any]] = None
    mmr_threshold: Optional[float] = None
    sparse_top_k: Optional[int] = Field(default=None, ge=1)
    hybrid_top_k: Optional[int] = Field(default=None, ge=1)
    output_fields: Optional[List[str]] = None
    embedding_field: Optional[str] = None
    query_multivector: Optional[Dict[str, Any]] = None
    options: Dict[str, Any] = {}
    """``MultimodalQdrantStore.query``'s per-query options: modality, rrf_k, rrf_weights, query_modality,
    fusion, mmr_threshold, mmr_candidates, max_per_document, document_key."""


class NodeSelection(_Body):
    node_ids: Optional[List[str]] = None
    filters: Optional[Dict[str, Any]] = None
    all: bool = False


def _store(request: Request) -> tuple[Any, ServerState]:
    state: ServerState = request.app.state.server
    services = state.services
    if services is None:
        raise state.refusal() or APIError(503, "the server is not ready", code="warming_up")
    if services.search is None:
        raise APIError(404, "this server serves no index (start it with --store DIR or --url URL)", code="no_index")
    return services.search.store, state


def _filters(value: Optional[Dict[str, Any]]) -> Any:
    from .search import _filters as parse_filters  # the one reading of a filters body (/v1/search's)

    return parse_filters(value)


@router.get("/index")
@router.get("/v1/index")
async def index_info(request: Request) -> Response:
    store, state = _store(request)
    services = state.services
    documents = services.documents  # type: ignore[union-attr]
    schema = store.schema
    from ..ingest.manifest import read_manifest

    def read() -> Dict[str, Any]:
        manifest = read_manifest(store) if schema is not None else None
        return {"points": store.count() if schema is not None else 0,
                "documents": len(documents.documents()) if documents is not None else None,
                "dimension": schema.dim if schema is not None else None,
                "vectors": list(schema.dense) if schema is not None else [],
                "sparse": list(schema.sparse_vectors) if schema is not None else [],
                "late_interaction": bool(schema is not None and schema.late_interaction),
                "model": manifest.model if manifest is not None else None,
                "served_model": services.embed.embedding.model_name,  # type: ignore[union-attr]
                "writable": documents is not None and documents.writable}

    return _json({"object": "index", **await asyncio.to_thread(read)})


@router.post("/nodes", openapi_extra=body_schema(AddNodes))
@router.post("/v1/nodes", openapi_extra=body_schema(AddNodes))
async def add_nodes(request: Request) -> Response:
    body = parse_body(await request.body(), AddNodes)
    store, state = _store(request)
    writer = _writer(request, write=True)
    limit = state.settings.limits.max_request_items
    if len(body.nodes) > limit:
        raise APIError(413, f"{len(body.nodes)} nodes in one request; at most {limit}", code="too_many_items")
    nodes = []
    for position, item in enumerate(body.nodes):
        try:
            nodes.append(node_from_wire(item, f"nodes[{position}]"))
        except ValueError as exc:
            raise bad_item(f"nodes[{position}]", str(exc).partition(": ")[2] or str(exc)) from None
    bare = [position for position, node in enumerate(nodes) if not any(_vectors(node))]
    if bare:
        await _embed(nodes, bare, writer, state)

    def write() -> List[str]:
        with writer.write_lock:
            try:
                ids = store.add(nodes)
            except ValueError as exc:  # a node the store refuses, named by id
                raise APIError(400, str(exc), code="invalid_item", param=_param_of(str(exc), nodes)) from None
            writer.generation += 1
            return ids

    return _json({"object": "list", "ids": await asyncio.to_thread(write)})


def _vectors(node: Any) -> List[Any]:
    return [node.__dict__.get(name) for name in ("embedding", "text_embedding") if node.__dict__.get(name) is not None]


async def _embed(nodes: List[Any], positions: List[int], writer: Any, state: ServerState) -> None:
    """Vectors for the nodes that came without any, through the embedding lane (all or nothing)."""
    settings = state.settings

    def prepare() -> List[NodeParts]:
        ready = []
        for position in positions:
            parts = read_node(storable(nodes[position]))
            _check_sources(parts, f"nodes[{position}]", settings)
            problems: List[tuple[str, str]] = []
            decoded = writer.decoded(parts, problems, settings.fetch)
            if decoded is None:
                raise bad_item(f"nodes[{position}]", problems[0][1])
            ready.append(decoded)
        return ready

    ready = await asyncio.to_thread(prepare)
    outcomes = await writer.embed.lane.run([Job((NODES, "document"), parts, writer.cost(parts)) for parts in ready])
    for position, outcome in zip(positions, outcomes, strict=True):
        if isinstance(outcome, APIError):
            raise outcome
        if isinstance(outcome, BaseException):
            raise bad_item(f"nodes[{position}]", str(getattr(outcome, "reason", None) or outcome))
        node = nodes[position]
        for name in ("embedding", "text_embedding"):  # the vectors embed_nodes set on the stored form
            value = outcome.node.__dict__.get(name)
            if value is not None and name in type(node).model_fields:
                setattr(node, name, value)


def _check_sources(parts: NodeParts, param: str, settings: Any) -> None:
    """A node to embed may point at server files only under the index root, and at URLs only when allowed."""
    sources = []
    if parts.image is not None:
        source = parts.image.source
        sources.append(getattr(source, "video", source))  # a video frame names its video
    if parts.media is not None:
        sources.append(getattr(parts.media, "source", None))
    for source in sources:
        if isinstance(source, (str, Path)) and not str(source).startswith("data:"):
            if is_url(str(source)):
                if not settings.fetch.allow_urls:
                    raise bad_item(param, "this server fetches no URLs (start it with --allow-urls); send the image "
                                          "inline (ImageNode.image, base64) or its vector")
                continue
            root = settings.index_root
            real = Path(os.path.realpath(source))
            if root is None or not (real == Path(os.path.realpath(root)) or Path(os.path.realpath(root)) in real.parents):
                raise bad_item(param, f"{source} is a path on this server, read only under --index-root; send the "
                                      "image inline (base64) or the node's vectors")


def _param_of(message: str, nodes: List[Any]) -> Optional[str]:
    """``nodes[i]`` for the node a store error names (``node <id>: ...``)."""
    return next((f"nodes[{i}]" for i, node in enumerate(nodes) if f"node {node.node_id}" in message), "nodes")


@router.post("/nodes/query", openapi_extra=body_schema(NodeQuery))
@router.post("/v1/nodes/query", openapi_extra=body_schema(NodeQuery))
async def query_nodes(request: Request) -> Response:
    body = parse_body(await request.body(), NodeQuery)
    store, state = _store(request)
    if body.similarity_top_k > state.settings.limits.max_top_k:
        raise APIError(400, f"similarity_top_k={body.similarity_top_k} is over the limit of "
                            f"{state.settings.limits.max_top_k}", code="invalid_request", param="similarity_top_k")
    embedding = None
    if body.query_embedding is not None:
        try:
            embedding = decode_vector(body.query_embedding, "query_embedding")
        except ValueError as exc:
            raise APIError(400, str(exc), code="invalid_request", param="query_embedding") from None
    elif body.query_str is not None and body.mode != VectorStoreQueryMode.SPARSE:
        embedding = await _query_vector(body.query_str, state, store)
    options = dict(body.options)
    if body.query_multivector is not None:
        from ..node_wire import _matrix

        try:
            options["query_multivector"] = _matrix(body.query_multivector, "query_multivector")
        except ValueError as exc:
            raise APIError(400, str(exc), code="invalid_request", param="query_multivector") from None
    query = VectorStoreQuery(
        query_embedding=embedding, similarity_top_k=body.similarity_top_k, doc_ids=body.doc_ids,
        node_ids=body.node_ids, query_str=body.query_str, output_fields=body.output_fields,
        embedding_field=body.embedding_field, mode=body.mode, alpha=body.alpha, filters=_filters(body.filters),
        mmr_threshold=body.mmr_threshold, sparse_top_k=body.sparse_top_k, hybrid_top_k=body.hybrid_top_k)
    try:
        result = await store.aquery(query, **options)
    except UnsupportedFilterError as exc:
        raise APIError(400, str(exc), code="unsupported_filter", param="filters") from None
    except TypeError as exc:  # an unknown option
        raise APIError(400, str(exc), code="invalid_request", param="options") from None
    except ValueError as exc:  # a vector of the wrong size, an option out of range
        raise APIError(400, str(exc), code="invalid_request", param="query_embedding") from None
    return _json({"object": "list", "ids": list(result.ids or []), "similarities": list(result.similarities or []),
                  "nodes": [node_to_wire(node) for node in result.nodes or []]})


async def _query_vector(text: str, state: ServerState, store: Any) -> List[float]:
    """The query's vector by the served model, through its lane (the model's query prompt)."""
    services = state.services
    schema = store.schema
    if schema is not None and schema.late_interaction:
        raise APIError(400, "a late-interaction index needs the query's token vectors: send query_embedding and "
                            "query_multivector", code="invalid_request", param="query_embedding")
    if not text.strip():
        raise APIError(400, "query_str is empty", code="invalid_request", param="query_str")
    embed = services.embed  # type: ignore[union-attr]
    prepared = await embed.prepare([text], "text", "query_str")
    return (await embed.embed(prepared, "text", "query", "query_str")).vectors[0]


@router.post("/nodes/get", openapi_extra=body_schema(NodeSelection))
@router.post("/v1/nodes/get", openapi_extra=body_schema(NodeSelection))
async def get_nodes(request: Request) -> Response:
    body = parse_body(await request.body(), NodeSelection)
    store, _ = _store(request)
    if body.all:
        raise APIError(400, "all is for delete; get every node by leaving node_ids and filters out",
                       code="invalid_request", param="all")
    filters = _filters(body.filters)

    def read() -> List[Dict[str, Any]]:
        if store.schema is None:
            return []
        return [node_to_wire(node) for node in store.get_nodes(body.node_ids, filters)]

    try:
        nodes = await asyncio.to_thread(read)
    except UnsupportedFilterError as exc:
        raise APIError(400, str(exc), code="unsupported_filter", param="filters") from None
    return _json({"object": "list", "nodes": nodes})


@router.post("/nodes/delete", openapi_extra=body_schema(NodeSelection))
@router.post("/v1/nodes/delete", openapi_extra=body_schema(NodeSelection))
async def delete_nodes(request: Request) -> Response:
    body = parse_body(await request.body(), NodeSelection)
    store, _ = _store(request)
    writer = _writer(request, write=True)
    if body.all == (body.node_ids is not None or body.filters is not None):
        raise APIError(400, "give node_ids and/or filters, or all=true (every node; the index stays)",
                       code="invalid_request", param="all")
    filters = _filters(body.filters)

    def delete() -> None:
        with writer.write_lock:
            if store.schema is not None:
                if body.all:
                    store.clear()
                else:
                    store.delete_nodes(body.node_ids, filters)
            writer.generation += 1

    try:
        await asyncio.to_thread(delete)
    except UnsupportedFilterError as exc:
        raise APIError(400, str(exc), code="unsupported_filter", param="filters") from None
    return _json({"object": "deleted"})
