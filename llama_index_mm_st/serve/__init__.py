"""``mmst serve``: embeddings, rerank and search over HTTP, in the shapes existing clients speak.

Build the app around components you already have (``create_app(Components(embedding, reranker,
store), ServeSettings(...))``) or a loader that builds them while ``/health`` says warming, and run
it with ``run(app, host, port)`` (graceful SIGTERM). Needs the ``[serve]`` extra (FastAPI, uvicorn,
prometheus-client). Nothing here imports ``cli/``. Names are imported on first use, so ``mmst --help``
reads the default limits (``serve.settings``) without loading the server.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "create_app": ".app",
    "Components": ".lifecycle",
    "Loader": ".lifecycle",
    "ServerState": ".lifecycle",
    "make_server": ".runner",
    "run": ".runner",
    "Limits": ".settings",
    "ServeSettings": ".settings",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
