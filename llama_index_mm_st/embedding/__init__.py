"""Multimodal embeddings: ``MultimodalEmbedding`` and its result type."""

from .embedding import DEFAULT_MODEL, EmbeddingResult, MultimodalEmbedding

__all__ = ["DEFAULT_MODEL", "EmbeddingResult", "MultimodalEmbedding"]
