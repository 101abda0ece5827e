"""Qdrant Edge: the Qdrant engine in-process, one shard per collection directory.

Layout of ``<path>/<collection_name>/``: ``shard/`` (the engine's files), ``mmst_schema.json``
(our schema record, read on open to refuse a mismatching store before the engine loads it) and
``mmst.lock`` (held while open, so a second process gets ``StoreLockedError`` instead of the
engine's WAL error). The lock is taken first, before anything is read or loaded.

Creating is atomic: the shard is built as ``shard.creating/``, the record is written, and only then
is the shard renamed to ``shard/``. A store exists when both are there; whatever a kill leaves at any
moment of creating (a ``shard.creating/``, a record without a shard, or, from versions that wrote the
shard first, an empty shard without a record) holds no points, is reported by ``unfinished``, and is
cleared by the next ``create``. A shard that holds points but has lost its record is never touched:
opening it raises ``UnfinishedStoreError`` saying what to do.

Every write is checked against the free disk space first (``disk.DiskGuard``): the engine writes
through memory maps, so a full disk would kill the process with SIGBUS instead of raising.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import qdrant_edge as q
from qdrant_client import models

from llama_index_mm_st import locks
from llama_index_mm_st.errors import UnfinishedStoreError, UnsupportedFilterError
from llama_index_mm_st.store.backends.core import BackendCore, Hit, PayloadSelection, hit, payload_keys, vector_names
from llama_index_mm_st.store.backends.disk import DiskGuard, batch_bytes
from llama_index_mm_st.store.backends.records import read_record
from llama_index_mm_st.store.plan import READ_BACK_KEYS, Branch, LateStage, PointSpec, QueryPlan, SearchSettings
from llama_index_mm_st.store.schema import (
    INDEX_KINDS, KEYWORD_INDEXED_KEYS, LEARNED_SPARSE_NAME, MULTIVECTOR_NAME, SPARSE_VECTOR_NAME, IndexKind,
    StoreSchema,
)

SCHEMA_FILE = "mmst_schema.json"
METADATA_FILE = "mmst_metadata.json"
LOCK_FILE = locks.LOCK_FILE
SHARD_DIR = "shard"
NEW_SHARD_DIR = "shard.creating"
"""Where a new shard is built; renamed to ``SHARD_DIR`` once the schema record is written."""

# qdrant_edge names index types and their parameter classes after our kinds: Keyword, KeywordIndexParams...
_INDEX_TYPES: dict[str, Any] = {kind: getattr(q.PayloadSchemaType, kind.capitalize()) for kind in INDEX_KINDS}
_INDEX_KINDS = {str(v): k for k, v in _INDEX_TYPES.items()}
_INDEX_PARAMS: dict[str, Any] = {kind: getattr(q, f"{kind.capitalize()}IndexParams") for kind in INDEX_KINDS}

# The compressed copy stays in RAM (Pinned) even when the originals are on disk: searches run on it.
_QUANTIZATION: dict[str, Callable[[], Any]] = {
    "int8": lambda: q.ScalarQuantizationConfig(q.ScalarType.Int8, quantile=0.99, memory=q.Memory.Pinned),
    # 8-bit queries against 1-bit points (asymmetric): better recall than 1-bit queries at the same size.
    "binary": lambda: q.BinaryQuantizationConfig(
        query_encoding=q.BinaryQuantizationQueryEncoding.Scalar8Bits, memory=q.Memory.Pinned
    ),
}
_DATATYPES: dict[str, Any] = {"float32": None, "float16": q.VectorStorageDatatype.Float16}
# A multivector is only ever rescored (never searched by a graph), so it gets no HNSW links: m=0.
_NO_GRAPH = dict(m=0, ef_construct=100, full_scan_threshold=10_000)


def _multivector_params(schema: StoreSchema) -> Any:
    """The late-interaction multivector: dot products (the model's vectors are unit length, and
    MaxSim is defined on dot products, as sentence-transformers scores it) combined by MaxSim."""
    kind = schema.multivector_quantization
    return q.EdgeVectorParams(
        schema.dim, q.Distance.Dot,
        multivector_config=q.MultiVectorConfig(q.MultiVectorComparator.MaxSim),
        datatype=_DATATYPES[schema.multivector_datatype],
        quantization_config=_QUANTIZATION[kind]() if kind else None,
        hnsw_config=q.HnswIndexConfig(**_NO_GRAPH),
        memory=q.Memory.Cold if schema.on_disk else None,  # the originals on disk: only rescoring reads them
    )


# ------------------------------------------------ qdrant_client filter -> qdrant_edge filter


def _iso(moment: Any) -> Optional[str]:
    if moment is None:
        return None
    if isinstance(moment, _dt.datetime) and moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    return moment.isoformat()


def _match_value(m: models.MatchValue) -> Any:
    if isinstance(m.value, bool):
        # qdrant-edge-py 0.9 passes True/False on as 1/0, which never matches a boolean payload.
        raise UnsupportedFilterError(f"boolean match ({m.value}) is not supported by the Edge backend")
    return q.MatchValue(m.value)


_MATCHES: dict[type, Callable[[Any], Any]] = {
    models.MatchValue: _match_value,
    models.MatchAny: lambda m: q.MatchAny(list(m.any)),
    models.MatchExcept: lambda m: q.MatchExcept(list(m.except_)),
    models.MatchText: lambda m: q.MatchText(m.text),
    models.MatchTextAny: lambda m: q.MatchTextAny(m.text_any),
    models.MatchPhrase: lambda m: q.MatchPhrase(m.phrase),
    models.MatchPrefix: lambda m: q.MatchPrefix(m.prefix),
    models.MatchSubstring: lambda m: q.MatchSubstring(m.substring),
}

_RANGES: dict[type, Callable[[Any], Any]] = {
    models.Range: lambda r: q.RangeFloat(gte=r.gte, gt=r.gt, lte=r.lte, lt=r.lt),
    models.DatetimeRange: lambda r: q.RangeDateTime(gte=_iso(r.gte), gt=_iso(r.gt), lte=_iso(r.lte), lt=_iso(r.lt)),
}


def _field(c: models.FieldCondition) -> Any:
    values_count = None
    if c.values_count is not None:
        v = c.values_count
        values_count = q.ValuesCount(lt=v.lt, gt=v.gt, lte=v.lte, gte=v.gte)
    return q.FieldCondition(
        c.key,
        match=_MATCHES[type(c.match)](c.match) if c.match is not None else None,
        range=_RANGES[type(c.range)](c.range) if c.range is not None else None,
        values_count=values_count,
        is_empty=c.is_empty,
        is_null=c.is_null,
    )


_CONDITIONS: dict[type, Callable[[Any], Any]] = {
    models.FieldCondition: _field,
    models.IsEmptyCondition: lambda c: q.IsEmptyCondition(c.is_empty.key),
    models.IsNullCondition: lambda c: q.IsNullCondition(c.is_null.key),
    models.HasIdCondition: lambda c: q.HasIdCondition({str(i) for i in c.has_id}),
    models.HasVectorCondition: lambda c: q.HasVectorCondition(c.has_vector),
    models.NestedCondition: lambda c: q.NestedCondition(c.nested.key, to_edge_filter(c.nested.filter)),
    models.Filter: lambda c: to_edge_filter(c),
}


def _conditions(part: Any) -> Optional[list[Any]]:
    if part is None:
        return None
    items = part if isinstance(part, list) else [part]
    try:
        return [_CONDITIONS[type(c)](c) for c in items]
    except KeyError as err:
        raise ValueError(f"the Edge backend cannot translate filter condition {err.args[0]}") from None


def to_edge_filter(flt: Optional[models.Filter]) -> Optional[Any]:
    """Translate a ``qdrant_client`` filter, one table entry per condition and match type."""
    if flt is None:
        return None
    min_should = None
    if flt.min_should is not None:
        min_should = q.MinShould(_conditions(flt.min_should.conditions) or [], flt.min_should.min_count)
    return q.Filter(
        must=_conditions(flt.must),
        should=_conditions(flt.should),
        must_not=_conditions(flt.must_not),
        min_should=min_should,
    )


# ------------------------------------------------ files: the steps of creating a shard


def _build_shard(path: Path, config: Any) -> None:
    """A new, closed shard at ``path`` with the store's own payload indexes, so a store that exists
    always has them (the store asks for them again after creating; the engine ignores a repeat).
    Closed, because the engine keeps its path: it is reopened after the rename."""
    engine = q.EdgeShard.create(str(path), config)
    for key in KEYWORD_INDEXED_KEYS:
        engine.update(q.UpdateOperation.create_field_index(key, _INDEX_PARAMS["keyword"](enable_hnsw=False)))
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


# ------------------------------------------------ the backend


def _vector(value: Any) -> Any:
    """A dense vector as a list (pyo3 reads a list several times faster than anything else), a sparse one as Edge's."""
    if isinstance(value, list):
        return value
    if isinstance(value, tuple):
        return list(value)
    engine = getattr(value, "engine", None)  # BM25 from qdrant_edge: the engine's own vector, written as is
    if engine is not None:
        return engine
    return q.SparseVector(list(value.indices), list(value.values))


def _rows(matrix: Any) -> list[list[float]]:
    """A multivector as a list of rows, converted in one C call when it is an array."""
    return matrix.tolist() if hasattr(matrix, "tolist") else [list(row) for row in matrix]


class EdgeBackend(BackendCore):
    """A Qdrant Edge shard at ``<path>/<collection_name>``, or in a temporary directory."""

    single_writer = True  # the lock file: no other process or store object writes this shard

    def __init__(self, path: Optional[str], collection_name: str) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="mmst-edge-") if path is None else None
        root = Path(self._tmp.name if self._tmp else path)  # type: ignore[arg-type]
        self._dir = root / collection_name
        # The folders this open makes: a store that is opened but never gets a collection (a run that
        # failed before its first write) leaves nothing behind when it closes.
        self._made = [p for p in (self._dir, *self._dir.parents) if not p.exists()][::-1]
        self._dir.mkdir(parents=True, exist_ok=True)
        self._lock = locks.take(self._dir)  # a runner's reserved lock (``locks.reserve``), or a new one
        self._shard: Optional[Any] = None
        self._schema: Optional[StoreSchema] = None
        self._disk = DiskGuard(str(path) if path is not None else str(self._dir), self._dir)
        self._batch_bytes = 0  # the disk estimate of one point of the upsert under way (see upsert)
        try:
            self._unfinished = self._interrupted_creation()
        except BaseException:
            self.close()  # the lock and a temporary directory: this object will not exist
            raise

    @property
    def raw(self) -> Any:
        return self._shard

    @property
    def local_path(self) -> Optional[str]:
        return str(self._dir)

    @property
    def where(self) -> str:
        return f"Edge store {self._dir}"

    @property
    def exists(self) -> bool:
        return self._shard is not None

    @property
    def unfinished(self) -> Optional[str]:
        """Why this store is not a whole store yet (its creation was interrupted), or None. Such a
        store holds no points; the next ``create`` clears what is left and builds it again."""
        return self._unfinished

    def _interrupted_creation(self) -> Optional[str]:
        shard, record, building = (self._dir / SHARD_DIR), (self._dir / SCHEMA_FILE), (self._dir / NEW_SHARD_DIR)
        if shard.exists() and record.exists():
            return None  # a whole store (a stray shard.creating beside it is never read)
        if shard.exists():
            if self._shard_holds_points(shard):
                raise UnfinishedStoreError(
                    f"the store at {self._dir} holds points but has lost its schema record ({SCHEMA_FILE}); "
                    "put the record back from a copy of the store, or move the folder away to start a new store"
                )
            left = "an empty shard without its schema record"
        elif building.exists():
            left = "a half-built shard"
        elif record.exists():
            left = "a schema record without its shard"
        else:
            return None
        return (f"the store at {self._dir} was not finished: it was being created when its process stopped "
                f"({left} is left, no points); the next write to it (run the same 'mmst index' or 'mmst copy' "
                "again) finishes it, or delete the folder")

    def _shard_holds_points(self, shard: Path) -> bool:
        self._disk.ensure()  # the engine writes on load
        engine = q.EdgeShard.load(str(shard))
        try:
            return bool(engine.count(q.CountRequest(exact=True)))
        finally:
            engine.close()

    def existing_schema(self) -> Optional[StoreSchema]:
        record = self._dir / SCHEMA_FILE
        if self._unfinished is not None or not record.exists():
            return None
        return read_record(record, "schema", StoreSchema.from_dict)

    def open(self, schema: StoreSchema) -> None:
        if self._shard is None:
            self._disk.ensure()  # loading replays the WAL and rewrites the config: a full disk would be SIGBUS
            self._shard = q.EdgeShard.load(str(self._dir / SHARD_DIR), self._config(schema))
            self._schema = schema

    def _config(self, schema: StoreSchema) -> Any:
        def params() -> Any:
            return q.EdgeVectorParams(
                schema.dim, q.Distance.Cosine,
                datatype=_DATATYPES[schema.vector_datatype],
                quantization_config=_QUANTIZATION[schema.quantization]() if schema.quantization else None,
                memory=q.Memory.Cold if schema.on_disk else None,  # Cold: read from disk on demand
            )

        vectors = {name: params() for name in schema.dense}
        if schema.multivector is not None:
            vectors[schema.multivector] = _multivector_params(schema)
        sparse = {schema.sparse: q.EdgeSparseVectorParams(modifier=q.Modifier.Idf)} if schema.sparse else {}
        if schema.learned_sparse:  # a learned model's weights are final: no IDF
            sparse[schema.learned_sparse] = q.EdgeSparseVectorParams()
        return q.EdgeConfig(
            vectors=vectors,
            sparse_vectors=sparse,
            wal_enabled=schema.wal,  # fixed at creation: the engine refuses to change it on load
        )

    def create(self, schema: StoreSchema) -> None:
        """Build the shard beside its final name, write the record, then rename the shard into place:
        a kill at any moment leaves no store or an unfinished one (``unfinished``), never a stuck one."""
        self._disk.ensure()
        self._clear_unfinished()
        building, shard = self._dir / NEW_SHARD_DIR, self._dir / SHARD_DIR
        config = self._config(schema)
        _build_shard(building, config)
        self.record_schema(schema)
        _move_into_place(building, shard)
        self._shard = q.EdgeShard.load(str(shard), config)
        self._schema = schema
        self._unfinished = None

    def _clear_unfinished(self) -> None:
        """Remove what an interrupted creation left: it holds no points (``_interrupted_creation``
        refuses a shard that does). A whole store is never cleared."""
        if self._unfinished is None and (self._dir / SHARD_DIR).exists():
            raise RuntimeError(f"{self.where} already has a collection")
        for leftover in (self._dir / NEW_SHARD_DIR, self._dir / SHARD_DIR):
            if leftover.exists():
                shutil.rmtree(leftover)
        (self._dir / SCHEMA_FILE).unlink(missing_ok=True)

    def record_schema(self, schema: StoreSchema) -> None:
        _write_atomically(self._dir / SCHEMA_FILE, json.dumps(schema.to_dict(), indent=1))
        self._schema = schema

    def read_metadata(self) -> dict[str, Any]:
        record = self._dir / METADATA_FILE
        return read_record(record, "metadata") if record.exists() else {}

    def write_metadata(self, metadata: Mapping[str, Any]) -> None:
        self._require()
        self._disk.ensure()
        _write_atomically(self._dir / METADATA_FILE, json.dumps(dict(metadata), indent=1))

    def _require(self) -> Any:
        if self._shard is None:
            raise RuntimeError(f"{self.where} has no collection yet")
        return self._shard

    def indexed_fields(self) -> dict[str, IndexKind]:
        if self._shard is None:
            return {}
        schema = self._shard.info().payload_schema
        return {key: _INDEX_KINDS[str(info.data_type)] for key, info in schema.items()}  # type: ignore[misc]

    def create_index(self, key: str, kind: IndexKind, hnsw: bool) -> None:
        params = _INDEX_PARAMS[kind](enable_hnsw=hnsw)
        shard = self._require()
        self._disk.ensure()
        shard.update(q.UpdateOperation.create_field_index(key, params))

    # ------------------------------------------------ engine adapters (the shared logic is in BackendCore)

    def _engine_filter(self, flt: Optional[models.Filter]) -> Any:
        return to_edge_filter(flt)

    def _engine_point(self, point: PointSpec) -> Any:
        vectors = {name: _vector(vec) for name, vec in point.dense.items()}
        if point.sparse is not None:
            vectors[SPARSE_VECTOR_NAME] = _vector(point.sparse)
        if point.learned_sparse is not None:
            vectors[LEARNED_SPARSE_NAME] = _vector(point.learned_sparse)
        if point.multivector is not None:
            vectors[MULTIVECTOR_NAME] = _rows(point.multivector)
        return q.Point(point.id, vectors, point.payload)

    def upsert(self, points: Sequence[PointSpec], batch_size: int,
               on_batch: Optional[Callable[[int], None]] = None) -> None:
        """``BackendCore.upsert``, each batch checked against the free disk space before it is written
        (by ``_write``, from the average disk estimate of these points)."""
        if points and self._schema is not None:
            self._batch_bytes = -(-batch_bytes(points, self._schema) // len(points))
        super().upsert(points, batch_size, on_batch)

    def _write(self, engine_points: list[Any]) -> None:
        shard = self._require()
        self._disk.ensure(self._batch_bytes * len(engine_points))
        shard.update(q.UpdateOperation.upsert_points(engine_points))

    def _engine_search(self, search: SearchSettings) -> Any:
        if search.exact:  # the ground truth of a recall estimate: every vector compared, by its original
            return q.SearchParams(exact=True, quantization=q.QuantizationSearchParams(ignore=True))
        quantization = q.QuantizationSearchParams(rescore=search.rescore, oversampling=search.oversampling)
        return q.SearchParams(hnsw_ef=search.hnsw_ef, quantization=quantization if search.quantized else None)

    def _nearest_request(self, branch: Branch, engine_filter: Any, plan: QueryPlan) -> Any:
        nearest = q.Query.Nearest(_vector(branch.vector), using=branch.using)
        return q.QueryRequest(limit=plan.limit, query=nearest, filter=engine_filter,
                              with_payload=payload_keys(plan), params=self._params(branch),
                              with_vector=vector_names(plan))

    def _prefetch(self, branch: Branch, engine_filter: Any) -> Any:
        return q.Prefetch(limit=branch.limit, query=q.Query.Nearest(_vector(branch.vector), using=branch.using),
                          filter=engine_filter, params=self._params(branch))

    @staticmethod
    def _fusion(plan: QueryPlan) -> Any:
        return q.Fusion.Dbsf() if plan.fusion == "dbsf" else q.Fusion.Rrf(k=plan.rrf_k, weights=plan.weights)

    def _fused_request(self, prefetches: Sequence[Any], plan: QueryPlan) -> Any:
        return q.QueryRequest(
            limit=plan.limit, prefetches=list(prefetches), query=self._fusion(plan),
            with_payload=payload_keys(plan), with_vector=vector_names(plan),  # every candidate comes through a filtered prefetch
        )

    def _fused_prefetch(self, prefetches: Sequence[Any], plan: QueryPlan, limit: int) -> Any:
        return q.Prefetch(limit=limit, prefetches=list(prefetches), query=self._fusion(plan))

    def _mmr_request(self, candidates: Any, plan: QueryPlan) -> Any:
        mmr = plan.mmr
        return q.QueryRequest(
            limit=plan.limit, prefetches=[candidates],
            query=q.Mmr(list(mmr.vector), mmr.lambda_, mmr.candidates, using=mmr.using),  # type: ignore[union-attr]
            with_payload=payload_keys(plan), with_vector=vector_names(plan),
        )

    def _late_query(self, late: LateStage) -> tuple[Any, Any]:
        params = None if late.search is None else self._engine_search(late.search)
        return q.Query.Nearest(_rows(late.vector), using=late.using), params

    def _late_request(self, prefetches: Sequence[Any], late: LateStage, plan: QueryPlan) -> Any:
        query, params = self._late_query(late)
        return q.QueryRequest(limit=plan.limit, prefetches=list(prefetches), query=query, params=params,
                              with_payload=True, with_vector=vector_names(plan))

    def _late_prefetch(self, prefetches: Sequence[Any], late: LateStage, limit: int) -> Any:
        query, params = self._late_query(late)
        return q.Prefetch(limit=limit, prefetches=list(prefetches), query=query, params=params)

    def _run(self, request: Any) -> list[Any]:
        return self._require().query(request)

    def _run_batch(self, requests: list[Any]) -> list[list[Any]]:
        return self._require().query_batch(q.QueryBatchRequest(requests))

    def _page(self, engine_filter: Any, offset: Any, limit: int, with_vectors: bool,
              payload: PayloadSelection = True) -> tuple[list[Any], Any]:
        request = q.ScrollRequest(offset=offset, limit=limit, filter=engine_filter,
                                  with_payload=payload if isinstance(payload, bool) else list(payload),
                                  with_vector=with_vectors)
        return self._shard.scroll(request)

    def retrieve(self, ids: Sequence[str], with_vectors: bool = False) -> list[Hit]:
        if self._shard is None or not ids:
            return []
        return [hit(r) for r in self._shard.retrieve(list(ids), True, with_vectors)]

    def count(self, flt: Optional[models.Filter]) -> int:
        if self._shard is None:
            return 0
        return self._shard.count(q.CountRequest(exact=True, filter=to_edge_filter(flt)))

    def delete(self, flt: models.Filter) -> None:
        if self._shard is not None:
            self._disk.ensure()
            self._shard.update(q.UpdateOperation.delete_points_by_filter(to_edge_filter(flt)))

    def clear(self) -> None:
        if self._shard is not None:
            self._disk.ensure()
            self._shard.update(q.UpdateOperation.delete_points_by_filter(q.Filter()))

    def optimize(self) -> None:
        if self._shard is not None:
            self._disk.ensure_optimize(self._dir / SHARD_DIR / "segments")
            self._shard.optimize()

    def flush(self) -> None:
        if self._shard is not None:
            self._disk.ensure()
            self._shard.flush()

    def close(self) -> None:
        """Flush, close the engine and let go of the lock; the last two whatever the flush does. On a
        disk below the floor a store with a WAL skips the flush: the WAL already holds every write
        (a flush only checkpoints it, and on a full disk fails half-way), so the store opens whole."""
        shard, self._shard = self._shard, None
        try:
            if shard is not None and not (self._schema is not None and self._schema.wal and not self._disk.has_room()):
                shard.flush()
        finally:
            if shard is not None:
                shard.close()
            if self._lock.is_locked:
                self._lock.release()
            self._forget_unused_folders()
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None

    def _forget_unused_folders(self) -> None:
        """The folders this open made, when no collection was ever made in them (a run that failed
        before its first write): removed while empty, so a failed run leaves nothing behind."""
        if self._made and not (self._dir / SCHEMA_FILE).exists() and not (self._dir / SHARD_DIR).exists():
            (self._dir / LOCK_FILE).unlink(missing_ok=True)
            for folder in reversed(self._made):
                try:
                    folder.rmdir()  # only while empty: anything else put there stays
                except OSError:
                    break
            self._made = []
