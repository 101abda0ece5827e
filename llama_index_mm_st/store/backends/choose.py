"""Choose the backend in one place (as qdrant-client's constructor does): ``client=`` or ``url=``
-> qdrant-client, else Qdrant Edge, whose engine is imported only then."""

from __future__ import annotations

import os
from typing import Any, Dict, Optional

from qdrant_client import QdrantClient

from llama_index_mm_st.store.backends.base import Backend
from llama_index_mm_st.store.backends.client import ClientBackend

API_KEY_ENV = "QDRANT_API_KEY"


def open_backend(
    collection_name: str,
    path: Optional[str],
    url: Optional[str],
    api_key: Optional[str],
    client: Optional[QdrantClient],
    client_kwargs: Optional[Dict[str, Any]],
    cluster: Dict[str, Optional[int]],
    wal: bool = True,
) -> Backend:
    """Choose the backend in one place: ``client=`` or ``url=`` -> qdrant-client, else Qdrant Edge."""
    given = [name for name, value in (("path", path), ("url", url), ("client", client)) if value is not None]
    if len(given) > 1:
        raise ValueError(f"give only one of path, url or client; got {given}")
    if client is None and url is None:
        unused = [name for name, value in cluster.items() if value is not None]
        if unused:
            raise ValueError(f"{unused} apply to a Qdrant server (url= or client=), not to an Edge store")
        from llama_index_mm_st.store.backends.edge import EdgeBackend  # the engine loads only when used

        return EdgeBackend(path, collection_name)
    if not wal:
        raise ValueError("wal=False applies to an Edge store; a Qdrant server keeps its own write-ahead log")
    owns = client is None
    if client is None:
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        client = QdrantClient(url=url, api_key=key, **(client_kwargs or {}))
    return ClientBackend(client, collection_name, owns_client=owns, **cluster)
