"""The search width and settings a query's dense branches use: given (``hnsw_ef``), measured for
``target_recall`` and recorded in the schema, or exact search. Pure: the measuring is ``recall.py``,
run by ``Collection.tune_hnsw_ef``.
"""

from __future__ import annotations

from typing import Optional

from llama_index_mm_st.store.fields import StoreFields
from llama_index_mm_st.store.plan import SearchSettings
from llama_index_mm_st.store.schema import StoreSchema
from llama_index_mm_st.store.settings import search_settings


def hnsw_ef(settings: StoreFields, schema: Optional[StoreSchema]) -> Optional[int]:
    """The search width queries use: ``hnsw_ef`` when given, else the width ``target_recall`` recorded, else the default."""
    if "hnsw_ef" in settings.model_fields_set or schema is None or schema.hnsw_ef is None:
        return settings.hnsw_ef
    return schema.hnsw_ef


def dense_search(settings: StoreFields, schema: Optional[StoreSchema]) -> Optional[SearchSettings]:
    """The dense branches' search settings (None: the engine's own); exact search when tuning found
    no width that reaches the target and the caller gave none."""
    if schema is not None and schema.exact_search and "hnsw_ef" not in settings.model_fields_set:
        return SearchSettings(exact=True)
    quantization = schema.quantization if schema is not None else None
    return search_settings(quantization, hnsw_ef(settings, schema), settings.rescore, settings.oversampling)
