"""``create_app``: the ASGI app of ``mmst serve``, from components already built (or a loader) and settings.

The app knows nothing of the command line: tests build it in-process around the components they
compare against, and ``mmst serve`` is a thin runner that resolves models, passes a loader and runs
uvicorn (``serve.runner``). Every error leaves in the OpenAI shape (``errors.APIError``).
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Optional, Union

from ..errors import ItemError, MissingDependencyError
from .errors import APIError, validation_error
from .lifecycle import Components, Loader, ServerState
from .metrics import Metrics
from .settings import ServeSettings

log = logging.getLogger("llama_index_mm_st.serve")
COUNTED_REFUSALS = (413, 429, 503)


def create_app(components: Union[Components, Loader], settings: Optional[ServeSettings] = None) -> Any:
    """A FastAPI app serving ``components`` (or what ``loader()`` builds, loaded while ``/health`` says
    warming). ``app.state.server`` is its ``ServerState`` (phase, services, ``begin_stopping``)."""
    try:
        from fastapi import FastAPI, Request
        from fastapi.exceptions import RequestValidationError
        from starlette.exceptions import HTTPException
        from starlette.responses import Response
    except ImportError as exc:
        raise MissingDependencyError("fastapi and uvicorn", "serve") from exc
    from .. import __version__
    from .documents import router as documents_router
    from .nodes import router as nodes_router
    from .gate import Gate
    from .routes import router

    settings = settings or ServeSettings()
    metrics = Metrics()
    state = ServerState(components, settings, metrics)

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        state.start()
        try:
            yield
        finally:
            state.begin_stopping()
            state.close()

    app = FastAPI(title="llama-index-mm-st", version=__version__, lifespan=lifespan,
                  description="Embeddings (OpenAI, Infinity and TEI shapes), rerank (Cohere/Jina, TEI) and search.")
    app.state.server = state
    app.include_router(router)
    app.include_router(documents_router)
    app.include_router(nodes_router)
    app.add_middleware(Gate, state=state)

    def answer(error: APIError) -> Response:
        if error.status in COUNTED_REFUSALS:
            metrics.rejections.labels(error.code or str(error.status)).inc()
        return Response(error.content(), error.status, headers=error.headers(), media_type="application/json")

    @app.exception_handler(APIError)
    async def api_error(_: Request, error: APIError) -> Response:
        return answer(error)

    @app.exception_handler(RequestValidationError)
    async def schema_error(_: Request, error: RequestValidationError) -> Response:
        return answer(validation_error(list(error.errors())))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> Response:
        return answer(APIError(error.status_code, str(error.detail), code="not_found" if error.status_code == 404 else None))

    @app.exception_handler(ItemError)
    async def item_error(_: Request, error: ItemError) -> Response:
        # Routes name a bad item by its request field (``bad_item``); one that escaped them is still the
        # caller's input, named by the library's label, and never a 500.
        return answer(APIError(400, str(error), code="invalid_item"))

    @app.exception_handler(Exception)
    async def internal_error(_: Request, error: Exception) -> Response:
        log.error("internal error: %s", type(error).__name__, exc_info=error)
        return answer(APIError(500, f"internal error ({type(error).__name__}); the server log has the details",
                               code="internal_error"))

    return app
