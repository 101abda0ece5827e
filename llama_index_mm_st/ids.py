"""Stable ids: one UUID5 scheme for every id this package derives (documents, nodes, points).

Qdrant accepts only UUIDs and unsigned integers as point ids, and a re-run of an ingestion must land
on the same points, so every derived id is a UUID5 of its parts under one namespace. The namespace is
the one ``mmst index`` has always used, so existing indexes keep their ids.
"""

from __future__ import annotations

import hashlib
import re
import uuid

ID_NAMESPACE = uuid.UUID("6a1d1f0e-58f5-4d0a-9d8e-3f1f7f0b8e21")
_PART_SEPARATOR = "\x1f"  # ASCII unit separator: cannot occur in a path, so parts never run together
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def stable_id(*parts: object) -> str:
    """A UUID derived from ``parts`` (e.g. a file's absolute path and a page number).

    ``uuid.uuid5`` itself, except that a name with bytes that are not UTF-8 (``os.fsdecode`` keeps them
    as surrogates) hashes its original bytes instead of failing: any name a file system allows has an id.
    """
    name = _PART_SEPARATOR.join(str(p) for p in parts).encode("utf-8", "surrogateescape")
    digest = hashlib.sha1(ID_NAMESPACE.bytes + name, usedforsecurity=False).digest()
    return str(uuid.UUID(bytes=digest[:16], version=5))


def point_id(node_id: str) -> str:
    """A node id as a Qdrant point id: a UUID is kept (in canonical form), any other id maps to a stable UUID5."""
    if _CANONICAL_UUID.fullmatch(node_id):  # LlamaIndex's own ids: skip the slower parse
        return node_id
    try:
        return str(uuid.UUID(node_id))
    except ValueError:
        return stable_id(node_id)


# ---------------------------------------------------------------- named ids: one constructor per kind of item
# Each is ``stable_id`` of a fixed shape; the shapes are the ones indexes were built with, so they keep their ids.

NO_PART = ""
"""The page or frame part of a document id for a source that has no pages or frames."""


def document_id(key: str, page: int | str = NO_PART, frame: int | str = NO_PART) -> str:
    """An image or PDF document: its source key (a path relative to the folder read, an absolute path,
    a URL or ``sha256:<digest>``), plus the page of a PDF or the frame of an animation."""
    return stable_id(key, page, frame)


def media_document_id(key: str) -> str:
    """An audio or video document (one per file), by its source key."""
    return stable_id(key)


def text_part_id(path: str, part: int) -> str:
    """A text document: part ``part`` of the file at the absolute ``path`` (LlamaIndex's text readers
    may make several documents of one file)."""
    return stable_id(path, "part", part)


def chunk_id(document: str, position: int) -> str:
    """Node ``position`` of a document split into nodes (position 0 for a document kept whole)."""
    return stable_id(document, position)


def frame_id(video_document: str, index: int) -> str:
    """Sampled frame ``index`` of a video document (``VideoFrameSampler``)."""
    return stable_id(video_document, NO_PART, index)
