"""``Documents``: the store's documents (its points grouped by ``ref_doc_id``), listed and deleted whole.

A mixin of ``MultimodalQdrantStore``: a plain class without fields or annotations (pydantic would
take those for fields). What a catalogue (``mmst ls``), a prune (``mmst index``), ``mmst rm`` and a
server's documents API need from the store, and nothing about files: those read the payload keys they
ask for. A delete is one engine operation over every point of the documents named, so each document is
deleted whole or not at all, a kill included (the engine's write-ahead log replays an operation whole).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from llama_index.core.vector_stores.types import MetadataFilters
from qdrant_client import models

from llama_index_mm_st.store.schema import MODALITY_KEY, REF_DOC_ID_KEY

IDS_PER_DELETE = 512
"""Documents per delete operation (one filter of this many ids): each operation is applied whole."""


@dataclass(frozen=True)
class StoredDocument:
    """One document as the store holds it: its id (``ref_doc_id``), how many points it has, by modality
    tag, and the payload values asked for (the first point's value of each key; None when no point has it)."""

    id: str
    points: int
    modalities: Dict[str, int] = field(default_factory=dict)
    values: Dict[str, Any] = field(default_factory=dict)


class Documents:
    """``documents`` (list) and ``delete_documents`` (all or nothing per document), with async twins."""

    def documents(self, keys: Sequence[str] = (), filters: Optional[MetadataFilters] = None) -> List[StoredDocument]:
        """Every document with a point matching ``filters`` (all documents when None), sorted by id, with
        the payload ``keys`` asked for. Reads only those payload keys (no node is rebuilt, no vector read)."""
        wanted = list(dict.fromkeys([REF_DOC_ID_KEY, MODALITY_KEY, *keys]))
        points: Dict[str, Counter] = {}
        values: Dict[str, Dict[str, Any]] = {}
        for payload in self.payload_values(wanted, filters):  # type: ignore[attr-defined]
            document = str(payload.get(REF_DOC_ID_KEY))
            points.setdefault(document, Counter())[str(payload.get(MODALITY_KEY))] += 1
            seen = values.setdefault(document, {})
            for key in keys:
                if seen.get(key) is None:
                    seen[key] = payload.get(key)
        return [StoredDocument(document, sum(points[document].values()), dict(sorted(points[document].items())),
                               {key: values[document].get(key) for key in keys})
                for document in sorted(points)]

    async def adocuments(self, keys: Sequence[str] = (), filters: Optional[MetadataFilters] = None) -> List[StoredDocument]:
        return await asyncio.to_thread(self.documents, keys, filters)

    def delete_documents(self, document_ids: Sequence[str]) -> None:
        """Delete every point of these documents (``ref_doc_id``s). Each document goes whole or not at all:
        its points are deleted by one engine operation, which a kill either applied or did not."""
        ids = list(dict.fromkeys(str(i) for i in document_ids))
        for start in range(0, len(ids), IDS_PER_DELETE):
            chunk = ids[start : start + IDS_PER_DELETE]
            self._backend.delete(models.Filter(must=[  # type: ignore[attr-defined]
                models.FieldCondition(key=REF_DOC_ID_KEY, match=models.MatchAny(any=chunk))]))

    async def adelete_documents(self, document_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.delete_documents, document_ids)
