"""An Edge store's folder on disk: its lock, its records, the crash-safe creation of its shard, and
the one open engine that every store object of this process on the folder shares.

Layout of ``<path>/<collection_name>/``: ``shard/`` (the engine's files), ``mmst_schema.json``
(our schema record, read on open to refuse a mismatching store before the engine loads it),
``mmst_metadata.json`` (the user's metadata) and ``mmst.lock`` (held while open, so a second process
gets ``StoreLockedError`` instead of the engine's WAL error). The lock is taken first, before
anything is read or loaded.

One process, one open folder: a second store object on the same folder (an unpickled
``VectorStoreIndex`` beside the one it was pickled from) shares the open shard instead of being
refused by its own process's lock; the folder is let go when the last of them closes
(``open_folder``/``EdgeFolder.leave``). Another process is still refused.

Creating is atomic: the shard is built as ``shard.creating/``, the record is written, and only then
is the shard renamed to ``shard/``. A store exists when both are there; whatever a kill leaves at any
moment of creating (a ``shard.creating/``, a record without a shard, or, from versions that wrote the
shard first, an empty shard without a record) holds no points, is reported by ``unfinished``, and is
cleared by the next ``create``. A shard that holds points but has lost its record is never touched:
opening it raises ``UnfinishedStoreError`` saying what to do.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional

import qdrant_edge as q

from llama_index_mm_st import locks
from llama_index_mm_st.errors import UnfinishedStoreError
from llama_index_mm_st.store.backends.disk import DiskGuard
from llama_index_mm_st.store.backends.records import read_record
from llama_index_mm_st.store.schema import KEYWORD_INDEXED_KEYS, StoreSchema

SCHEMA_FILE = "mmst_schema.json"
METADATA_FILE = "mmst_metadata.json"
LOCK_FILE = locks.LOCK_FILE
SHARD_DIR = "shard"
NEW_SHARD_DIR = "shard.creating"
"""Where a new shard is built; renamed to ``SHARD_DIR`` once the schema record is written."""

_OPEN: dict[str, "EdgeFolder"] = {}
"""The folders this process holds, by real path: at most one ``EdgeFolder`` (one lock, one engine) each."""
_OPEN_GUARD = threading.Lock()
"""Taken while a folder is opened or let go, so a closing folder's lock is free before anyone retakes it."""


# ------------------------------------------------ the steps of creating a shard


def _build_shard(path: Path, config: Any) -> None:
    """A new, closed shard at ``path`` with the store's own payload indexes, so a store that exists
    always has them (the store asks for them again after creating; the engine ignores a repeat).
    Closed, because the engine keeps its path: it is reopened after the rename."""
    engine = q.EdgeShard.create(str(path), config)
    for key in KEYWORD_INDEXED_KEYS:
        engine.update(q.UpdateOperation.create_field_index(key, q.KeywordIndexParams(enable_hnsw=False)))
    engine.close()


def _move_into_place(building: Path, shard: Path) -> None:
    """The last step of creating: the rename that makes the store whole, made durable."""
    os.replace(building, shard)
    _sync_directory(shard.parent)


def _write_atomically(path: Path, text: str) -> None:
    """Write a record so that a crash leaves the old one or the new one, never half of either."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _sync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX; Windows has no directory handles to sync)."""
    if os.name != "posix":
        return
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


# ------------------------------------------------ the folder


def open_folder(path: Optional[str], collection_name: str) -> "EdgeFolder":
    """``<path>/<collection_name>`` for one more store object: the folder this process already holds
    (its open shard is shared), else the folder taken now (``StoreLockedError`` when another process
    holds it). ``path`` None: a new temporary folder, this object's alone. Give it back with ``leave``."""
    with _OPEN_GUARD:
        key = None if path is None else os.path.realpath(Path(path) / collection_name)
        folder = _OPEN.get(key) if key is not None else None
        if folder is None:
            folder = EdgeFolder(path, collection_name)
            _OPEN[folder.key] = folder
        folder.users += 1
        return folder


class EdgeFolder:
    """A collection's folder as this process holds it: the lock, the records, creating the shard
    crash-safely, and the open engine (``engine``, None until the collection is opened or made).

    Everything here is the folder's, not a store object's: each piece of state has one writer, a
    method of this class, and every store object on the folder sees the same values.
    """

    def __init__(self, path: Optional[str], collection_name: str) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="mmst-edge-") if path is None else None
        root = Path(self._tmp.name) if self._tmp is not None else Path(str(path))
        self.dir = root / collection_name
        # The folders this open makes: a store that is opened but never gets a collection (a run that
        # failed before its first write) leaves nothing behind when it closes.
        self._made = [p for p in (self.dir, *self.dir.parents) if not p.exists()][::-1]
        self.dir.mkdir(parents=True, exist_ok=True)
        self.key = os.path.realpath(self.dir)
        self.users = 0
        """Store objects (their backends) holding the folder; the last to ``leave`` lets it go."""
        self.engine: Optional[q.EdgeShard] = None
        self.schema: Optional[StoreSchema] = None
        self.disk = DiskGuard(str(path) if path is not None else str(self.dir), self.dir)
        self._held_dense: Optional[frozenset[str]] = None
        self._lock = locks.take(self.dir)  # a runner's reserved lock (``locks.reserve``), or a new one
        try:
            self.unfinished = self._interrupted_creation()
        except BaseException:
            self._let_go()  # the lock and a temporary directory: this folder will not be held
            raise

    @property
    def where(self) -> str:
        return f"Edge store {self.dir}"

    # ---------------------------------------------------------------- records

    def _interrupted_creation(self) -> Optional[str]:
        shard, record, building = (self.dir / SHARD_DIR), (self.dir / SCHEMA_FILE), (self.dir / NEW_SHARD_DIR)
        if shard.exists() and record.exists():
            return None  # a whole store (a stray shard.creating beside it is never read)
        if shard.exists():
            if self._shard_holds_points(shard):
                raise UnfinishedStoreError(
                    f"the store at {self.dir} holds points but has lost its schema record ({SCHEMA_FILE}); "
                    "put the record back from a copy of the store, or move the folder away to start a new store"
                )
            left = "an empty shard without its schema record"
        elif building.exists():
            left = "a half-built shard"
        elif record.exists():
            left = "a schema record without its shard"
        else:
            return None
        return (f"the store at {self.dir} was not finished: it was being created when its process stopped "
                f"({left} is left, no points); the next write to it (run the same 'mmst index' or 'mmst copy' "
                "again) finishes it, or delete the folder")

    def _shard_holds_points(self, shard: Path) -> bool:
        self.disk.ensure()  # the engine writes on load
        engine = q.EdgeShard.load(str(shard))
        try:
            return bool(engine.count(q.CountRequest(exact=True)))
        finally:
            engine.close()

    def read_schema(self) -> Optional[StoreSchema]:
        """The schema record of a whole store; None before the collection exists (or while unfinished)."""
        record = self.dir / SCHEMA_FILE
        if self.unfinished is not None or not record.exists():
            return None
        return read_record(record, "schema", StoreSchema.from_dict)

    def record_schema(self, schema: StoreSchema) -> None:
        _write_atomically(self.dir / SCHEMA_FILE, json.dumps(schema.to_dict(), indent=1))
        self.schema = schema

    def read_metadata(self) -> dict[str, Any]:
        record = self.dir / METADATA_FILE
        return read_record(record, "metadata") if record.exists() else {}

    def write_metadata(self, metadata: Mapping[str, Any]) -> None:
        self.disk.ensure()
        _write_atomically(self.dir / METADATA_FILE, json.dumps(dict(metadata), indent=1))

    # ---------------------------------------------------------------- the engine

    def load(self, schema: StoreSchema, config: Any) -> None:
        """Open the existing shard (once: a second store object on the folder finds it open)."""
        if self.engine is None:
            self.disk.ensure()  # loading replays the WAL and rewrites the config: a full disk would be SIGBUS
            self.engine = q.EdgeShard.load(str(self.dir / SHARD_DIR), config)
            self.schema = schema

    def create(self, schema: StoreSchema, config: Any) -> None:
        """Build the shard beside its final name, write the record, then rename the shard into place:
        a kill at any moment leaves no store or an unfinished one (``unfinished``), never a stuck one."""
        self.disk.ensure()
        self._clear_unfinished()
        building, shard = self.dir / NEW_SHARD_DIR, self.dir / SHARD_DIR
        _build_shard(building, config)
        self.record_schema(schema)
        _move_into_place(building, shard)
        self.engine = q.EdgeShard.load(str(shard), config)
        self.unfinished = None
        self._held_dense = frozenset()  # a new shard holds no vectors

    def _clear_unfinished(self) -> None:
        """Remove what an interrupted creation left: it holds no points (``_interrupted_creation``
        refuses a shard that does). A whole store is never cleared."""
        if self.unfinished is None and (self.dir / SHARD_DIR).exists():
            raise RuntimeError(f"{self.where} already has a collection")
        for leftover in (self.dir / NEW_SHARD_DIR, self.dir / SHARD_DIR):
            if leftover.exists():
                shutil.rmtree(leftover)
        (self.dir / SCHEMA_FILE).unlink(missing_ok=True)

    def held_dense(self, names: Iterable[str], holds: Callable[[str], bool]) -> frozenset[str]:
        """The dense vectors among ``names`` that some point carries: asked of the engine (``holds``)
        once, then kept up by ``note_written``. Every writer of the folder is in this process and goes
        through it, so the answer stays whole (a superset after deletes: an empty branch costs little)."""
        if self._held_dense is None:
            self._held_dense = frozenset(name for name in names if holds(name))
        return self._held_dense

    def note_written(self, dense_names: Callable[[], Iterable[str]]) -> None:
        """Points carrying these dense vectors are about to be written (a superset before the write is safe)."""
        if self._held_dense is not None:
            self._held_dense = self._held_dense.union(dense_names())

    # ---------------------------------------------------------------- letting go

    def leave(self, checkpoint: Callable[[q.EdgeShard], None]) -> None:
        """One store object is done with the folder: ``checkpoint`` the engine (a flush), and when it
        was the last, close the engine and let go of the lock; the last two whatever the flush does."""
        with _OPEN_GUARD:
            self.users -= 1
            try:
                if self.engine is not None:
                    checkpoint(self.engine)
            finally:
                if self.users <= 0:
                    if _OPEN.get(self.key) is self:
                        del _OPEN[self.key]
                    engine, self.engine = self.engine, None
                    try:
                        if engine is not None:
                            engine.close()
                    finally:
                        self._let_go()

    def _let_go(self) -> None:
        if self._lock.is_locked:
            self._lock.release()
        self._forget_unused_folders()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _forget_unused_folders(self) -> None:
        """The folders this open made, when no collection was ever made in them (a run that failed
        before its first write): removed while empty, so a failed run leaves nothing behind."""
        if self._made and not (self.dir / SCHEMA_FILE).exists() and not (self.dir / SHARD_DIR).exists():
            (self.dir / LOCK_FILE).unlink(missing_ok=True)
            for folder in reversed(self._made):
                try:
                    folder.rmdir()  # only while empty: anything else put there stays
                except OSError:
                    break
            self._made = []
