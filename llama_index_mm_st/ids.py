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
