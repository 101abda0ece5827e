"""Clients of a model server, as LlamaIndex components: ``RemoteMultimodalEmbedding``, ``RemoteReranker``, and
``RemoteMultimodalStore`` (the index ``mmst serve --store`` holds, as a vector store).

For app servers that call one GPU box (``mmst serve``, or an Infinity server) instead of loading the
models themselves: nothing here imports torch. HTTP through httpx, sync and async, with retries on 429
and 503 that honour ``Retry-After``.
"""

from .embedding import RemoteMultimodalEmbedding
from .reranker import RemoteReranker
from .store import RemoteMultimodalStore

__all__ = ["RemoteMultimodalEmbedding", "RemoteMultimodalStore", "RemoteReranker"]
