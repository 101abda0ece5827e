"""Backends: Qdrant Edge (embedded, the default) and qdrant-client (server, cluster, local mode)."""

from llama_index_mm_st.store.backends.base import Backend, Hit
from llama_index_mm_st.store.backends.client import ClientBackend
from llama_index_mm_st.store.backends.edge import EdgeBackend

__all__ = ["Backend", "ClientBackend", "EdgeBackend", "Hit"]
