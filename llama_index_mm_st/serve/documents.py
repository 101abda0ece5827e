"""``/v1/documents``: the served index, live. Handlers translate between the wire and ``DocumentWriter``.

- ``POST /v1/documents``: JSON ``{"documents": [{"id", "text", "image"|"audio"|"video"|"file"|"path",
  "name", "metadata"}]}`` or a multipart upload; each document is read, split, embedded (the embedding
  lane) and written as ``mmst index`` does it. The reply (200, as Elasticsearch's bulk API and Marqo's
  ``add_documents`` answer) lists each document's outcome: ``added``, ``replaced``, ``unchanged``, or
  ``refused`` with its ``param``, ``reason``, ``code`` and ``http_status`` (400 bad item, 409 the index
  can't take it, 429 the queue was full: send it again after ``retry_after``); ``errors`` says whether
  any was refused. A request every document of which the queue turned away is a 429 with
  ``Retry-After``; a body that is not a list of documents is a 4xx.
- ``GET /v1/documents`` (``limit``, ``after``: paging by id), ``GET /v1/documents/{id}``.
- ``DELETE /v1/documents/{id}``; ``POST /v1/documents/delete`` with ``ids`` and/or ``filters``
  (LlamaIndex ``MetadataFilters`` JSON: the matching points go).
"""

from __future__ import annotations

import asyncio
import bisect
from typing import Any, Dict, List, Optional

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from .body import parse_body, parse_json
from .doc_items import items_from_form, items_from_json
from .errors import APIError, Overloaded
from .lifecycle import ServerState
from .multipart import parse_form
from .routes import body_schema, json_response
from .writer import DocumentWriter

router = APIRouter()
DEFAULT_PAGE = 100
MAX_PAGE = 1000


class DeleteRequest(BaseModel):
    """``POST /v1/documents/delete``: documents by id, and/or the points matching ``filters``."""

    model_config = ConfigDict(extra="forbid")

    ids: Optional[List[str]] = Field(default=None, min_length=1)
    filters: Optional[Dict[str, Any]] = None


def _writer(request: Request, write: bool = False) -> DocumentWriter:
    state: ServerState = request.app.state.server
    services = state.services
    if services is None:
        raise state.refusal() or APIError(503, "the server is not ready", code="warming_up")
    if services.search is None or services.documents is None:
        raise APIError(404, "this server serves no index (start it with --store DIR or --url URL)", code="no_index")
    if write and not services.documents.writable:
        raise APIError(403, "this server's index is read-only (it was started with --read-only)", code="read_only")
    return services.documents


def _json(content: Any, status: int = 200) -> Response:
    return json_response(content, status)  # refuses NaN, as every route's answer


@router.post("/documents")
@router.post("/v1/documents")
async def add_documents(request: Request) -> Response:
    writer = _writer(request, write=True)
    state: ServerState = request.app.state.server
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        specs = items_from_form(parse_form(content_type, body))
    else:
        specs = items_from_json(parse_json(body))  # the one bounded, strict parser (``body.py``)
    limit = state.settings.limits.max_request_items
    if not specs:
        raise APIError(400, "no documents given", code="invalid_request", param="documents")
    if len(specs) > limit:
        raise APIError(413, f"{len(specs)} documents in one request; at most {limit}", code="too_many_items")
    documents = await writer.add(specs)
    counts = {status: sum(1 for d in documents if d["status"] == status)
              for status in ("added", "replaced", "unchanged", "refused")}
    if documents and counts["refused"] == len(documents):
        waits = [d["retry_after"] for d in documents if "retry_after" in d]
        if len(waits) == len(documents):  # all turned away by a full queue: the client's SDK retries a 429
            raise Overloaded(documents[0]["reason"], max(waits), code=documents[0]["code"])
    return _json({"object": "list", "documents": documents, **counts, "errors": counts["refused"] > 0})


@router.get("/documents")
@router.get("/v1/documents")
async def list_documents(request: Request, limit: int = DEFAULT_PAGE, after: Optional[str] = None) -> Response:
    writer = _writer(request)
    if not 1 <= limit <= MAX_PAGE:
        raise APIError(400, f"limit must be 1 to {MAX_PAGE}, got {limit}", code="invalid_request", param="limit")
    entries = await asyncio.to_thread(writer.documents)
    ids = sorted(entries)
    start = 0
    if after is not None:
        start = bisect.bisect_right(ids, after)
    page = ids[start: start + limit]
    more = start + limit < len(ids)
    return _json({"object": "list", "data": [entries[i] for i in page], "total": len(ids), "has_more": more,
                  "next": page[-1] if more and page else None})


@router.get("/documents/{document_id:path}")
@router.get("/v1/documents/{document_id:path}")
async def get_document(document_id: str, request: Request) -> Response:
    entry = (await asyncio.to_thread(_writer(request).documents)).get(document_id)
    if entry is None:
        raise APIError(404, f"no document {document_id!r} in this index", code="not_found", param="id")
    return _json(entry)


@router.delete("/documents/{document_id:path}")
@router.delete("/v1/documents/{document_id:path}")
async def delete_document(document_id: str, request: Request) -> Response:
    writer = _writer(request, write=True)
    deleted = await asyncio.to_thread(writer.delete, [document_id])
    if not deleted:
        raise APIError(404, f"no document {document_id!r} in this index", code="not_found", param="id")
    return _json({"id": document_id, "deleted": True, "points": sum(entry["points"] for entry in deleted)})


@router.post("/documents/delete", openapi_extra=body_schema(DeleteRequest))
@router.post("/v1/documents/delete", openapi_extra=body_schema(DeleteRequest))
async def delete_documents(request: Request) -> Response:
    body = parse_body(await request.body(), DeleteRequest)
    from .search import _filters as parse_filters  # the one reading of a filters body (/v1/search's)

    writer = _writer(request, write=True)
    if body.ids is None and body.filters is None:
        raise APIError(400, "say what to delete: ids, filters, or both (documents among ids matching filters)",
                       code="invalid_request", param="ids")
    filters = parse_filters(body.filters)
    deleted = await asyncio.to_thread(writer.delete, body.ids, filters)
    return _json({"object": "list", "deleted": deleted, "points": sum(entry["points"] for entry in deleted)})
