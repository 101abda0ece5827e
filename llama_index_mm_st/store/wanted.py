"""The schema a store's settings ask for: pure, no I/O.

A setting the caller gave is asked for; one left out follows the collection when there is one (like
``dim``). ``Collection`` creates a new collection from this, and checks an existing one against it.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

from llama_index_mm_st.store.fields import StoreFields
from llama_index_mm_st.store.learned_sparse import sparse_layout
from llama_index_mm_st.store.schema import MULTIVECTOR_NAME, STORAGE_OPTIONS, StoreSchema
from llama_index_mm_st.store.settings import chosen_dense
from llama_index_mm_st.types import DENSE_VECTOR_NAMES


def options_given(settings: StoreFields) -> set[str]:
    """Storage options the caller set; the others follow the collection (like ``dim``)."""
    return set(STORAGE_OPTIONS) & settings.model_fields_set


def late_wanted(settings: StoreFields, default: bool) -> bool:
    """Whether the store asks for multivectors: as set, else ``default`` (the collection's, or the first nodes')."""
    return default if settings.late_interaction is None else settings.late_interaction


def sparse_wanted(settings: StoreFields, base: Optional[StoreSchema]) -> Dict[str, Any]:
    """The sparse vectors asked for: as given, else (left out) ``base``'s, the collection's."""
    return sparse_layout(base, settings.model_fields_set, settings.bm25, settings.sparse_model)


def wanted_schema(settings: StoreFields, dim: int, base: Optional[StoreSchema] = None, late: bool = False,
                  dense: Optional[Sequence[str]] = None) -> StoreSchema:
    """The schema the store asks for: options not given are taken from ``base`` when there is one;
    ``dense`` (checked by ``chosen_dense``) overrides the store's ``dense_vectors``."""
    given = options_given(settings)
    options = {o: getattr(base if base is not None and o not in given else settings, o) for o in STORAGE_OPTIONS}
    names = dense or chosen_dense(settings.dense_vectors) or (base.dense if base is not None else DENSE_VECTOR_NAMES)
    return StoreSchema(dim=dim, dense=tuple(names), bm25_language=settings.bm25_language,
                       multivector=MULTIVECTOR_NAME if late else None, **options, **sparse_wanted(settings, base))
