"""Query-time settings of the store and their measured defaults: pure values, no I/O.

Kept apart from ``store.py`` so the store class stays thin, and so the numbers behind each default
sit next to it.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence

from llama_index_mm_st.store.plan import SearchSettings
from llama_index_mm_st.store.schema import LEARNED_SPARSE_NAME, SPARSE_VECTOR_NAME
from llama_index_mm_st.types import DENSE_VECTOR_NAMES

from llama_index_mm_st.defaults import DEFAULT_HNSW_EF, DEFAULT_OVERSAMPLING  # noqa: E402,F401 - the one set of defaults


def search_settings(quantization: Optional[str], hnsw_ef: Optional[int], rescore: bool,
                    oversampling: Optional[float]) -> Optional[SearchSettings]:
    """The dense branches' search settings; None leaves every choice to the engine."""
    if quantization is None and hnsw_ef is None:
        return None
    if oversampling is None:
        oversampling = DEFAULT_OVERSAMPLING.get(quantization or "")
    return SearchSettings(hnsw_ef, quantization is not None, rescore, oversampling)


def check_weights(weights: Dict[str, float]) -> None:
    """RRF weights name branches the store has: its dense vectors, BM25 and the learned sparse vector."""
    branches = (*DENSE_VECTOR_NAMES, SPARSE_VECTOR_NAME, LEARNED_SPARSE_NAME)
    if not isinstance(weights, dict):
        raise ValueError(f"rrf_weights must be a dict of branch name -> weight, got {type(weights).__name__}")
    unknown = set(weights) - set(branches)
    if unknown:
        raise ValueError(f"rrf_weights keys must be among {list(branches)}, got {sorted(unknown)}")
    for name, weight in weights.items():  # NaN or infinity would reach the engine and the scores
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
            raise ValueError(f"rrf_weights[{name!r}] must be a finite number >= 0, got {weight!r}")


def known_dense(names: Sequence[str]) -> tuple[str, ...]:
    """An existing collection's dense vectors when they are ours (a subset of today's), else today's
    set, so that ``check_schema`` names the difference."""
    return tuple(names) if set(names) <= set(DENSE_VECTOR_NAMES) and "text" in names else DENSE_VECTOR_NAMES


def chosen_dense(names: Optional[Sequence[str]]) -> Optional[tuple[str, ...]]:
    """The caller's ``dense_vectors`` in the store's order, checked; None when left out. Text is
    always among them: every query starts from text, and the BM25 words sit beside it."""
    if names is None:
        return None
    unknown = sorted(set(names) - set(DENSE_VECTOR_NAMES))
    if unknown:
        raise ValueError(f"dense_vectors: unknown {unknown}; choose among {list(DENSE_VECTOR_NAMES)}")
    if "text" not in names:
        raise ValueError(f"dense_vectors must include 'text' (every model here embeds text), got {list(names)}")
    return tuple(name for name in DENSE_VECTOR_NAMES if name in names)
