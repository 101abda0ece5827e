"""``Reads``: what the store answers besides a query: counts, stored payload values and sparse
vectors, the collection's metadata, and its readings of a node or a text.

A mixin of ``MultimodalQdrantStore``: a plain class without fields or annotations (pydantic would
take those for fields). ``_selection`` is the one filter for "these ids and/or these metadata
filters", shared by reads, deletes and ``get_nodes``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence

from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import MetadataFilters
from qdrant_client import models

from llama_index_mm_st.inputs import read_node
from llama_index_mm_st.store import plan as P
from llama_index_mm_st.store.filters import all_of, to_qdrant_filter
from llama_index_mm_st.store.schema import MODALITY_KEY
from llama_index_mm_st.types import MODALITIES, Modality, SparseVector


class Reads:
    """Counts, payload values, stored sparse vectors, collection metadata, and node/text readings."""

    @staticmethod
    def _selection(node_ids: Optional[Sequence[str]], filters: Optional[MetadataFilters]) -> Optional[models.Filter]:
        if node_ids is not None and not node_ids:
            return models.Filter(must=[models.HasIdCondition(has_id=[])])
        return all_of(
            [
                models.HasIdCondition(has_id=[P.point_id(i) for i in node_ids]) if node_ids else None,
                to_qdrant_filter(filters) if filters is not None and filters.filters else None,
            ]
        )

    def payload_values(self, keys: Sequence[str], filters: Optional[MetadataFilters] = None) -> List[Dict[str, Any]]:
        """The named payload keys of every point matching ``filters``, nothing else: no node is rebuilt
        and no vector read, so a resume check over a large store reads only what it needs."""
        return [dict(h.payload) for h in self._backend.scroll(self._selection(None, filters), payload=list(keys))]

    def sparse_vectors(self, node_ids: Sequence[str], vector: Optional[str] = None) -> List[tuple[List[int], List[float]]]:
        """The stored sparse vectors of these nodes, in the order asked, as ``(indices, values)`` pairs:
        the learned sparse model's by default (BM25's when there is none; ``vector="bm25"`` asks for it);
        ``([], [])`` for a node without words. For tests and debugging."""
        schema = self._schema
        names = schema.sparse_vectors if schema is not None else ()
        name = vector or (schema.learned_sparse or schema.sparse if schema is not None else None)
        if name not in names:
            raise ValueError(f"this store has no sparse vector {name!r}; it holds {list(names)}")
        found = self._backend.sparse_vectors([P.point_id(i) for i in node_ids], name)
        missing = [i for i in node_ids if P.point_id(i) not in found]
        if missing:
            raise ValueError(f"no node with id {missing[0]!r} in the store ({len(missing)} of those asked are missing)")
        return [found[P.point_id(i)] for i in node_ids]

    def sparse_query_vector(self, text: str) -> SparseVector:
        """The BM25 vector this store searches ``text`` with; no indices when it has no searchable
        words (only stop words or punctuation)."""
        return self._bm25.query(text)

    def modality_of(self, node: BaseNode) -> Modality:
        """The modality tag this store gives a node: "image" (pixels only), "text+image" (pixels and
        words) or "text"; the same rule the embedding and the reranker apply."""
        return read_node(node).modality

    def get_metadata(self) -> Dict[str, Any]:
        """Free-form metadata kept with the collection (e.g. which model built it); {} if none."""
        return self._backend.read_metadata()

    def update_metadata(self, values: Dict[str, Any]) -> None:
        """Merge ``values`` into the collection's metadata (JSON values). The collection must exist:
        add nodes, or open the store with ``dim=``, first."""
        if self._schema is None:
            raise ValueError("the collection does not exist yet: add nodes, or open the store with dim=, first")
        self._backend.write_metadata({**self._backend.read_metadata(), **values})

    def count(self, filters: Optional[MetadataFilters] = None) -> int:
        """Number of nodes, optionally only those matching ``filters``."""
        return self._backend.count(self._selection(None, filters))

    def count_by_modality(self) -> Counter:
        """Number of nodes per modality tag (exact tags: "image" does not count "text+image" here)."""
        return Counter({
            modality: self._backend.count(
                models.Filter(must=[models.FieldCondition(key=MODALITY_KEY, match=models.MatchValue(value=modality))])
            )
            for modality in MODALITIES
        })

    async def acount(self, filters: Optional[MetadataFilters] = None) -> int:
        return await asyncio.to_thread(self.count, filters)
