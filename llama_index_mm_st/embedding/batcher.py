"""Dynamic batching for async callers; the class lives in the base layer (``concurrency``), shared with the store."""

from llama_index_mm_st.concurrency import BatchFn, DynamicBatcher

__all__ = ["BatchFn", "DynamicBatcher"]
