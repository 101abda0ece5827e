"""A Qdrant server or cluster through ``qdrant-client`` (``QdrantClient(":memory:")`` stands in for one in tests).

Sharding, replication and write consistency apply when the collection is created. The BM25
language is kept in the collection's metadata so a reopen with another language is refused.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping, Optional, Sequence

from qdrant_client import QdrantClient, models

from llama_index_mm_st.store.backends.core import BackendCore, Hit, PayloadSelection, hit, payload_keys, vector_names
from llama_index_mm_st.store.payload import PointSpec
from llama_index_mm_st.store.plan import Branch, LateStage, QueryPlan, SearchSettings
from llama_index_mm_st.store.stages import MmrStage
from llama_index_mm_st.store.schema import (
    INDEX_KINDS,
    LEARNED_SPARSE_NAME,
    MULTIVECTOR_NAME,
    SPARSE_VECTOR_NAME,
    IndexKind,
    StoreSchema,
)

# qdrant-client names index types and parameter classes after our kinds: KEYWORD, KeywordIndexParams...
_INDEX_TYPES: dict[IndexKind, models.PayloadSchemaType] = {kind: models.PayloadSchemaType(kind) for kind in INDEX_KINDS}
_INDEX_KINDS: dict[str, IndexKind] = {v.value: k for k, v in _INDEX_TYPES.items()}
_INDEX_PARAMS: dict[str, Any] = {kind: getattr(models, f"{kind.capitalize()}IndexParams") for kind in INDEX_KINDS}
_META_LANGUAGE = "mmst_bm25_language"
_META_SPARSE_MODEL = "mmst_sparse_model"
_META_HNSW_EF = "mmst_hnsw_ef"
_META_TARGET_RECALL = "mmst_target_recall"
_META_EXACT = "mmst_exact_search"
_SCHEMA_KEYS = (_META_LANGUAGE, _META_SPARSE_MODEL, _META_HNSW_EF, _META_TARGET_RECALL, _META_EXACT)
"""Collection metadata keys that hold our schema record (a server's config can't say these)."""

# As on Edge: the compressed copy in RAM (always_ram) even when the originals are on disk.
_QUANTIZATION: dict[str, Any] = {
    "int8": models.ScalarQuantization(
        scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, quantile=0.99, always_ram=True)
    ),
    "binary": models.BinaryQuantization(
        binary=models.BinaryQuantizationConfig(
            always_ram=True, query_encoding=models.BinaryQuantizationQueryEncoding.SCALAR8BITS
        )
    ),
}
_QUANTIZATION_NAMES: dict[type, str] = {models.ScalarQuantization: "int8", models.BinaryQuantization: "binary"}


def _vector_params(schema: StoreSchema) -> models.VectorParams:
    datatype = models.Datatype.FLOAT16 if schema.vector_datatype == "float16" else None
    quantization = _QUANTIZATION[schema.quantization] if schema.quantization else None
    return models.VectorParams(size=schema.dim, distance=models.Distance.COSINE, on_disk=schema.on_disk or None,
                               datatype=datatype, quantization_config=quantization)


def _multivector_params(schema: StoreSchema) -> models.VectorParams:
    """As on Edge: dot products combined by MaxSim, no graph (a multivector is only rescored)."""
    datatype = models.Datatype.FLOAT16 if schema.multivector_datatype == "float16" else None
    kind = schema.multivector_quantization
    return models.VectorParams(
        size=schema.dim, distance=models.Distance.DOT, datatype=datatype,
        multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM),
        hnsw_config=models.HnswConfigDiff(m=0), quantization_config=_QUANTIZATION[kind] if kind else None,
        on_disk=schema.on_disk or None,
    )


def _storage_options(params: models.VectorParams, collection_quantization: Any) -> dict[str, Any]:
    """What a server reports back of our storage options (a collection-wide quantization counts too)."""
    quantization = params.quantization_config or collection_quantization
    datatype = params.datatype.value if params.datatype is not None else "float32"
    return {
        "quantization": _QUANTIZATION_NAMES.get(type(quantization), None if quantization is None else "other"),
        "on_disk": bool(params.on_disk),
        "vector_datatype": datatype,
    }


def _multivector_options(late: Mapping[str, models.VectorParams]) -> dict[str, Any]:
    """The schema's multivector fields as a server reports them ({} for a single-vector collection)."""
    if not late:
        return {}
    options = _storage_options(next(iter(late.values())), None)
    return {"multivector": ",".join(late), "multivector_datatype": options["vector_datatype"],
            "multivector_quantization": options["quantization"]}


def _schema_metadata(schema: StoreSchema) -> dict[str, Any]:
    """What a collection's metadata records of our schema (the language always, the rest when set)."""
    recorded = {_META_LANGUAGE: schema.bm25_language, _META_SPARSE_MODEL: schema.sparse_model,
                _META_HNSW_EF: schema.hnsw_ef, _META_TARGET_RECALL: schema.target_recall,
                _META_EXACT: schema.exact_search}
    return {key: value for key, value in recorded.items() if value is not None or key == _META_LANGUAGE}


def _vector(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return list(value)
    return models.SparseVector(indices=list(value.indices), values=list(value.values))


class ClientBackend(BackendCore):
    """One collection on a Qdrant server (or qdrant-client's local mode)."""

    unfinished: Optional[str] = None  # the server creates a collection in one request: whole or absent

    def __init__(
        self,
        client: QdrantClient,
        collection_name: str,
        shard_number: Optional[int] = None,
        replication_factor: Optional[int] = None,
        write_consistency_factor: Optional[int] = None,
        owns_client: bool = False,
    ) -> None:
        self._client = client
        self._owns_client = owns_client
        self._name = collection_name
        self._shard_number = shard_number
        self._replication_factor = replication_factor
        self._write_consistency_factor = write_consistency_factor
        self._exists = False
        # qdrant-client's local mode (":memory:" or path=) has no graph and no quantization to tune.
        self.searches_exactly = type(getattr(client, "_client", None)).__name__ == "QdrantLocal"

    @property
    def raw(self) -> QdrantClient:
        return self._client

    @property
    def local_path(self) -> Optional[str]:
        return None  # the server holds the collection

    @property
    def where(self) -> str:
        return f"Qdrant collection {self._name!r}"

    @property
    def exists(self) -> bool:
        return self._exists

    def existing_schema(self) -> Optional[StoreSchema]:
        if not self._client.collection_exists(self._name):
            return None
        self._exists = True
        config = self._client.get_collection(self._name).config
        vectors = config.params.vectors or {}
        if not isinstance(vectors, dict):  # an unnamed vector: certainly not our layout
            vectors = {"": vectors}
        late = {name: v for name, v in vectors.items() if v.multivector_config is not None}
        vectors = {name: v for name, v in vectors.items() if name not in late}
        multivector = _multivector_options(late)
        sparse = dict(config.params.sparse_vectors or {})
        learned = LEARNED_SPARSE_NAME if sparse.pop(LEARNED_SPARSE_NAME, None) is not None else None
        sizes = {v.size for v in vectors.values()}
        distances = {v.distance.value.lower() for v in vectors.values()}
        options = [_storage_options(v, config.quantization_config) for v in vectors.values()]
        metadata = config.metadata or {}
        return StoreSchema(
            dim=sizes.pop() if len(sizes) == 1 else -1,
            dense=tuple(vectors),
            # BM25 replaced by a learned model: no other sparse vector; a foreign layout: all of their names.
            sparse=(next(iter(sparse)) if len(sparse) == 1 else ",".join(sparse)) if sparse or not learned else None,
            distance=distances.pop() if len(distances) == 1 else ",".join(sorted(distances)),
            idf=not sparse and learned is not None or bool(sparse) and all(
                s.modifier == models.Modifier.IDF for s in sparse.values()),
            bm25_language=metadata.get(_META_LANGUAGE),
            **(options[0] if options and all(o == options[0] for o in options) else {"quantization": "mixed"}),
            **multivector,
            learned_sparse=learned,
            sparse_model=metadata.get(_META_SPARSE_MODEL),
            hnsw_ef=metadata.get(_META_HNSW_EF),
            target_recall=metadata.get(_META_TARGET_RECALL),
            exact_search=bool(metadata.get(_META_EXACT, False)),
        )

    def open(self, schema: StoreSchema) -> None:
        """Nothing to load: the server holds the collection."""

    def create(self, schema: StoreSchema) -> None:
        sparse = {schema.sparse: models.SparseVectorParams(modifier=models.Modifier.IDF)} if schema.sparse else {}
        if schema.learned_sparse:  # a learned model's weights are final: no IDF
            sparse[schema.learned_sparse] = models.SparseVectorParams()
        self._client.create_collection(
            self._name,
            vectors_config={name: _vector_params(schema) for name in schema.dense} | (
                {schema.multivector: _multivector_params(schema)} if schema.multivector else {}),
            sparse_vectors_config=sparse,
            metadata=_schema_metadata(schema),
            shard_number=self._shard_number,
            replication_factor=self._replication_factor,
            write_consistency_factor=self._write_consistency_factor,
        )
        self._exists = True

    def record_schema(self, schema: StoreSchema) -> None:
        """The schema's own metadata keys (model, tuned search width), the caller's metadata kept."""
        self._client.update_collection(self._name, metadata={**self.read_metadata(), **_schema_metadata(schema)})

    def _collection_metadata(self) -> dict[str, Any]:
        return dict(self._client.get_collection(self._name).config.metadata or {})

    def read_metadata(self) -> dict[str, Any]:
        """The caller's metadata: the schema's own key (the BM25 language) is not part of it."""
        if not self._exists:
            return {}
        metadata = self._collection_metadata()
        for key in _SCHEMA_KEYS:
            metadata.pop(key, None)
        return metadata

    def write_metadata(self, metadata: Mapping[str, Any]) -> None:
        if not self._exists:
            raise ValueError(f"{self.where} does not exist yet: add nodes (or pass dim=) first")
        current = self._collection_metadata()
        kept = {key: current.get(key) for key in _SCHEMA_KEYS}  # the schema's, never the caller's
        self._client.update_collection(self._name, metadata={**dict(metadata), **kept})

    def indexed_fields(self) -> dict[str, IndexKind]:
        if not self._exists:
            return {}
        schema = self._client.get_collection(self._name).payload_schema or {}
        return {key: _INDEX_KINDS[info.data_type.value] for key, info in schema.items() if info.data_type.value in _INDEX_KINDS}

    def create_index(self, key: str, kind: IndexKind, hnsw: bool) -> None:
        params = _INDEX_PARAMS[kind](type=kind, enable_hnsw=hnsw)
        # Local mode warns that payload indexes do nothing there; a server builds them.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            self._client.create_payload_index(self._name, key, params, wait=True)

    # ------------------------------------------------ engine adapters (the shared logic is in BackendCore)

    def _engine_filter(self, flt: Optional[models.Filter]) -> Optional[models.Filter]:
        return flt  # qdrant-client's own type already

    def _engine_point(self, point: PointSpec) -> models.PointStruct:
        vectors: dict[str, Any] = {name: list(vec) for name, vec in point.dense.items()}
        if point.sparse is not None:
            vectors[SPARSE_VECTOR_NAME] = _vector(point.sparse)
        if point.learned_sparse is not None:
            vectors[LEARNED_SPARSE_NAME] = _vector(point.learned_sparse)
        if point.multivector is not None:
            matrix = point.multivector
            vectors[MULTIVECTOR_NAME] = matrix.tolist() if hasattr(matrix, "tolist") else [list(r) for r in matrix]
        return models.PointStruct(id=point.id, vector=vectors, payload=point.payload)

    def _write(self, engine_points: list[Any]) -> None:
        self._client.upsert(self._name, points=engine_points, wait=True)

    def _engine_search(self, search: SearchSettings) -> Optional[models.SearchParams]:
        if self.searches_exactly:
            return None  # local mode searches by brute force and warns about any search parameter
        if search.exact:  # the ground truth of a recall estimate: every vector compared, by its original
            return models.SearchParams(exact=True, quantization=models.QuantizationSearchParams(ignore=True))
        quantization = models.QuantizationSearchParams(rescore=search.rescore, oversampling=search.oversampling)
        return models.SearchParams(hnsw_ef=search.hnsw_ef, quantization=quantization if search.quantized else None)

    def _nearest_request(self, branch: Branch, engine_filter: Any, plan: QueryPlan) -> models.QueryRequest:
        return models.QueryRequest(query=_vector(branch.vector), using=branch.using, filter=engine_filter,
                                   limit=plan.limit, with_payload=payload_keys(plan), params=self._params(branch),
                                   with_vector=vector_names(plan))

    def _prefetch(self, branch: Branch, engine_filter: Any) -> models.Prefetch:
        return models.Prefetch(query=_vector(branch.vector), using=branch.using, limit=branch.limit,
                               filter=engine_filter, params=self._params(branch))

    @staticmethod
    def _fusion(plan: QueryPlan) -> Any:
        if plan.fusion == "dbsf":
            return models.FusionQuery(fusion=models.Fusion.DBSF)
        return models.RrfQuery(rrf=models.Rrf(k=plan.rrf_k, weights=plan.weights))

    def _fused_request(self, prefetches: Sequence[Any], plan: QueryPlan) -> models.QueryRequest:
        return models.QueryRequest(
            prefetch=list(prefetches), query=self._fusion(plan),
            limit=plan.limit,  # every candidate comes through a filtered prefetch
            with_payload=payload_keys(plan), with_vector=vector_names(plan),
        )

    def _fused_prefetch(self, prefetches: Sequence[Any], plan: QueryPlan, limit: int) -> models.Prefetch:
        return models.Prefetch(prefetch=list(prefetches), query=self._fusion(plan), limit=limit)

    def _mmr_request(self, candidates: Any, mmr: MmrStage, plan: QueryPlan) -> models.QueryRequest:
        return models.QueryRequest(  # the server's diversity is 1 - lambda
            prefetch=[candidates], using=mmr.using,
            query=models.NearestQuery(nearest=list(mmr.vector), mmr=models.Mmr(
                diversity=1.0 - mmr.lambda_, candidates_limit=mmr.candidates)),
            limit=plan.limit, with_payload=payload_keys(plan), with_vector=vector_names(plan),
        )

    def _late_query(self, late: LateStage) -> tuple[Any, Any]:
        params = None if late.search is None else self._engine_search(late.search)
        return [list(row) for row in late.vector], params

    def _late_request(self, prefetches: Sequence[Any], late: LateStage, plan: QueryPlan) -> models.QueryRequest:
        query, params = self._late_query(late)
        return models.QueryRequest(prefetch=list(prefetches), query=query, using=late.using, params=params,
                                   limit=plan.limit, with_payload=True, with_vector=vector_names(plan))

    def _late_prefetch(self, prefetches: Sequence[Any], late: LateStage, limit: int) -> models.Prefetch:
        query, params = self._late_query(late)
        return models.Prefetch(prefetch=list(prefetches), query=query, using=late.using, params=params, limit=limit)

    def _run(self, request: models.QueryRequest) -> list[Any]:
        return self._client.query_points(
            self._name, query=request.query, using=request.using, prefetch=request.prefetch,
            query_filter=request.filter, search_params=request.params,
            limit=request.limit if request.limit is not None else 10,  # ours always set both
            with_payload=request.with_payload if request.with_payload is not None else True,
            with_vectors=request.with_vector or False,
        ).points

    def _run_batch(self, requests: list[Any]) -> list[list[Any]]:
        """One ``query_batch_points`` call: one round trip to a server for the whole batch, which the
        server plans together (local mode runs them one by one)."""
        return [response.points for response in self._client.query_batch_points(self._name, requests=requests)]

    def _page(self, engine_filter: Any, offset: Any, limit: int, with_vectors: bool,
              payload: PayloadSelection = True) -> tuple[list[Any], Any]:
        return self._client.scroll(self._name, scroll_filter=engine_filter, limit=limit, offset=offset,
                                   with_payload=payload if isinstance(payload, bool) else list(payload),
                                   with_vectors=with_vectors)

    def retrieve(self, ids: Sequence[str], with_vectors: bool = False) -> list[Hit]:
        if not self._exists or not ids:
            return []
        return [hit(r) for r in self._client.retrieve(self._name, ids=list(ids), with_payload=True,
                                                      with_vectors=with_vectors)]

    def count(self, flt: Optional[models.Filter]) -> int:
        if not self._exists:
            return 0
        return self._client.count(self._name, count_filter=flt, exact=True).count

    def delete(self, flt: models.Filter) -> None:
        if self._exists:
            self._client.delete(self._name, points_selector=models.FilterSelector(filter=flt), wait=True)

    def clear(self) -> None:
        self.delete(models.Filter())

    def optimize(self) -> None:
        """A server optimises in the background; nothing to force here."""

    def flush(self) -> None:
        """A server makes acknowledged writes durable on its own (its WAL); nothing to do."""

    def close(self) -> None:
        """Close the client only if the store made it; a caller's client stays theirs."""
        if self._owns_client:
            self._client.close()
