"""Multimodal Qdrant storage: one collection, a dense vector per modality plus BM25, RRF in the engine."""

from llama_index_mm_st.errors import UnsupportedFilterError
from llama_index_mm_st.store.documents import StoredDocument
from llama_index_mm_st.store.payload import PointSpec
from llama_index_mm_st.store.plan import Branch, QueryPlan
from llama_index_mm_st.store.schema import IndexKind, StoreSchema
from llama_index_mm_st.store.store import MultimodalQdrantStore

__all__ = ["Branch", "IndexKind", "MultimodalQdrantStore", "PointSpec", "QueryPlan", "StoreSchema",
           "StoredDocument", "UnsupportedFilterError"]
