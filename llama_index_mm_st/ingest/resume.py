"""The resume rule of an ingestion job, and where its counts come from.

Resumability comes from stable ids plus a per-document check: a document whose nodes are all in the
store with the same content hash is unchanged (skipped); a changed one has its old points deleted
first; one with no points is new. The counts are read once per batch of files as (document, hash)
pairs (``store.payload_values``: two payload keys per point, no node rebuilt, no vector read), so a
resume over a large store reads only what the files being indexed need.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from typing import Any, Callable, Iterable, Literal, Optional

from llama_index.core.schema import Document
from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters

from ..inputs import read_node
from ..store.schema import REF_DOC_ID_KEY

ResumeAction = Literal["new", "unchanged", "replace"]
CONTENT_KEY = "content_sha256"
"""Metadata the job stamps on the nodes of a document whose words come from beside its file (an image's
caption sidecar, a recording's transcript): the file's hash and those words together, so editing only the
sidecar replaces the document. Absent when the file's own hash says it all."""
StoredCount = Callable[[Document, Optional[str]], int]
"""Points stored for a document, only those with this content hash when one is given."""
HASH_KEY = "sha256"
HASH_KEYS = (HASH_KEY, CONTENT_KEY)
"""The payload keys a stored point's content hash is read from (``stored_hash``)."""
FILE_KEY = "file_path"
PAGE_KEY = "page"
PATHS_PER_READ = 256
"""File paths per store read (one filter of this many values)."""


def stored_hash(payload: Any) -> Optional[str]:
    """The content hash a stored point was written with (what ``content_hash`` gave its document): its
    ``CONTENT_KEY`` when the job stamped one, else its file's hash. Read both keys (``HASH_KEYS``)."""
    return payload.get(CONTENT_KEY) or payload.get(HASH_KEY)


def content_hash(document: Document) -> Optional[str]:
    """What a document's resume check compares: its file's hash, or for words that come from another file
    (an image's caption, a recording's transcript: a document with pixels or media that is not a PDF page)
    a hash of the file's hash and those words, so a changed sidecar is a changed document."""
    sha = document.metadata.get(HASH_KEY)
    if not sha:
        return sha
    parts = read_node(document)
    if not parts.words.strip() or parts.modality == "text" or document.metadata.get(PAGE_KEY) is not None:
        return sha
    return hashlib.sha256(f"{sha}\n{parts.words}".encode("utf-8", "surrogatepass")).hexdigest()


def resume_action(document: Document, node_count: int, stored: StoredCount) -> ResumeAction:
    """All of a document's nodes stored with its current content hash and no other points -> unchanged
    (skip); some of its points stored otherwise -> replace (delete them first); none -> new. (Other points
    beside a whole current version are what a writer that writes the new version first, then deletes the
    old one, leaves when it is killed in between: ``serve.writer``.)"""
    everything = stored(document, None)
    if everything and stored(document, content_hash(document)) == node_count == everything:
        return "unchanged"
    return "replace" if everything else "new"


class StoredDocuments:
    """Stored points per (document, content hash) for a set of files, read from the store in a few
    requests; a ``StoredCount``."""

    def __init__(self, pairs: Iterable[tuple[str, Optional[str]]] = (),
                 files: Optional[dict[str, set[str]]] = None) -> None:
        self.points: dict[str, Counter] = {}
        for document_id, sha in pairs:
            self.points.setdefault(document_id, Counter())[sha] += 1
        self.files: dict[str, set[str]] = files or {}
        """The stored documents of each file path read (what a changed file may have lost: a PDF's last pages)."""

    @classmethod
    def of_files(cls, store: Any, paths: Iterable[str]) -> "StoredDocuments":
        """What ``store`` holds of the files at ``paths`` (as given and as their real paths: a text
        document records its resolved path). An empty store is read without a request."""
        if store.schema is None:
            return cls()
        wanted = sorted({form for path in paths for form in (os.path.abspath(path), os.path.realpath(path))})
        pairs: list[tuple[str, Optional[str]]] = []
        files: dict[str, set[str]] = {}
        for start in range(0, len(wanted), PATHS_PER_READ):
            chunk = wanted[start : start + PATHS_PER_READ]
            flt = MetadataFilters(filters=[MetadataFilter(key=FILE_KEY, value=chunk, operator=FilterOperator.IN)])
            for p in store.payload_values([REF_DOC_ID_KEY, *HASH_KEYS, FILE_KEY], flt):
                pairs.append((str(p.get(REF_DOC_ID_KEY)), stored_hash(p)))
                files.setdefault(str(p.get(FILE_KEY)), set()).add(str(p.get(REF_DOC_ID_KEY)))
        return cls(pairs, files)

    def documents_of(self, paths: Iterable[str]) -> set[str]:
        """The stored documents recorded under any of these paths (a file as given and as its real path)."""
        return {document for path in paths for document in self.files.get(path, ())}

    def __call__(self, document: Document, sha: Optional[str]) -> int:
        stored = self.points.get(document.id_)
        if not stored:
            return 0
        return stored[sha] if sha else sum(stored.values())

    def forget(self, document_id: str) -> None:
        """The document's old points were deleted (a replaced document)."""
        self.points.pop(document_id, None)
        for documents in self.files.values():
            documents.discard(document_id)
