"""BM25 term weights behind one small interface, so the store never names an engine for tokenising.

The tokeniser and stemmer are ``qdrant_edge.Bm25``: the same as Qdrant's own ``qdrant/bm25``, so
vectors written here match queries made by any Qdrant client. It is the only part of qdrant-edge-py
a store on a Qdrant server loads; the engine itself is loaded only by the Edge backend. IDF is
applied by the engine (``Modifier.IDF``), so a document's vector holds term frequencies only.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Protocol, Sequence

from llama_index_mm_st.types import SparseVector


class SparseTextEncoder(Protocol):
    """Text -> sparse term weights, with separate document and query weighting (``documents``: many at
    once, which a model encodes in batches). BM25 here; a learned model in ``store.learned_sparse``."""

    def document(self, text: str) -> SparseVector: ...

    def documents(self, texts: Sequence[str]) -> list[SparseVector]: ...

    def query(self, text: str) -> SparseVector: ...


class QdrantBm25:
    """Qdrant's BM25 (``qdrant_edge.Bm25``) for one language's stopwords and stemmer."""

    def __init__(self, language: str) -> None:
        import qdrant_edge  # the tokeniser only; see the module docstring

        self.language = language
        self._bm25 = qdrant_edge.Bm25(qdrant_edge.Bm25Config(language=language))

    def document(self, text: str) -> SparseVector:
        return EngineSparseVector(self._bm25.embed_document(text))  # type: ignore[return-value]

    def documents(self, texts: Sequence[str]) -> list[SparseVector]:
        return [self.document(text) for text in texts]

    def query(self, text: str) -> SparseVector:
        vector = self._bm25.embed_query(text)
        return SparseVector(vector.indices, vector.values)


class EngineSparseVector:
    """A ``SparseVector`` that keeps the engine's own object (``qdrant_edge.SparseVector``): the Edge
    backend writes that object as it is, and ``values`` becomes a Python list only when something
    reads it (a server backend). Reading both lists from the engine object costs as much as the
    tokenising, per point of a bulk write."""

    __slots__ = ("engine", "indices", "__dict__")

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.indices = engine.indices  # read at once: an empty vector (only stop words) is dropped by its length

    @cached_property
    def values(self) -> list[float]:
        return self.engine.values

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, (SparseVector, EngineSparseVector))
                and list(self.indices) == list(other.indices) and list(self.values) == list(other.values))

    def __repr__(self) -> str:
        return f"SparseVector(indices={list(self.indices)}, values={list(self.values)})"
