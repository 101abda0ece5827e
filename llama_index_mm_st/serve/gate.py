"""The ASGI layer in front of every route: metrics, the key, the body limit and the phase, in that order.

Written as plain ASGI (no per-request middleware objects) because it runs on every request. ``/health``
and ``/metrics`` need no key and are always answered. The body is read here, bounded, before any route
sees it: a declared ``Content-Length`` over the limit is refused before a byte is read, and a chunked
body is cut off at the limit. The access log line names the route (not the raw path or query string)
and never the key: nothing a caller sent is logged at info level.
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Any, Awaitable, Callable, Optional

from .errors import APIError
from .lifecycle import ServerState

log = logging.getLogger("llama_index_mm_st.serve")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_ROUTES = frozenset({"/health", "/v1/health", "/metrics"})
KNOWN_ROUTES = frozenset({
    "/embeddings", "/v1/embeddings", "/embed", "/v1/embed", "/rerank", "/v1/rerank", "/search", "/v1/search",
    "/models", "/v1/models", "/docs", "/openapi.json", *OPEN_ROUTES,
    "/documents", "/v1/documents", "/documents/delete", "/v1/documents/delete", "/index", "/v1/index",
    "/nodes", "/v1/nodes", "/nodes/query", "/v1/nodes/query", "/nodes/get", "/v1/nodes/get",
    "/nodes/delete", "/v1/nodes/delete",
})
ID_ROUTES = ("/documents/", "/v1/documents/")
"""Routes with an id in the path: labelled by the route, never by the id."""


def route_label(path: str) -> str:
    """The metrics and log name of a path: the route, or ``other`` (a caller's path is not a label)."""
    if path in KNOWN_ROUTES:
        return path
    return next((prefix + "{id}" for prefix in ID_ROUTES if path.startswith(prefix)), "other")


def key_matches(header: Optional[bytes], expected: bytes) -> bool:
    """``Authorization: Bearer KEY`` or the bare key (LlamaIndex's TEI clients send it so), compared in
    constant time."""
    if header is None:
        return False
    value = header.strip()
    if value[:7].lower() == b"bearer ":
        value = value[7:].strip()
    return hmac.compare_digest(value, expected)


class Gate:
    """Wraps the app: counts and times requests, checks the key, bounds the body, refuses while not ready."""

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app = app
        self.state = state
        key = state.settings.api_key
        self.key = key.encode() if key is not None else None
        self.max_body = state.settings.limits.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = route_label(scope["path"])
        start = time.perf_counter()
        status = {"code": 500}

        async def send_counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            if route in OPEN_ROUTES:
                await self.app(scope, receive, send_counted)
                return
            refusal = self._check(scope)
            if refusal is not None:
                await self._refuse(refusal, send_counted)
                return
            body = await self._read_body(scope, receive)
            if isinstance(body, APIError):
                await self._refuse(body, send_counted)
                return
            self.state.enter()
            try:
                await self.app(scope, _replay(body, receive), send_counted)
            finally:
                self.state.leave()
        finally:
            elapsed = time.perf_counter() - start
            metrics = self.state.metrics
            metrics.requests.labels(route, str(status["code"])).inc()
            metrics.request_seconds.labels(route).observe(elapsed)
            log.info("%s %s %d %.1f ms", scope["method"], route, status["code"], elapsed * 1000)

    def _check(self, scope: Scope) -> Optional[APIError]:
        headers = dict(scope["headers"])
        if self.key is not None and not key_matches(headers.get(b"authorization"), self.key):
            self.state.metrics.rejections.labels("unauthorized").inc()
            missing = b"authorization" not in headers
            return APIError(401, "an API key is required: send 'Authorization: Bearer KEY'" if missing
                            else "the API key is not valid", code="invalid_api_key")
        refusal = self.state.refusal()
        if refusal is not None:
            self.state.metrics.rejections.labels(refusal.code or "unavailable").inc()
            return refusal
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            return self._too_large()
        return None

    def _too_large(self) -> APIError:
        self.state.metrics.rejections.labels("body_too_large").inc()
        return APIError(413, f"the request body is over the limit of {self.max_body / 2**20:g} MiB",
                        code="body_too_large")

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | APIError:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _refuse(self, error: APIError, send: Send) -> None:
        content = error.content()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
        headers += [(name.lower().encode(), value.encode()) for name, value in error.headers().items()]
        if error.status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await send({"type": "http.response.body", "body": content})


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the route the body already read, then waits on the real one (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
