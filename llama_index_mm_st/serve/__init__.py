"""``mmst serve``: embeddings, rerank and search over HTTP, in the shapes existing clients speak.

Build the app around components you already have (``create_app(Components(embedding, reranker,
store), ServeSettings(...))``) or a loader that builds them while ``/health`` says warming, and run
it with ``runner.run(app, host, port)`` (graceful SIGTERM). Needs the ``[serve]`` extra (FastAPI,
uvicorn, prometheus-client). Nothing here imports ``cli/``.
"""

from .app import create_app
from .lifecycle import Components, Loader, ServerState
from .runner import make_server, run
from .settings import Limits, ServeSettings

__all__ = ["Components", "Limits", "Loader", "ServeSettings", "ServerState", "create_app", "make_server", "run"]
