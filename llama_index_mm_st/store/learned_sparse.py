"""A learned sparse model (sentence-transformers ``SparseEncoder``: SPLADE and inference-free
document models) behind the store's sparse-encoder interface.

Documents go through the model's own ``encode_document`` and queries through ``encode_query``, so
each side gets its prompt and, for a model with a router (an inference-free model's static query
side), its own modules: the stored vectors are exactly the model's. sentence-transformers (and torch)
load only when a store with a sparse model first encodes something: opening any store, or a store
whose model is never asked, stays light.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Dict, List, Optional, Sequence, Set

from dataclasses import replace

from llama_index_mm_st.inputs import NodeParts
from llama_index_mm_st.store.payload import PointSpec, bm25_text
from llama_index_mm_st.store.schema import LEARNED_SPARSE_NAME, SPARSE_VECTOR_NAME, StoreSchema
from llama_index_mm_st.types import SparseVector

DOCUMENT_BATCH = 32
"""Texts per forward pass when a store encodes the words of the nodes it adds."""


def model_reference(model: str) -> str:
    """How a model is recorded in the schema: a local folder by its absolute path (so ./m and /abs/m are
    the same model), a hub id as given."""
    expanded = os.path.expanduser(model)
    return os.path.abspath(expanded) if os.path.isdir(expanded) else model


def _rows(embeddings: Any) -> List[SparseVector]:
    """A (texts, vocabulary) torch sparse tensor as one ``SparseVector`` per row, in row order."""
    matrix = embeddings.coalesce()
    rows, columns = matrix.indices().tolist()
    values = matrix.values().tolist()
    out: List[tuple[list[int], list[float]]] = [([], []) for _ in range(matrix.shape[0])]
    for row, column, value in zip(rows, columns, values):
        if value != 0.0:
            out[row][0].append(int(column))
            out[row][1].append(float(value))
    return [SparseVector(indices, weights) for indices, weights in out]


class LearnedSparseEncoder:
    """``document``/``documents``/``query`` through a ``SparseEncoder``, loaded on first use.

    ``model`` is a hub id or a local folder; ``model_kwargs`` go to ``SparseEncoder(...)`` (``device``,
    ``trust_remote_code``, ...).
    """

    def __init__(self, model: str, model_kwargs: Optional[Dict[str, Any]] = None) -> None:
        self.model = model
        self.model_kwargs = dict(model_kwargs or {})
        self._loaded: Any = None
        self._lock = threading.Lock()

    def _encoder(self) -> Any:
        with self._lock:  # concurrent first queries load the model once
            if self._loaded is None:
                from sentence_transformers import SparseEncoder

                try:
                    self._loaded = SparseEncoder(self.model, **self.model_kwargs)
                except OSError as exc:
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    raise ValueError(f"cannot load the sparse model {self.model!r}: {first}") from exc
        return self._loaded

    def documents(self, texts: Sequence[str]) -> List[SparseVector]:
        if not texts:
            return []
        encoded = self._encoder().encode_document(list(texts), batch_size=DOCUMENT_BATCH, show_progress_bar=False,
                                                  convert_to_sparse_tensor=True)
        return _rows(encoded)

    def document(self, text: str) -> SparseVector:
        return self.documents([text])[0]

    def query(self, text: str) -> SparseVector:
        encoded = self._encoder().encode_query([text], show_progress_bar=False, convert_to_sparse_tensor=True)
        return _rows(encoded)[0]

    def __getstate__(self) -> Dict[str, Any]:
        """Pickles its configuration, never the weights (a copy loads the model on first use)."""
        return {"model": self.model, "model_kwargs": self.model_kwargs}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        LearnedSparseEncoder.__init__(self, state["model"], state["model_kwargs"])


def sparse_layout(base: Optional[StoreSchema], given: Set[str], bm25: bool, sparse_model: Optional[str]) -> Dict[str, Any]:
    """The schema's sparse fields a store asks for: the store's ``bm25``/``sparse_model`` where ``given``
    names them (or there is no ``base``), else ``base``'s (a reopen that leaves them out keeps the collection's)."""
    if base is not None and "bm25" not in given:
        sparse = base.sparse
    else:
        sparse = SPARSE_VECTOR_NAME if bm25 else None
    layout: Dict[str, Any] = {"sparse": sparse}
    if base is not None and ("sparse_model" not in given or sparse_model is None):  # None: the collection's
        layout.update(learned_sparse=base.learned_sparse, sparse_model=base.sparse_model)
    else:
        layout.update(learned_sparse=LEARNED_SPARSE_NAME if sparse_model else None,
                      sparse_model=model_reference(sparse_model) if sparse_model else None)
    return layout


def learned_encoder(schema: Optional[StoreSchema], current: Optional[LearnedSparseEncoder],
                    model_kwargs: Dict[str, Any]) -> Optional[LearnedSparseEncoder]:
    """The encoder of ``schema``'s learned sparse model (None without one), ``current`` when it is that model."""
    model = schema.sparse_model if schema is not None and schema.learned_sparse else None
    if model is None:
        return None
    if current is not None and current.model == model:
        return current
    return LearnedSparseEncoder(model, model_kwargs)


def with_learned_sparse(points: List[PointSpec], readings: Sequence[NodeParts], encoder: LearnedSparseEncoder,
                        keys: Sequence[str]) -> List[PointSpec]:
    """The points with their learned sparse vectors: the model reads the words BM25 indexes (the node's
    text and caption-like metadata, from each node's reading in its stored form), every node's in batches."""
    texts = [bm25_text(parts, keys) for parts in readings]
    worded = [i for i, text in enumerate(texts) if text]
    out = list(points)
    for i, vector in zip(worded, encoder.documents([texts[i] for i in worded])):
        if len(vector.indices):
            out[i] = replace(out[i], learned_sparse=vector)
    return out
