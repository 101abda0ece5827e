"""``Tuning``: the search width a query uses (given, measured for ``target_recall``, or exact
search) and the recall measurements behind it (``recall.py`` does the measuring).

A mixin of ``MultimodalQdrantStore``: a plain class without fields or annotations (pydantic would
take those for fields).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

from llama_index_mm_st.store import plan as P
from llama_index_mm_st.store import recall as R
from llama_index_mm_st.store.settings import search_settings


class Tuning:
    """recall@k against exact search, ``tune_hnsw_ef``, and the search settings queries use."""

    def recall_report(self, sample: int = R.DEFAULT_SAMPLE, top_k: int = R.DEFAULT_TOP_K,
                      queries: R.ProbeQueries = None, hnsw_ef: Optional[int] = None) -> R.RecallReport:
        """recall@``top_k`` of this store's dense search against exact search, per dense vector: ``sample``
        stored points (each left out of its own results) or the caller's ``queries`` (vectors searched in
        every dense vector, or a dict naming the vector for each list), searched as queries are (graph
        width, quantization, oversampling, rescoring; ``hnsw_ef=`` another width) and exactly."""
        ef = hnsw_ef if hnsw_ef is not None else self._hnsw_ef()
        return R.estimate(self._backend, self._searched_dense(), self._search_settings(), ef, sample, top_k, queries)

    def estimate_recall(self, sample: int = R.DEFAULT_SAMPLE, top_k: int = R.DEFAULT_TOP_K,
                        queries: R.ProbeQueries = None) -> float:
        """recall@``top_k`` of this store's search over every probe query (``recall_report`` has it per vector)."""
        return self.recall_report(sample, top_k, queries).recall

    def tune_hnsw_ef(self, target: Optional[float] = None, sample: int = R.DEFAULT_SAMPLE,
                     top_k: int = R.DEFAULT_TOP_K) -> int:
        """Measure the narrowest search width whose recall@``top_k`` reaches ``target`` (default: the
        store's ``target_recall``) on every dense vector, record it in the schema and use it; returns it.
        When no width up to 4,096 reaches it and exact search costs no more than the widest, queries
        search exactly (``schema.exact_search``). Run it again when the collection has changed much
        (``optimize()`` does, with ``target_recall`` set)."""
        target = target if target is not None else self.target_recall
        if self._schema is None:
            raise ValueError("the collection does not exist yet: add nodes first")
        tuned = R.tune(self._backend, self._searched_dense(), self._search_settings(), target, sample, top_k)
        self._schema = replace(self._schema, hnsw_ef=tuned.hnsw_ef, target_recall=target, exact_search=tuned.exact)
        self._backend.record_schema(self._schema)
        return tuned.hnsw_ef

    def _hnsw_ef(self) -> Optional[int]:
        """The search width queries use: ``hnsw_ef`` when given, else the width ``target_recall`` recorded, else the default."""
        schema = self._schema
        if "hnsw_ef" in self.model_fields_set or schema is None or schema.hnsw_ef is None:
            return self.hnsw_ef
        return schema.hnsw_ef

    def _search_settings(self) -> Optional[P.SearchSettings]:
        schema = self._schema
        quantization = schema.quantization if schema is not None else None
        settings = search_settings(quantization, self._hnsw_ef(), self.rescore, self.oversampling)
        if schema is not None and schema.exact_search and "hnsw_ef" not in self.model_fields_set:
            return P.SearchSettings(exact=True)  # what target_recall chose: no graph width reached it
        return settings
