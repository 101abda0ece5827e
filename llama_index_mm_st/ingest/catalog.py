"""What an index holds, by file: the catalogue behind ``mmst ls``, ``mmst rm`` and the prune of ``mmst index``.

The store lists documents (``store.documents``: points grouped by ``ref_doc_id``); an ingestion job's
documents record the absolute path of their file (``file_path``), so a file is the documents that name
it (a PDF: one per page; a video as frames: one document, a point per frame). Removing a file deletes
its documents with one engine operation per batch of documents (``store.delete_documents``), so a kill
leaves each document whole or gone, never half of it, and a rerun finishes the rest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Optional, Sequence

from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters

from .resume import FILE_KEY, PATHS_PER_READ

INDEXED_AT_KEY = "indexed_at"
"""Metadata an ingestion job gives each node it writes: when (UTC, ISO 8601, seconds)."""
PAGE_KEY = "page"
FRAME_TIME_KEY = "frame_time_s"
CATALOGUE_KEYS = (FILE_KEY, INDEXED_AT_KEY, PAGE_KEY, FRAME_TIME_KEY)


def now_stamp() -> str:
    """The ``indexed_at`` value for nodes written now."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class IndexedFile:
    """One file as the index holds it. ``path`` is its recorded absolute path (a document that records
    none is listed under its id, with ``path`` None); ``kind`` says what it became ("image", "text",
    "text+image", "audio", "video", "pdf" pages, "video frames"); ``indexed_at`` is the latest write of
    any of its documents (None for points written without an ingestion job)."""

    path: Optional[str]
    kind: str
    points: int
    documents: tuple[str, ...] = field(default_factory=tuple)
    indexed_at: Optional[str] = None

    @property
    def label(self) -> str:
        return self.path if self.path is not None else f"(document {self.documents[0]})"

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "points": self.points, "documents": list(self.documents),
                "indexed_at": self.indexed_at}


def _kind(modalities: set[str], pages: bool, frames: bool) -> str:
    if pages:
        return "pdf"
    if frames:
        return "video frames"
    return ", ".join(sorted(modalities)) or "-"


def indexed_files(store: Any, under: Sequence[str] = ()) -> list[IndexedFile]:
    """The files (and file-less documents) ``store`` holds, sorted by path; only those at or under the
    ``under`` paths when any are given (each matched as given and as its real path)."""
    if store.schema is None:
        return []
    targets = path_forms(under) if under else None
    return _catalogue(store.documents(CATALOGUE_KEYS),
                      None if targets is None else (lambda path: is_at_or_under(path, targets)))


def _files_named(store: Any, paths: Sequence[str]) -> list[IndexedFile]:
    """The catalogue rows of these recorded paths, read with a filter on them (a few requests)."""
    documents = []
    for start in range(0, len(paths), PATHS_PER_READ):
        chunk = list(paths[start : start + PATHS_PER_READ])
        chosen = MetadataFilters(filters=[MetadataFilter(key=FILE_KEY, value=chunk, operator=FilterOperator.IN)])
        documents += store.documents(CATALOGUE_KEYS, chosen)
    return _catalogue(documents, set(paths).__contains__)


def _catalogue(documents: Iterable[Any], keep: Optional[Callable[[str], bool]]) -> list[IndexedFile]:
    by_file: dict[Optional[str], list[Any]] = {}
    for document in documents:
        path = document.values.get(FILE_KEY)
        key = str(path) if path is not None else None
        if keep is not None and (key is None or not keep(key)):
            continue
        by_file.setdefault(key, []).append(document)
    files = [_file(path, group) for path, found in by_file.items()
             for group in ([[d] for d in found] if path is None else [found])]
    files.sort(key=lambda f: (f.path is None, f.path or "", f.documents))
    return files


def _file(path: Optional[str], documents: list[Any]) -> IndexedFile:
    values = [d.values for d in documents]
    stamps = [v[INDEXED_AT_KEY] for v in values if v.get(INDEXED_AT_KEY)]
    pages = any(v.get(PAGE_KEY) is not None for v in values)
    frames = any(v.get(FRAME_TIME_KEY) is not None for v in values)
    return IndexedFile(path=path, kind=_kind({m for d in documents for m in d.modalities}, pages, frames),
                       points=sum(d.points for d in documents), documents=tuple(d.id for d in documents),
                       indexed_at=max(stamps) if stamps else None)


def path_forms(paths: Iterable[str]) -> set[str]:
    """Each path as an absolute path and as its real path (links resolved): a document records one of them."""
    return {form for path in paths for form in (os.path.abspath(path), os.path.realpath(path))}


def is_at_or_under(path: str, targets: set[str]) -> bool:
    """Whether ``path`` is one of ``targets`` or inside one of them (a folder)."""
    return path in targets or path.startswith(tuple(target.rstrip(os.sep) + os.sep for target in targets))


@dataclass
class Removal:
    """What ``remove_files`` deleted, and which of the paths asked for matched nothing."""

    removed: list[IndexedFile] = field(default_factory=list)
    not_indexed: list[str] = field(default_factory=list)

    @property
    def points(self) -> int:
        return sum(f.points for f in self.removed)


def remove_files(store: Any, paths: Sequence[str]) -> Removal:
    """Delete the documents of these files, and of every file under these folders (the files need not
    exist any more). Each document goes whole or not at all."""
    catalogue = indexed_files(store)
    removal = Removal()
    chosen: dict[str, IndexedFile] = {}
    for path in paths:
        found = [f for f in catalogue if f.path is not None and is_at_or_under(f.path, path_forms([path]))]
        if not found:
            removal.not_indexed.append(path)
        chosen.update((f.label, f) for f in found)
    removal.removed = sorted(chosen.values(), key=lambda f: f.label)
    store.delete_documents([d for f in removal.removed for d in f.documents])
    return removal


def gone_files(store: Any, roots: Sequence[str], exists: Callable[[str], bool] = os.path.lexists) -> list[IndexedFile]:
    """Files indexed under the folders ``roots`` that are no longer there (checked on disk: a file that
    is still there is kept, even when a walk leaves it out, e.g. one that can't be read just now). Reads
    one payload key per point, then the catalogue rows of the gone files only."""
    folders = [root for root in roots if os.path.isdir(root)]
    if not folders or store.schema is None:
        return []
    targets = path_forms(folders)
    recorded = {str(d.values[FILE_KEY]) for d in store.documents([FILE_KEY]) if d.values.get(FILE_KEY) is not None}
    gone = sorted(path for path in recorded if is_at_or_under(path, targets) and not exists(path))
    return _files_named(store, gone) if gone else []


def prune(store: Any, roots: Sequence[str]) -> list[IndexedFile]:
    """Delete the documents of files gone from the folders ``roots``; returns those files."""
    gone = gone_files(store, roots)
    if gone:
        store.delete_documents([d for f in gone for d in f.documents])
    return gone
