"""Read one listed file into its documents: the per-file step both runners share (in-process and Ray).

Images and PDF pages come from ``ImageReader.read_file``, audio and video from ``MediaReader.read_file``,
text from LlamaIndex's ``SimpleDirectoryReader``. Ids are keyed by absolute path (``ImageReader``'s
``absolute_ids``; ``ids.text_part_id`` for text), so two folders that both hold ``a.jpg`` never
overwrite each other and reading unchanged files again gives the same ids. A file that can't be read
is a named failure, never an exception that stops the job (a missing extra is the exception: it
names the install line, once per file, and the job goes on).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional, Sequence

from llama_index.core import SimpleDirectoryReader
from llama_index.core.schema import Document

from ..errors import MissingDependencyError, MMSTError
from ..files import file_error_reason
from ..ids import text_part_id
from ..readers import BOOKKEEPING_KEYS, LLM_NOISE_KEYS, ImageReader, MediaReader, ReadReport
from ..readers.cache import RenderCache, default_cache_dir
from ..readers.read_source import ReadSettings
from .listing import FileItem

HASH_BLOCK = 1 << 20
"""Bytes read per step when hashing a text file."""

Failure = tuple[str, str]
"""(item, reason): a file or page that could not be read, and why."""


@dataclass(frozen=True)
class Readers:
    """How a job reads files, fixed for the job (picklable: a Ray read task gets one copy)."""

    images: ImageReader
    settings: ReadSettings
    media: Optional[MediaReader]
    media_missing: Optional[str] = None
    """Why audio and video can't be read here (the extra to install), when ``media`` is None."""


@dataclass
class FileRead:
    documents: list[Document] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


def readers_for(reader: Optional[ImageReader] = None, cache_root: Optional[str] = None) -> Readers:
    """The job's readers: ``reader``'s walking and reading rules (default ``ImageReader()``), ids keyed
    by absolute path, and the media reader with the same rules when PyAV is installed."""
    images = (reader or ImageReader()).model_copy(update={"absolute_ids": True})
    settings = images.read_settings()
    if cache_root is not None:
        settings = replace(settings, cache=RenderCache(Path(cache_root)))
    try:
        from ..media import damaged_errors

        damaged_errors()  # raises MissingDependencyError naming the extra when PyAV is not installed
    except MissingDependencyError as exc:
        return Readers(images, settings, None, str(exc))
    media = MediaReader(exclude=list(images.exclude), recursive=images.recursive, exclude_hidden=images.exclude_hidden,
                        follow_external_links=images.follow_external_links, absolute_ids=True)
    return Readers(images, settings, media)


def job_cache_root(reader: Optional[ImageReader]) -> str:
    """Where rendered PDF pages and frames of this job live (the reader's cache)."""
    return str((reader.cache_dir if reader is not None else None) or default_cache_dir())


def read_file(item: FileItem, readers: Readers) -> FileRead:
    """The documents of one listed file and its failures, each named."""
    if item.kind == "text":
        return read_text(item.path)
    if item.kind == "media":
        if readers.media is None:
            return FileRead(failures=[(str(item.path), readers.media_missing or "audio and video can't be read")])
        report = ReadReport()
        try:
            document = readers.media.read_file(item.walked, report)
        except MMSTError as exc:
            return FileRead(failures=[_failure(exc, str(item.path))])
        return FileRead([document], [_failure(f.error, f.item) for f in report.failures])
    try:
        outcome = readers.images.read_file(item.walked, readers.settings)
    except MMSTError as exc:
        if isinstance(exc, ImportError):  # a missing extra (pypdfium2 for PDFs) stops the job with its install line
            raise
        return FileRead(failures=[_failure(exc, str(item.path))])
    return FileRead(list(outcome.documents), [_failure(e, str(item.path)) for e in outcome.failures])


def _failure(error: Exception, label: str) -> Failure:
    return str(getattr(error, "item", None) or label), str(getattr(error, "reason", None) or error)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(HASH_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def read_text(path: Path) -> FileRead:
    """A text file as documents whose embedded text is their words alone (no path, no hash)."""
    absolute = path.resolve()
    try:
        documents = SimpleDirectoryReader(input_files=[absolute], raise_on_error=True).load_data()
        digest = sha256_file(absolute)
    except OSError as exc:
        return FileRead(failures=[(str(path), file_error_reason(exc))])
    except (ValueError, UnicodeDecodeError) as exc:
        return FileRead(failures=[(str(path), f"cannot read as text ({exc})")])
    for part, document in enumerate(documents):
        document.id_ = text_part_id(str(absolute), part)
        document.metadata.update({"file_path": str(absolute), "file_name": absolute.name, "sha256": digest})
        document.excluded_embed_metadata_keys = _merged(document.excluded_embed_metadata_keys, BOOKKEEPING_KEYS)
        document.excluded_llm_metadata_keys = _merged(document.excluded_llm_metadata_keys, LLM_NOISE_KEYS)
    return FileRead(documents=list(documents))


def _merged(existing: Sequence[str], extra: Sequence[str]) -> list[str]:
    return list(dict.fromkeys([*existing, *extra]))


@dataclass
class Collected:
    """Every document the paths hold, as the job reads them, and what could not be read or was passed over."""

    documents: list[Document] = field(default_factory=list)
    skipped: list[Failure] = field(default_factory=list)
    not_followed: list[tuple[str, str]] = field(default_factory=list)
    ignored_types: dict[str, int] = field(default_factory=dict)


def collect(paths: Sequence[str], reader: Optional[ImageReader] = None) -> Collected:
    """The documents an ingestion job makes of ``paths`` (one walk, each file read once), without
    embedding or storing anything: to look at what ``mmst index`` would index."""
    from .listing import list_inputs

    listing = list_inputs(list(paths), reader or ImageReader())
    readers = readers_for(reader)
    collected = Collected(skipped=list(listing.skipped), not_followed=list(listing.not_followed),
                          ignored_types=dict(listing.ignored_types))
    for item in listing.files:
        read = read_file(item, readers)
        collected.documents += read.documents
        collected.skipped += read.failures
    return collected
