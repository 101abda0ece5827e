"""Pure planning for late-interaction collections: which MaxSim stage a query gets.

The store knows nothing about models: a query's multivector arrives as data, either carried by the
query vector (``multivector.PooledVector``, what a late-interaction ``MultimodalEmbedding`` returns,
so a plain LlamaIndex retriever passes it through untouched), given as a 2-D ``query_embedding``,
or passed as ``query_multivector=``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import numpy as np
from llama_index.core.vector_stores.types import VectorStoreQuery

from llama_index_mm_st.multivector import pooled, query_multivector
from llama_index_mm_st.store.plan import LateStage, SearchSettings
from llama_index_mm_st.store.schema import StoreSchema

DEFAULT_PREFETCH_LIMIT = 256
"""Candidates each pooled dense branch hands to exact MaxSim. At 10k synthetic pages the default
kept recall@5 against exact MaxSim over every page at or above 0.95 (``bench/late.py``)."""

DEFAULT_MULTIVECTOR_OVERSAMPLING = {"int8": 2.0, "binary": 4.0}
"""With a quantized multivector, MaxSim on the compressed copy keeps ``oversampling`` times the
limit, which exact MaxSim over the originals then re-ranks."""


def late_stage(schema: Optional[StoreSchema], query: VectorStoreQuery, given: Any, prefetch_limit: int,
               oversampling: Optional[float]) -> tuple[VectorStoreQuery, Optional[LateStage]]:
    """The query (with a pooled vector) and its MaxSim stage; no stage in a single-vector collection,
    or when the query brings no multivector (then the pooled vectors rank, as for any LlamaIndex caller)."""
    matrix = given if given is not None else query_multivector(query.query_embedding)
    if schema is None or not schema.late_interaction:
        if given is not None:
            raise ValueError("query_multivector= needs a late-interaction collection; this one holds single vectors")
        return query, None
    if matrix is None:
        return query, None
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] == 0 or matrix.shape[1] != schema.dim:
        raise ValueError(f"the query multivector must be a (tokens, {schema.dim}) matrix, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError("the query multivector has a non-finite value")
    embedding = query.query_embedding
    if embedding is None or getattr(embedding, "multivector", None) is None and query_multivector(embedding) is not None:
        # Only the token vectors were given: the prefetch ranks by their pooled vector.
        query = dataclasses.replace(query, query_embedding=pooled(matrix).tolist())
    kind = schema.multivector_quantization
    search = None
    if kind is not None:
        factor = oversampling if oversampling is not None else DEFAULT_MULTIVECTOR_OVERSAMPLING.get(kind)
        search = SearchSettings(quantized=True, rescore=True, oversampling=factor)
    return query, LateStage(schema.multivector or "", matrix.tolist(), prefetch_limit, search)
