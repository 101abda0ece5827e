"""Backends: Qdrant Edge (embedded, the default) and qdrant-client (server, cluster, local mode).

``EdgeBackend`` is imported on first use, so a store on a Qdrant server never loads the Edge engine.
"""

from typing import Any

from llama_index_mm_st.store.backends.base import Backend, Hit
from llama_index_mm_st.store.backends.client import ClientBackend

__all__ = ["Backend", "ClientBackend", "EdgeBackend", "Hit"]


def __getattr__(name: str) -> Any:
    if name == "EdgeBackend":
        from llama_index_mm_st.store.backends.edge import EdgeBackend

        return EdgeBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
