"""The resume rule of an ingestion job, and where its counts come from.

Resumability comes from stable ids plus a per-document check: a document whose nodes are all in the
store with the same content hash is unchanged (skipped); a changed one has its old points deleted
first; one with no points is new. The counts are read once per batch of files as (document, hash)
pairs (``store.payload_values``: two payload keys per point, no node rebuilt, no vector read), so a
resume over a large store reads only what the files being indexed need.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any, Callable, Iterable, Literal, Optional

from llama_index.core.schema import Document
from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters

from ..store.schema import REF_DOC_ID_KEY

ResumeAction = Literal["new", "unchanged", "replace"]
StoredCount = Callable[[Document, Optional[str]], int]
"""Points stored for a document, only those with this content hash when one is given."""
HASH_KEY = "sha256"
FILE_KEY = "file_path"
PATHS_PER_READ = 256
"""File paths per store read (one filter of this many values)."""


def resume_action(document: Document, node_count: int, stored: StoredCount) -> ResumeAction:
    """All of a document's nodes stored with its current hash and no other points -> unchanged (skip);
    some of its points stored otherwise -> replace (delete them first); none -> new. (Other points beside
    a whole current version are what a writer that writes the new version first, then deletes the old
    one, leaves when it is killed in between: ``serve.writer``.)"""
    everything = stored(document, None)
    if everything and stored(document, document.metadata.get(HASH_KEY)) == node_count == everything:
        return "unchanged"
    return "replace" if everything else "new"


class StoredDocuments:
    """Stored points per (document, content hash) for a set of files, read from the store in a few
    requests; a ``StoredCount``."""

    def __init__(self, pairs: Iterable[tuple[str, Optional[str]]] = ()) -> None:
        self.points: dict[str, Counter] = {}
        for document_id, sha in pairs:
            self.points.setdefault(document_id, Counter())[sha] += 1

    @classmethod
    def of_files(cls, store: Any, paths: Iterable[str]) -> "StoredDocuments":
        """What ``store`` holds of the files at ``paths`` (as given and as their real paths: a text
        document records its resolved path). An empty store is read without a request."""
        if store.schema is None:
            return cls()
        wanted = sorted({form for path in paths for form in (os.path.abspath(path), os.path.realpath(path))})
        pairs: list[tuple[str, Optional[str]]] = []
        for start in range(0, len(wanted), PATHS_PER_READ):
            chunk = wanted[start : start + PATHS_PER_READ]
            flt = MetadataFilters(filters=[MetadataFilter(key=FILE_KEY, value=chunk, operator=FilterOperator.IN)])
            pairs += [(str(p.get(REF_DOC_ID_KEY)), p.get(HASH_KEY)) for p in store.payload_values([REF_DOC_ID_KEY, HASH_KEY], flt)]
        return cls(pairs)

    def __call__(self, document: Document, sha: Optional[str]) -> int:
        stored = self.points.get(document.id_)
        if not stored:
            return 0
        return stored[sha] if sha else sum(stored.values())

    def forget(self, document_id: str) -> None:
        """The document's old points were deleted (a replaced document)."""
        self.points.pop(document_id, None)
