"""``MultimodalQdrantStore``: text and image nodes in one Qdrant collection, fused by RRF in the engine.

Thin on purpose: planning lives in ``plan.py`` and ``filters.py``, Qdrant I/O in ``backends/``.
Each async method runs its sync twin in a thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter
from dataclasses import replace
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryResult,
)
from qdrant_client import QdrantClient, models
from tqdm.auto import tqdm

from llama_index_mm_st.concurrency import DynamicBatcher
from llama_index_mm_st.defaults import DEFAULT_RRF_K
from llama_index_mm_st.docs import document_parameters
from llama_index_mm_st.fast_private import fast_private_attributes
from llama_index_mm_st.inputs import read_node
from llama_index_mm_st.multivector import attach_multivector, node_multivector
from llama_index_mm_st.store import plan as P
from llama_index_mm_st.store.backends import Backend
from llama_index_mm_st.store.backends.choose import API_KEY_ENV, open_backend  # noqa: F401 - API_KEY_ENV kept importable here
from llama_index_mm_st.store.bm25 import QdrantBm25, SparseTextEncoder
from llama_index_mm_st.store.filters import all_of, to_qdrant_filter
from llama_index_mm_st.store.late import DEFAULT_PREFETCH_LIMIT, late_stage
from llama_index_mm_st.store.settings import DEFAULT_HNSW_EF, check_weights, chosen_dense, known_dense, search_settings
from llama_index_mm_st.store.schema import (
    KEYWORD_INDEXED_KEYS,
    MODALITY_KEY,
    MULTIVECTOR_NAME,
    REF_DOC_ID_KEY,
    RESERVED_PAYLOAD_KEYS,
    STORAGE_OPTIONS,
    IndexKind,
    Quantization,
    StoreSchema,
    VectorDatatype,
    check_schema,
    infer_index_kind,
)
from llama_index_mm_st.types import DENSE_VECTOR_NAMES, MODALITIES, Modality, SparseVector

logger = logging.getLogger(__name__)

_QUERY_KWARGS = ("modality", "rrf_k", "rrf_weights", "query_modality", "query_multivector")
QueryItem = tuple[VectorStoreQuery, Dict[str, Any]]


@document_parameters(api_key="Qdrant server API key (default: QDRANT_API_KEY); never logged.", client="A ready QdrantClient to use instead of path/url.", client_kwargs="Passed to QdrantClient when url is given.")
@fast_private_attributes
class MultimodalQdrantStore(BasePydanticVectorStore):
    """Text and image nodes in one Qdrant collection: dense "text" and "image" vectors plus BM25.

    A query searches each named dense vector (and BM25 in hybrid) as its own ranked list and Qdrant
    fuses them with RRF, so images are not buried under texts by the modality gap. Embedded by
    default (Qdrant Edge at ``path``, or a temporary directory); ``url=``/``client=`` use a Qdrant
    server. ``ImageNode.embedding`` is stored as the image vector, ``ImageNode.text_embedding`` as
    the text vector.
    """

    stores_text: bool = True

    collection_name: str = Field(default="mmst", description="Collection (Edge: sub-directory of path).")
    path: Optional[str] = Field(default=None, description="Edge store directory; None = temporary.")
    url: Optional[str] = Field(default=None, description="Qdrant server URL.")
    dim: Optional[int] = Field(default=None, description="Vector size; None = from the first insert.")
    hybrid: bool = Field(default=False, description="Add the BM25 branch to every query with text.")
    modality: Optional[Modality] = Field(default=None, description="Only return nodes with this modality.")
    rrf_k: int = Field(default=DEFAULT_RRF_K, gt=0, description="RRF k (pinned: local mode defaults to 2).")
    rrf_weights: Dict[str, float] = Field(
        default_factory=dict, description='Per-branch RRF weight, e.g. {"image": 2.0, "bm25": 0.5}.'
    )
    bm25_language: str = Field(default="english", description="qdrant_edge.Bm25 stemmer/stopwords language.")
    bm25_metadata_keys: List[str] = Field(
        default_factory=lambda: ["caption", "alt_text", "extracted_text"],
        description="Metadata keys whose text BM25 indexes besides the node text.",
    )
    payload_indexes: Dict[str, IndexKind] = Field(
        default_factory=dict, description="Metadata keys to index up front, key -> kind."
    )
    auto_index: bool = Field(default=True, description="Index new metadata keys on insert.")
    payload_hnsw: bool = Field(
        default=False,
        description="Build per-value HNSW links for metadata indexes: faster very selective filters, "
        "at the cost of a much slower optimize() (see docs/store.md).",
    )
    batch_size: int = Field(default=512, gt=0, description="Points per upsert request.")
    show_progress: Optional[bool] = Field(default=None, description="None = a bar for multi-batch adds on a TTY.")
    shard_number: Optional[int] = Field(default=None, description="Server/cluster: shards of a new collection.")
    replication_factor: Optional[int] = Field(default=None, description="Server/cluster: copies of each shard.")
    write_consistency_factor: Optional[int] = Field(default=None, description="Server/cluster: replicas that confirm a write.")
    quantization: Optional[Quantization] = Field(
        default=None, description='"int8" (4x smaller search copy) or "binary" (32x); kept in RAM, rescored '
        "by the originals. Recorded with the collection; left out, a reopen takes the collection's.",
    )
    on_disk: bool = Field(default=False, description="Keep the original vectors on disk (memory-mapped), not in RAM.")
    vector_datatype: VectorDatatype = Field(default="float32", description='"float16" halves the original vectors.')
    rescore: bool = Field(default=True, description="Re-rank what quantized vectors found by the original vectors.")
    oversampling: Optional[float] = Field(
        default=None, ge=1.0, description="Candidates per result drawn by quantized vectors; None = per-kind default.",
    )
    hnsw_ef: Optional[int] = Field(
        default=DEFAULT_HNSW_EF, gt=0,
        description="Graph search width per dense branch; wider = more recall, a little slower (see docs/store.md). "
        "None leaves the engine's own width.",
    )
    query_batch_size: int = Field(default=64, gt=0, description="Most concurrent aquery calls run as one engine batch.")
    wal: bool = Field(
        default=True, description="Edge: keep a write-ahead log. False builds a store without one, for good (the "
        "engine can't add it later): only flush() makes writes durable (see docs/store.md). Recorded in the schema.",
    )
    dense_vectors: Optional[List[str]] = Field(
        default=None, description="The modalities a new collection gets a dense vector for, among text, image, audio "
        "and video (text always). None: all four, or an existing collection's own. Each named vector keeps a slot "
        "for every point, held or not, so a text and image index without audio and video needs half the vector "
        "memory and disk (see docs/store.md). Recorded in the schema; a node of a left-out modality is refused.",
    )
    late_interaction: Optional[bool] = Field(
        default=None, description="Hold late-interaction multivectors (ColPali-family models, MaxSim). None: as the "
        "collection was built, else as the first nodes added (a late-interaction embedding's nodes carry one); "
        "with dim= the collection is made at once, so say True there.",
    )
    prefetch_limit: int = Field(
        default=DEFAULT_PREFETCH_LIMIT, gt=0,
        description="Late interaction: candidates each pooled dense branch hands to exact MaxSim rescoring.",
    )
    multivector_datatype: VectorDatatype = Field(
        default="float32", description='Late interaction: "float16" halves the stored multivectors.'
    )
    return_multivectors: bool = Field(
        default=True, description="Late interaction: query results carry their stored multivector (read by a "
        "MaxSim reranker built from the same model, instead of encoding the pages again).",
    )
    multivector_quantization: Optional[Quantization] = Field(
        default=None, description='Late interaction: "int8" or "binary" compressed multivectors in RAM; MaxSim '
        "on them picks oversampling x the limit, exact MaxSim over the originals ranks those.",
    )

    _backend: Backend = PrivateAttr()
    _batcher: DynamicBatcher = PrivateAttr()
    _bm25: SparseTextEncoder = PrivateAttr()
    _schema: Optional[StoreSchema] = PrivateAttr(default=None)
    _indexed: Dict[str, IndexKind] = PrivateAttr(default_factory=dict)
    _held_dense: Optional[frozenset] = PrivateAttr(default=None)

    def __init__(
        self,
        collection_name: str = "mmst",
        *,
        path: Optional[str] = None,
        url: Optional[str] = None,
        api_key: Optional[str] = None,
        client: Optional[QdrantClient] = None,
        client_kwargs: Optional[Dict[str, Any]] = None,
        **fields: Any,
    ) -> None:
        unknown = set(fields) - set(type(self).model_fields)
        if unknown:
            raise TypeError(f"unexpected arguments {sorted(unknown)}; valid: {sorted(type(self).model_fields)}")
        super().__init__(collection_name=collection_name, path=None if path is None else str(path), url=url, **fields)
        check_weights(self.rrf_weights)
        chosen_dense(self.dense_vectors)  # a bad choice fails here, before anything is opened
        for key in self.payload_indexes:
            if key in RESERVED_PAYLOAD_KEYS:
                raise ValueError(f"payload index {key!r}: the store already indexes its own keys")
        self._bm25 = QdrantBm25(self.bm25_language)
        cluster = {
            "shard_number": self.shard_number,
            "replication_factor": self.replication_factor,
            "write_consistency_factor": self.write_consistency_factor,
        }
        self._batcher = DynamicBatcher(self._query_batch, max_batch_size=self.query_batch_size)
        self._backend = open_backend(collection_name, self.path, url, api_key, client, client_kwargs, cluster, self.wal)
        try:
            self._open_or_create()
        except BaseException:  # a mismatch, a full disk, an engine error: re-raised as it is
            self._backend.close()  # release an Edge store's lock: this object will not exist
            raise

    def _open_or_create(self) -> None:
        existing = self._backend.existing_schema()
        if existing is not None:
            # An existing store keeps the dense vectors it was made with (one made before audio and
            # video has only "text" and "image"); adding a node of a modality it lacks is refused.
            wanted = self._wanted(self.dim or existing.dim, late=self._late_wanted(existing.late_interaction))
            if self.dense_vectors is None:  # left out: the collection's own (one made before audio has two)
                wanted = replace(wanted, dense=known_dense(existing.dense))
            check_schema(self._backend.where, existing, wanted, self.dim is not None, self._options_given())
            self._backend.open(existing)
            self._schema = existing
            self._indexed = self._backend.indexed_fields()
            self._ensure_indexes(dict(self.payload_indexes))
        elif self.dim is not None:
            self._create(self.dim, late=bool(self.late_interaction))

    @classmethod
    def class_name(cls) -> str:
        return "MultimodalQdrantStore"

    @property
    def local_path(self) -> Optional[str]:
        """The directory of an embedded (Edge) collection, a temporary one when ``path`` was None;
        None for a collection on a Qdrant server."""
        return self._backend.local_path

    @property
    def unfinished(self) -> Optional[str]:
        """Why this store is not a whole store yet, or None: its creation was interrupted (a kill or a
        crash between its steps). Such a store holds no points, opens as one without a collection, and
        the next write that creates the collection (``add``, ``copy_to``, ``dim=``) finishes it."""
        return self._backend.unfinished

    @property
    def client(self) -> Any:
        """The engine object: a ``qdrant_edge.EdgeShard`` or a ``QdrantClient``."""
        return self._backend.raw

    # ------------------------------------------------------------ schema and indexes

    @property
    def schema(self) -> Optional[StoreSchema]:
        """The collection's schema, storage options included; None before the collection exists."""
        return self._schema

    def _options_given(self) -> set[str]:
        """Storage options the caller set; the others follow the collection (like ``dim``)."""
        return set(STORAGE_OPTIONS) & self.model_fields_set

    def _late_wanted(self, default: bool) -> bool:
        """Whether this store asks for multivectors: as set, else ``default`` (the collection's, or the first nodes')."""
        return default if self.late_interaction is None else self.late_interaction

    def _wanted(self, dim: int, base: Optional[StoreSchema] = None, late: bool = False) -> StoreSchema:
        """The schema this store asks for: options not given are taken from ``base`` when there is one."""
        given = self._options_given()
        options = {o: getattr(base if base is not None and o not in given else self, o) for o in STORAGE_OPTIONS}
        multivector = MULTIVECTOR_NAME if late else None
        dense = chosen_dense(self.dense_vectors) or (base.dense if base is not None else DENSE_VECTOR_NAMES)
        return StoreSchema(dim=dim, dense=dense, bm25_language=self.bm25_language,
                           multivector=multivector, **options)

    def _create(self, dim: int, base: Optional[StoreSchema] = None, late: bool = False) -> StoreSchema:
        schema = self._wanted(dim, base, late)
        self._backend.create(schema)
        self._schema = schema
        self._indexed = {}
        self._held_dense = None
        self._ensure_indexes({key: "keyword" for key in KEYWORD_INDEXED_KEYS} | dict(self.payload_indexes))
        return schema

    def _ensure_indexes(self, wanted: Dict[str, IndexKind]) -> None:
        for key, kind in wanted.items():
            have = self._indexed.get(key)
            if have is None:
                # The store's own keys never steer a vector search, so they never get graph links.
                hnsw = self.payload_hnsw and key not in KEYWORD_INDEXED_KEYS
                self._backend.create_index(key, kind, hnsw)
                self._indexed[key] = kind
            elif have != kind:
                logger.warning("metadata key %r is indexed as %s, not %s; filters on other values scan", key, have, kind)

    def _auto_indexes(self, nodes: Sequence[BaseNode]) -> None:
        """Index metadata keys on first sight, so filters stay fast without the caller declaring them."""
        new: Dict[str, IndexKind] = {}
        indexed = self._indexed  # a private attribute read costs a pydantic __getattr__: once, not per key
        for node in nodes:
            for key, value in node.metadata.items():
                if key in indexed or key in new:
                    continue
                kind = infer_index_kind(value)
                if kind is not None:
                    new[key] = kind
        self._ensure_indexes(new)

    # ------------------------------------------------------------ writes

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> List[str]:
        """Upsert nodes in batches; the same node id again replaces its point.

        All or nothing per call: every node is checked and turned into a point (vectors finite and of
        the store's size, metadata that a payload can hold) before the first point is written, so a
        bad node leaves the store exactly as it was and the error names it.
        """
        nodes = list(nodes)
        if not nodes:
            return []
        schema = self._schema
        if schema is not None:
            dim, late = schema.dim, schema.late_interaction
        else:
            first = P.dense_vectors(read_node(nodes[0]))
            dim = self.dim or len(next(iter(first.values()), []))
            late = self._late_wanted(node_multivector(nodes[0]) is not None)
        encode, keys = self._bm25.document, self.bm25_metadata_keys
        names = schema.dense if schema is not None else DENSE_VECTOR_NAMES
        points = [P.node_to_point(node, dim, encode, keys, names, late) for node in nodes]
        if schema is None:
            self._create(dim, late=late)
        if self.auto_index:
            self._auto_indexes(nodes)
        size = int(add_kwargs.get("batch_size", self.batch_size))
        show = add_kwargs.get("show_progress", self.show_progress)
        batches = -(-len(points) // size)
        disable = (batches <= 1 or None) if show is None else not show
        if self._held_dense is not None:  # before the write: a superset only costs an empty branch
            self._held_dense = self._held_dense.union(name for point in points for name in point.dense)
        with tqdm(total=len(points), desc="upsert", unit="point", disable=disable) as bar:
            self._backend.upsert(points, size, on_batch=bar.update)
        return [n.node_id for n in nodes]

    def sparse_query_vector(self, text: str) -> SparseVector:
        """The BM25 vector this store searches ``text`` with; no indices when it has no searchable
        words (only stop words or punctuation)."""
        return self._bm25.query(text)

    def modality_of(self, node: BaseNode) -> Modality:
        """The modality tag this store gives a node: "image" (pixels only), "text+image" (pixels and
        words) or "text"; the same rule the embedding and the reranker apply."""
        return read_node(node).modality

    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> List[str]:
        return await asyncio.to_thread(self.add, nodes, **kwargs)

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of one source document."""
        self._backend.delete(models.Filter(must=[models.FieldCondition(key=REF_DOC_ID_KEY, match=models.MatchValue(value=ref_doc_id))]))

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        await asyncio.to_thread(self.delete, ref_doc_id, **delete_kwargs)

    def delete_nodes(
        self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None, **delete_kwargs: Any
    ) -> None:
        """Delete nodes by id and/or filter (both given: nodes matching both)."""
        if node_ids is None and filters is None:
            raise ValueError("delete_nodes needs node_ids or filters; use clear() to delete everything")
        flt = self._selection(node_ids, filters)
        if flt is not None:
            self._backend.delete(flt)

    async def adelete_nodes(
        self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None, **delete_kwargs: Any
    ) -> None:
        await asyncio.to_thread(self.delete_nodes, node_ids, filters, **delete_kwargs)

    def clear(self) -> None:
        """Delete every point; the collection and its schema stay."""
        self._backend.clear()

    async def aclear(self) -> None:
        await asyncio.to_thread(self.clear)

    def copy_to(self, target: "MultimodalQdrantStore") -> int:
        """Copy every point, vectors and payload included, into another store: how an embedded store
        moves to a server without re-embedding. The collection's metadata (``get_metadata``: which
        model built it, for ``mmst``) comes along, merged over the target's. Returns the number of
        points copied."""
        if self._schema is None:
            return 0
        existing = target._schema
        if existing is None:
            # The target keeps our storage options unless it set its own; the WAL is its own choice.
            target._create(self._schema.dim, base=dataclasses.replace(self._schema, wal=target.wal),
                           late=self._schema.late_interaction)
        else:
            check_schema(target._backend.where, existing, self._schema, dim_given=True, options_given=())
        target._ensure_indexes(dict(self._indexed))
        copied = 0
        target._held_dense = None  # it gains vectors past its add(): count them again at its next query
        for points in self._backend.export(self.batch_size):
            target._backend.upsert(points, target.batch_size)
            copied += len(points)
        metadata = self.get_metadata()
        if metadata:  # last: a copy that stopped early is not yet labelled as built by our model
            target.update_metadata(metadata)
        return copied

    async def acopy_to(self, target: "MultimodalQdrantStore") -> int:
        return await asyncio.to_thread(self.copy_to, target)

    def flush(self) -> None:
        """Make every write so far durable: the checkpoint of a bulk build with ``wal=False``
        (record "done" only after it returns). With the WAL (the default) writes are durable anyway."""
        self._backend.flush()

    def optimize(self) -> None:
        """Build the HNSW and payload indexes now (Edge); call after a bulk load for full query speed."""
        self._backend.optimize()

    async def aoptimize(self) -> None:
        await asyncio.to_thread(self.optimize)

    # ------------------------------------------------------------ reads

    @staticmethod
    def _selection(node_ids: Optional[Sequence[str]], filters: Optional[MetadataFilters]) -> Optional[models.Filter]:
        if node_ids is not None and not node_ids:
            return models.Filter(must=[models.HasIdCondition(has_id=[])])
        return all_of(
            [
                models.HasIdCondition(has_id=[P.point_id(i) for i in node_ids]) if node_ids else None,
                to_qdrant_filter(filters) if filters is not None and filters.filters else None,
            ]
        )

    def get_nodes(self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None) -> List[BaseNode]:
        """Nodes by id and/or filter; all nodes when neither is given."""
        if node_ids is not None and filters is None:
            hits = self._backend.retrieve([P.point_id(i) for i in node_ids])
            order = {P.point_id(i): n for n, i in enumerate(node_ids)}
            hits.sort(key=lambda h: order[h.id])
        else:
            hits = self._backend.scroll(self._selection(node_ids, filters))
        return [P.payload_to_node(h.payload) for h in hits]

    async def aget_nodes(
        self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None
    ) -> List[BaseNode]:
        return await asyncio.to_thread(self.get_nodes, node_ids, filters)

    def get_metadata(self) -> Dict[str, Any]:
        """Free-form metadata kept with the collection (e.g. which model built it); {} if none."""
        return self._backend.read_metadata()

    def update_metadata(self, values: Dict[str, Any]) -> None:
        """Merge ``values`` into the collection's metadata (JSON values). The collection must exist:
        add nodes, or open the store with ``dim=``, first."""
        if self._schema is None:
            raise ValueError("the collection does not exist yet: add nodes, or open the store with dim=, first")
        self._backend.write_metadata({**self._backend.read_metadata(), **values})

    def count(self, filters: Optional[MetadataFilters] = None) -> int:
        """Number of nodes, optionally only those matching ``filters``."""
        return self._backend.count(self._selection(None, filters))

    def count_by_modality(self) -> Counter:
        """Number of nodes per modality tag (exact tags: "image" does not count "text+image" here)."""
        return Counter({
            modality: self._backend.count(
                models.Filter(must=[models.FieldCondition(key=MODALITY_KEY, match=models.MatchValue(value=modality))])
            )
            for modality in MODALITIES
        })

    async def acount(self, filters: Optional[MetadataFilters] = None) -> int:
        return await asyncio.to_thread(self.count, filters)

    def _plan(self, query: VectorStoreQuery, kwargs: Dict[str, Any]) -> P.QueryPlan:
        unknown = set(kwargs) - set(_QUERY_KWARGS)
        if unknown:
            raise TypeError(f"unexpected query arguments {sorted(unknown)}; valid: {list(_QUERY_KWARGS)}")
        weights = kwargs.get("rrf_weights", self.rrf_weights)
        check_weights(weights)
        query, late = late_stage(self._schema, query, kwargs.get("query_multivector"), self.prefetch_limit,
                                 self.oversampling)
        opts = P.QueryOptions(
            dense=self._searched_dense(),
            hybrid=self.hybrid,
            modality=kwargs.get("modality", self.modality),
            rrf_k=int(kwargs.get("rrf_k", self.rrf_k)),
            weights=weights,
            query_modality=kwargs.get("query_modality", "text"),
            search=self._search_settings(),
            late=late,
            with_multivector=self.return_multivectors and self._schema is not None and self._schema.late_interaction,
        )
        return P.plan_query(query, opts, self.sparse_query_vector)

    def _searched_dense(self) -> tuple[str, ...]:
        """The dense vectors a query searches. On a single-writer backend (Edge) only those some
        point carries: an empty audio or video branch still costs the engine a filtered search (0.7
        of 2.7 ms at 30k text and image points). Others may write a server collection, so it gets all."""
        names = self._schema.dense if self._schema is not None else DENSE_VECTOR_NAMES
        if not self._backend.single_writer:
            return tuple(names)
        if self._held_dense is None:
            self._held_dense = frozenset(
                name for name in names
                if self._backend.count(models.Filter(must=[models.HasVectorCondition(has_vector=name)]))
            )
        return tuple(name for name in names if name in self._held_dense)

    def _search_settings(self) -> Optional[P.SearchSettings]:
        quantization = self._schema.quantization if self._schema is not None else None
        return search_settings(quantization, self.hnsw_ef, self.rescore, self.oversampling)

    @staticmethod
    def _result(hits: Sequence[Any]) -> VectorStoreQueryResult:
        nodes = [P.payload_to_node(h.payload) for h in hits]
        for node, found in zip(nodes, hits):
            if found.multivector is not None:
                attach_multivector(node, np.asarray(found.multivector, dtype=np.float32))
        return VectorStoreQueryResult(
            nodes=nodes,
            similarities=[float(h.score or 0.0) for h in hits],
            ids=[n.node_id for n in nodes],
        )

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Dense branches per modality (+ BM25 in hybrid) fused by RRF in Qdrant.

        Per-query overrides: ``modality=``, ``rrf_k=``, ``rrf_weights=``, and ``query_modality=``
        ("text" by default, "image" for an image query embedding), which picks the vector that ranks
        nodes carrying both (see ``plan.dense_restriction``: every node is ranked once by dense similarity).
        In a late-interaction collection the dense branches prefetch ``prefetch_limit`` candidates and
        exact MaxSim ranks them, with the query's token vectors from its ``PooledVector`` (or a 2-D
        ``query_embedding``, or ``query_multivector=``); see ``store.late``.
        """
        return self._result(self._backend.query(self._plan(query, kwargs)))

    def _query_batch(self, items: Sequence[QueryItem]) -> List[Union[VectorStoreQueryResult, BaseException]]:
        """Concurrent ``aquery`` calls as one engine batch; a bad query gets its own error, the rest run."""
        planned: List[Union[P.QueryPlan, BaseException]] = []
        for query, kwargs in items:
            try:
                planned.append(self._plan(query, kwargs))
            except (TypeError, ValueError) as exc:
                planned.append(exc)
        found = iter(self._backend.query_batch([p for p in planned if isinstance(p, P.QueryPlan)]))
        out: List[Union[VectorStoreQueryResult, BaseException]] = []
        for plan in planned:
            hits = plan if isinstance(plan, BaseException) else next(found)
            out.append(hits if isinstance(hits, BaseException) else self._result(hits))
        return out

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """``query`` for async callers: concurrent calls are coalesced into one engine batch
        (``EdgeShard.query_batch``, or ``query_batch_points`` on a server) while the previous batch runs."""
        return await self._batcher.submit((query, kwargs))

    # ------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Flush and release the store (for Edge: the lock, so another process can open it)."""
        self._backend.close()

    def __enter__(self) -> "MultimodalQdrantStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
