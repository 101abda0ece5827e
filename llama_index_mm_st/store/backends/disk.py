"""Disk space of an embedded (Edge) store, checked before every write, because a full disk can't be caught.

Qdrant Edge writes through memory-mapped sparse files (the WAL, vector chunks, payload pages): when
the disk fills up, the write that needs a new page gets SIGBUS and the process dies with no message
(measured on a 30 MB tmpfs and a 20 MB ext4 loop device; even ``EdgeShard.load`` dies so, since it
replays the WAL and rewrites the shard's config). So the store compares the free space with what the
next step will take before the engine runs it, and stops with ``DiskFullError`` when it would not fit:

- a batch of points: the estimate of ``point_bytes`` for each (measured, see below) times ``MARGIN``,
  plus ``FLOOR_BYTES``;
- ``optimize()``: ``OPTIMIZE_FACTOR`` times what the shard's segments hold now (it writes the
  optimized segments beside the old ones), plus the floor;
- opening, creating, indexing a payload key, deleting, writing the metadata record: the floor.

The floor covers what is not per point: a new 32 MiB WAL segment, index and tracker pages, the
config the engine rewrites on load. What was written before a refusal is whole (each batch is one
engine update), so the same run again resumes where it stopped.

``free_bytes`` is the one reading of free space (tests stub it there, never inside the engine).
The estimates come from ``bench/store_disk.py``: for each storage layout it measures the blocks the
store allocates per point against ``point_bytes``, and the growth of ``optimize()``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Sequence

from llama_index_mm_st.errors import DiskFullError
from llama_index_mm_st.store.payload import PointSpec
from llama_index_mm_st.store.schema import StoreSchema

FLOOR_BYTES = 64_000_000
"""Free space always kept: more than a new WAL segment (32 MiB) and the engine's small files."""
MARGIN = 1.5
"""The per-point estimate times this: bench/store_disk.py measured batches growing by 0.87-1.01 of
``point_bytes`` over five layouts (CLIP images, text chunks, float16+int8, no WAL, ColPali pages)."""
OPTIMIZE_FACTOR = 2.0
"""optimize() writes new segments beside the old ones: its peak growth measured 1.0-1.51 times the
segments' size before it (1.51 with int8 quantization, whose compressed copy it adds)."""
PAYLOAD_KEY_BYTES = 48
"""Per payload key and point: its index entries and the payload store's framing (measured, with the
store's own keyword indexes and the metadata keys it indexes on sight)."""
POINT_BYTES = 256
"""Per point whatever it holds: id tracker, version, deletion flags, WAL record framing."""

WAL_VALUE_BYTES = 5
"""A float in a WAL record (CBOR: a tag byte and four bytes)."""

_ITEM_BYTES = {"float32": 4, "float16": 2}


def free_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes an unprivileged writer may still use on the file system holding ``path`` (POSIX
    ``statvfs`` f_bavail, root's reserve left out; Windows' free space for the user)."""
    return shutil.disk_usage(path).free


def allocated_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes of disk the files under ``path`` take (allocated blocks: the engine's files are sparse,
    so their sizes say nothing)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:  # a file the engine removed meanwhile
                continue
    return total


def _payload_bytes(payload: Any) -> int:
    """About what a payload takes serialised: the length of its strings plus a word per other value."""
    if isinstance(payload, str):
        return len(payload)
    if isinstance(payload, dict):
        return sum(len(str(key)) + _payload_bytes(value) for key, value in payload.items())
    if isinstance(payload, (list, tuple)):
        return sum(_payload_bytes(value) for value in payload)
    return 8


def point_bytes(point: PointSpec, schema: StoreSchema) -> int:
    """About what one point adds to disk: its place in a segment (a slot in every dense vector of the
    schema, held or not, plus the multivector, the sparse vector, the payload and its indexes) and,
    with the WAL on, its record there (the values it carries, CBOR-encoded: 5 bytes a float)."""
    item = _ITEM_BYTES.get(schema.vector_datatype, 4)
    payload = _payload_bytes(point.payload) + PAYLOAD_KEY_BYTES * len(point.payload)
    sparse = 8 * len(point.sparse.indices) if point.sparse is not None else 0
    values = 0
    if point.multivector is not None:
        values = int(getattr(point.multivector, "size", 0)) or sum(len(row) for row in point.multivector)
    segment = item * schema.dim * len(schema.dense) + _ITEM_BYTES.get(schema.multivector_datatype, 4) * values
    wal = WAL_VALUE_BYTES * (sum(len(vector) for vector in point.dense.values()) + values) if schema.wal else 0
    return POINT_BYTES + segment + wal + (2 if schema.wal else 1) * (sparse + payload)


ESTIMATE_SAMPLE = 256
"""Points an estimate reads at most: a larger write is estimated from evenly spaced points of it (the
estimate of every point cost 8% of a bulk ``store.add``)."""


def batch_bytes(points: Sequence[PointSpec], schema: StoreSchema) -> int:
    """The estimate for writing ``points``, safety margin included (the floor is added by the check)."""
    if len(points) <= ESTIMATE_SAMPLE:
        return int(MARGIN * sum(point_bytes(point, schema) for point in points))
    step = len(points) / ESTIMATE_SAMPLE
    sample = [points[int(i * step)] for i in range(ESTIMATE_SAMPLE)]
    return int(MARGIN * len(points) * sum(point_bytes(point, schema) for point in sample) / ESTIMATE_SAMPLE)


class DiskGuard:
    """Refuses a step that would not fit on the disk holding ``directory``, naming ``store`` (what the
    user called the store: its path)."""

    def __init__(self, store: str, directory: Path) -> None:
        self.store = store
        self.directory = directory

    def ensure(self, needed: int = 0) -> None:
        """Raise ``DiskFullError`` unless ``needed`` bytes plus the floor are free."""
        wanted = needed + FLOOR_BYTES
        free = free_bytes(self.directory)
        if free < wanted:
            raise DiskFullError(self.store, free, wanted)

    def has_room(self) -> bool:
        """Whether the floor is free (what a step with no estimate of its own needs)."""
        return free_bytes(self.directory) >= FLOOR_BYTES

    def ensure_optimize(self, segments: Path) -> None:
        """Room for ``optimize()``: new segments beside the old ones."""
        self.ensure(int(OPTIMIZE_FACTOR * allocated_bytes(segments)) if segments.exists() else 0)
