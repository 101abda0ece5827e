"""The routes, each bare and under ``/v1`` (Infinity-style clients call ``/embeddings``, OpenAI-style ones
``/v1/embeddings``). Handlers only translate between a wire shape and a service call.

- ``/v1/embeddings``: OpenAI's shape, with Infinity's ``modality`` and ``input_type``.
- ``/embed``: text-embeddings-inference's shape (a bare list of vectors).
- ``/v1/rerank``: Cohere's and Jina's shape; ``/rerank`` also takes TEI's (``texts`` -> bare list).
- ``/v1/search``: the library's pipeline, hits as ``mmst search --json`` prints them.
- ``/v1/models``, ``/health``, ``/metrics``.
"""

from __future__ import annotations

import json
import time
from typing import Any, Optional

from fastapi import APIRouter, Request
from fastapi.responses import Response

from .body import parse_body, parse_object, validated
from .embed import encode_vector, shorten
from .errors import APIError
from .lifecycle import Services, ServerState
from .schemas import EmbeddingsRequest, RerankRequest, SearchRequest, TEIEmbedRequest, TEIRerankRequest

router = APIRouter()


def json_response(content: Any, status: int = 200) -> Response:
    """JSON without FastAPI's encoder pass (slow on thousands of floats): the content is plain data.

    NaN and infinity are refused (``allow_nan=False``): JSON has no such numbers, and a client's parser
    would fail on the answer or read a wrong value. A route checks its model's numbers first and names
    the item (``embed.check_finite``); reaching this refusal is a 500 all the same, never a bad body."""
    try:
        encoded = json.dumps(content, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        raise APIError(500, "the answer holds a number that is not finite (NaN or infinity), which JSON cannot carry; "
                            "the model produced it", code="non_finite_output") from None
    return Response(encoded.encode(), status, media_type="application/json")


def body_schema(model: Any) -> dict[str, Any]:
    """The OpenAPI description of a route whose body the route parses itself (``body.parse_body``)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


def _services(request: Request) -> Services:
    state: ServerState = request.app.state.server
    services = state.services
    if services is None:  # the gate refuses API requests before this; kept for direct ASGI use
        raise state.refusal() or APIError(503, "the server is not ready", code="warming_up")
    return services


def _check_model(requested: Optional[str], served: list[str], kind: str) -> str:
    """The served name of the model a request names; None means the one served."""
    if requested is None or requested in served:
        return requested or served[0]
    raise APIError(404, f"the {kind} model {requested!r} is not served here; served: {', '.join(served)}",
                   code="model_not_found", param="model")


def _served_embedding(services: Services, state: ServerState) -> list[str]:
    return [state.settings.model_id or services.embed.embedding.model_name]


def _served_rerankers(services: Services, state: ServerState) -> list[str]:
    if services.rerank is None:
        raise APIError(404, "this server has no reranker (start it with --rerank MODEL)", code="no_reranker")
    names = services.rerank.model_names
    joined = ", ".join(names)
    return ([state.settings.rerank_id] if state.settings.rerank_id else []) + names + ([joined] if len(names) > 1 else [])


def _check_items(count: int, state: ServerState, what: str) -> None:
    limit = state.settings.limits.max_request_items
    if count > limit:
        raise APIError(413, f"{count} {what} in one request; at most {limit}", code="too_many_items")
    if count == 0:
        raise APIError(400, f"no {what} given", code="invalid_request")


# ---------------------------------------------------------------- embeddings


@router.post("/embeddings", openapi_extra=body_schema(EmbeddingsRequest))
@router.post("/v1/embeddings", openapi_extra=body_schema(EmbeddingsRequest))
async def embeddings(request: Request) -> Response:
    body = parse_body(await request.body(), EmbeddingsRequest)
    services, state = _services(request), request.app.state.server
    model = _check_model(body.model, _served_embedding(services, state), "embedding")
    values = [body.input] if isinstance(body.input, str) else body.input
    _check_items(len(values), state, "inputs")
    service = services.embed
    prepared = await service.prepare(values, body.modality, "input")
    embedded = await service.embed(prepared, body.modality, body.input_type, "input")
    vectors = shorten(embedded.vectors, body.dimensions, service.embedding.normalize, service.embedding.dimension)
    data = [{"object": "embedding", "embedding": encode_vector(vector, body.encoding_format), "index": i}
            for i, vector in enumerate(vectors)]
    usage = {"prompt_tokens": embedded.tokens, "total_tokens": embedded.tokens}
    return json_response({"object": "list", "data": data, "model": model, "usage": usage})


@router.post("/embed", openapi_extra=body_schema(TEIEmbedRequest))
@router.post("/v1/embed", openapi_extra=body_schema(TEIEmbedRequest))
async def tei_embed(request: Request) -> Response:
    body = parse_body(await request.body(), TEIEmbedRequest)
    services, state = _services(request), request.app.state.server
    service = services.embed
    if not body.normalize and service.embedding.normalize:
        raise APIError(400, "this server's model returns normalised vectors; normalize=false is not available",
                       code="invalid_request", param="normalize")
    values = [body.inputs] if isinstance(body.inputs, str) else body.inputs
    _check_items(len(values), state, "inputs")
    prepared = await service.prepare(values, "text", "inputs")
    embedded = await service.embed(prepared, "text", body.prompt_name or "document", "inputs")
    return json_response(shorten(embedded.vectors, body.dimensions, service.embedding.normalize,
                                 service.embedding.dimension))


# ---------------------------------------------------------------- rerank


@router.post("/rerank", openapi_extra=body_schema(RerankRequest))
@router.post("/v1/rerank", openapi_extra=body_schema(RerankRequest))
async def rerank(request: Request) -> Response:
    """Cohere/Jina's body (``documents``), or TEI's (``texts``): told apart by their keys."""
    payload = parse_object(await request.body())
    services, state = _services(request), request.app.state.server
    if "texts" in payload and "documents" not in payload:
        return await _tei_rerank(validated(TEIRerankRequest, payload), services, state)
    body = validated(RerankRequest, payload)
    model = _check_model(body.model, _served_rerankers(services, state), "rerank")
    _check_items(len(body.documents), state, "documents")
    _check_top(body.top_n, state, "top_n")
    service = services.rerank
    query = await service.query(body.query)  # type: ignore[union-attr]
    nodes = await service.nodes(body.documents)  # type: ignore[union-attr]
    scored = await service.rerank(query, nodes, keep_unscored=body.unscored == "keep")  # type: ignore[union-attr]
    results = []
    for entry in scored[: body.top_n or len(scored)]:
        result: dict[str, Any] = {"index": entry.index, "relevance_score": entry.score}
        if entry.score is None:
            result["unscored"] = entry.reason
        if body.return_documents:
            document = body.documents[entry.index]
            result["document"] = {"text": document} if isinstance(document, str) else document
        results.append(result)
    return json_response({"object": "rerank", "model": model, "results": results,
                          "usage": {"total_tokens": 0}, "created": int(time.time())})


async def _tei_rerank(body: TEIRerankRequest, services: Services, state: ServerState) -> Response:
    _served_rerankers(services, state)
    if body.raw_scores:
        raise APIError(400, "raw_scores is not available: scores are the model's own (CrossEncoder.predict's "
                            "scale, BLIP's match probability)", code="invalid_request", param="raw_scores")
    _check_items(len(body.texts), state, "texts")
    service = services.rerank
    nodes = await service.nodes(body.texts)  # type: ignore[union-attr]
    scored = await service.rerank(await service.query(body.query), nodes)  # type: ignore[union-attr]
    return json_response([{"index": entry.index, "score": entry.score,
                           **({"text": body.texts[entry.index]} if body.return_text else {})} for entry in scored])


# ---------------------------------------------------------------- search, models


@router.post("/search", openapi_extra=body_schema(SearchRequest))
@router.post("/v1/search", openapi_extra=body_schema(SearchRequest))
async def search(request: Request) -> Response:
    body = parse_body(await request.body(), SearchRequest)
    services, state = _services(request), request.app.state.server
    if services.search is None:
        raise APIError(404, "this server serves no index (start it with --store DIR or --url URL)", code="no_index")
    _check_top(body.top_k, state, "top_k")
    return json_response(await services.search.search(body))


@router.get("/models")
@router.get("/v1/models")
async def models(request: Request) -> Response:
    services, state = _services(request), request.app.state.server
    embed = services.embed
    created = int(state.started)
    data = [{"id": name, "object": "model", "created": created, "owned_by": "llama-index-mm-st",
             "capabilities": {"kind": "embedding", "modalities": embed.modalities, "dimension": embed.embedding.dimension,
                              "late_interaction": embed.embedding.late_interaction, "search": services.search is not None}}
            for name in _served_embedding(services, state)]
    if services.rerank is not None:
        data.append({"id": state.settings.rerank_id or ", ".join(services.rerank.model_names), "object": "model",
                     "created": created, "owned_by": "llama-index-mm-st",
                     "capabilities": {"kind": "rerank", "models": services.rerank.model_names}})
    return json_response({"object": "list", "data": data})


@router.get("/health")
@router.get("/v1/health")
async def health(request: Request) -> Response:
    status, body = request.app.state.server.health()
    return json_response(body, status)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    content, media_type = request.app.state.server.metrics.render()
    return Response(content, media_type=media_type)


# ---------------------------------------------------------------- helpers


def _check_top(value: Optional[int], state: ServerState, name: str) -> None:
    limit = state.settings.limits.max_top_k
    if value is not None and value > limit:
        raise APIError(400, f"{name}={value} is over the limit of {limit}", code="invalid_request", param=name)
