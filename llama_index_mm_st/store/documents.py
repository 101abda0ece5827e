"""A store's documents: its points grouped by ``ref_doc_id``, listed, and deleted whole. Pure: the
``Collection`` reads the payload keys (``Collection.documents``) and runs the deletes (``Collection.delete``,
its one delete path); this module groups and builds the filters.

What a catalogue (``mmst ls``), a prune (``mmst index``), ``mmst rm`` and a server's documents API need from
the store, and nothing about files: those read the payload keys they ask for. A delete is one engine
operation over every point of the documents it names, so each document is deleted whole or not at all,
a kill included (the engine's write-ahead log replays an operation whole).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Sequence

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


def read_keys(keys: Sequence[str]) -> List[str]:
    """The payload keys to read for ``group``: the document id, the modality tag and the keys asked for."""
    return list(dict.fromkeys([REF_DOC_ID_KEY, MODALITY_KEY, *keys]))


def group(payloads: Iterable[Mapping[str, Any]], keys: Sequence[str]) -> List[StoredDocument]:
    """Points' payloads (``read_keys``) as documents, sorted by id."""
    points: Dict[str, Counter] = {}
    values: Dict[str, Dict[str, Any]] = {}
    for payload in payloads:
        document = str(payload.get(REF_DOC_ID_KEY))
        points.setdefault(document, Counter())[str(payload.get(MODALITY_KEY))] += 1
        seen = values.setdefault(document, {})
        for key in keys:
            if seen.get(key) is None:
                seen[key] = payload.get(key)
    return [StoredDocument(document, sum(points[document].values()), dict(sorted(points[document].items())),
                           {key: values[document].get(key) for key in keys})
            for document in sorted(points)]


def delete_filters(document_ids: Sequence[str]) -> Iterator[models.Filter]:
    """One filter per delete operation, each naming up to ``IDS_PER_DELETE`` documents (repeats dropped)."""
    ids = list(dict.fromkeys(str(i) for i in document_ids))
    for start in range(0, len(ids), IDS_PER_DELETE):
        chunk = ids[start : start + IDS_PER_DELETE]
        yield models.Filter(must=[models.FieldCondition(key=REF_DOC_ID_KEY, match=models.MatchAny(any=chunk))])
