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
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Union

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
from llama_index_mm_st.errors import SchemaMismatchError, refuse_unknown
from llama_index_mm_st.fast_private import fast_private_attributes
from llama_index_mm_st.inputs import NodeParts, read_node, storable
from llama_index_mm_st.multivector import attach_multivector, node_multivector
from llama_index_mm_st.store import plan as P
from llama_index_mm_st.store.backends import Backend
from llama_index_mm_st.store.backends.choose import API_KEY_ENV, open_backend  # noqa: F401 - API_KEY_ENV kept importable here
from llama_index_mm_st.store.bm25 import QdrantBm25, SparseTextEncoder
from llama_index_mm_st.store.filters import all_of, to_qdrant_filter
from llama_index_mm_st.store import recall as R
from llama_index_mm_st.store.late import DEFAULT_PREFETCH_LIMIT, late_stage
from llama_index_mm_st.store.learned_sparse import (
    LearnedSparseEncoder,
    learned_encoder,
    sparse_layout,
    with_learned_sparse,
)
from llama_index_mm_st.store.stages import Fusion
from llama_index_mm_st.store.reopen import _DEFER_OPEN, ReopenArgs, connected_reader, reopened
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
    kind_mismatch,
)
from llama_index_mm_st.types import DENSE_VECTOR_NAMES, MODALITIES, Modality, SparseVector

logger = logging.getLogger(__name__)

_QUERY_KWARGS = ("modality", "rrf_k", "rrf_weights", "query_modality", "query_multivector", "fusion", "mmr_threshold",
                 "mmr_candidates", "max_per_document", "document_key")
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
    fusion: Fusion = Field(
        default="rrf", description='How the ranked lists are fused: "rrf" (by rank; rrf_k, rrf_weights) or "dbsf" '
        "(each list's scores normalised by its mean and 3 standard deviations, then summed; no weights).",
    )
    mmr_candidates: Optional[int] = Field(
        default=None, gt=0, description="MMR (mode MMR, or mmr_threshold=): fused hits it chooses from; None: 5 x "
        "the hits returned.",
    )
    max_per_document: Optional[int] = Field(
        default=None, gt=0, description="At most this many hits per document (ref_doc_id, or document_key), the "
        "rest filled from further down the ranking; None: no cap.",
    )
    document_key: Optional[str] = Field(
        default=None, description="max_per_document: the metadata key naming a hit's document (e.g. file_path, so "
        "a PDF's pages are one document); None or absent on a node: its ref_doc_id, else the node itself.",
    )
    sparse_model: Optional[str] = Field(
        default=None, description="A sentence-transformers SparseEncoder (hub id or folder; SPLADE or an "
        "inference-free model) whose vectors of the node words sit beside BM25 (or replace it: bm25=False) and are "
        "fused like the other lists. Recorded in the schema: a reopen without it loads the collection's.",
    )
    bm25: bool = Field(
        default=True, description="Keep the BM25 vector; False (with sparse_model=) makes the learned one the only "
        "sparse vector. Recorded in the schema.",
    )
    sparse_model_kwargs: Dict[str, Any] = Field(
        default_factory=dict, description="Passed to SparseEncoder(...) (device, trust_remote_code, ...).",
    )
    target_recall: Optional[float] = Field(
        default=None, gt=0.0, le=1.0, description="Choose hnsw_ef to reach this recall@10 on this store (e.g. 0.95): "
        "measured against exact search by optimize() (and at open when the recorded target differs), recorded "
        "in the schema (see docs/store.md: recall against p50).",
    )

    _live: Optional[Backend] = PrivateAttr(default=None)
    _reopen: Optional["ReopenArgs"] = PrivateAttr(default=None)
    _batcher: DynamicBatcher = PrivateAttr()
    _bm25: SparseTextEncoder = PrivateAttr()
    _schema: Optional[StoreSchema] = PrivateAttr(default=None)
    _indexed: Dict[str, IndexKind] = PrivateAttr(default_factory=dict)
    _held_dense: Optional[frozenset] = PrivateAttr(default=None)
    _learned: Optional[LearnedSparseEncoder] = PrivateAttr(default=None)

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
        refuse_unknown(type(self).__name__, fields, {*type(self).model_fields, "api_key", "client", "client_kwargs"})
        super().__init__(collection_name=collection_name, path=None if path is None else str(path), url=url, **fields)
        check_weights(self.rrf_weights)
        chosen_dense(self.dense_vectors)  # a bad choice fails here, before anything is opened
        if not self.bm25 and not self.sparse_model:
            raise ValueError("bm25=False replaces BM25 by a learned sparse model: give sparse_model= too")
        if self.target_recall is not None and "hnsw_ef" in self.model_fields_set:
            raise ValueError("give target_recall= (the store measures the search width that reaches it) or hnsw_ef= "
                             "(you choose the width), not both")
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
        # What pickling sends: how to open this store again (None: it can't be reopened elsewhere).
        self._reopen = None if client is not None or self.path is None and url is None else ReopenArgs(
            collection_name, self.path, url, api_key, dict(client_kwargs or {}), dict(fields))
        if _DEFER_OPEN.get():
            return  # unpickled: opened on first use (``_connect``), so a copy costs nothing until then
        self._connect(open_backend(collection_name, self.path, url, api_key, client, client_kwargs, cluster, self.wal))

    def _connect(self, backend: Optional[Backend] = None) -> Backend:
        """Open the collection (or the unpickled store's, on first use) and check its schema; any
        failure (a mismatch, a full disk, an engine error) releases an Edge store's lock at once."""
        if backend is None:
            args = self._reopen
            cluster = {name: getattr(self, name) for name in ("shard_number", "replication_factor",
                                                                "write_consistency_factor")}
            backend = open_backend(args.collection_name, args.path, args.url, args.api_key, None,
                                   args.client_kwargs or None, cluster, self.wal)
        try:
            self._open_or_create(backend)
        except BaseException:  # re-raised as it is: this object will not hold the store
            self.__pydantic_private__["_live"] = None
            backend.close()
            raise
        return backend

    def _open_or_create(self, backend: Backend) -> None:
        existing = backend.existing_schema()
        if existing is not None:
            # An existing store keeps the dense vectors it was made with (one made before audio and
            # video has only "text" and "image"); adding a node of a modality it lacks is refused.
            wanted = self._wanted(self.dim or existing.dim, late=self._late_wanted(existing.late_interaction))
            if self.dense_vectors is None:  # left out: the collection's own (one made before audio has two)
                wanted = replace(wanted, dense=known_dense(existing.dense))
            wanted = replace(wanted, **self._sparse_layout(existing))
            check_schema(backend.where, existing, wanted, self.dim is not None, self._options_given())
            backend.open(existing)
        self.__pydantic_private__["_live"] = backend
        if existing is not None:
            self._schema = existing
            self._indexed = backend.indexed_fields()
            self._ensure_indexes(dict(self.payload_indexes))
        elif self.dim is not None:
            self._create(self.dim, late=bool(self.late_interaction))
        if existing is not None and self.target_recall is not None and existing.target_recall != self.target_recall \
                and backend.count(None):
            self.tune_hnsw_ef()  # a new target for a filled store: measure now, as optimize() would

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle how to open the store, never its engine: the copy opens the same collection on first
        use (an Edge store's lock must be free by then: close this one first, or use it in another
        process). A temporary Edge store or one given a client object can't be reopened, and says so."""
        if self._reopen is None:
            raise TypeError(
                "this MultimodalQdrantStore can't be pickled: "
                + ("it was given a client object; pass url= (and api_key=) instead so a copy can reconnect"
                   if self.url is None and self.path is None and self.__pydantic_private__.get("_live") is not None
                   and self.__pydantic_private__["_live"].local_path is None
                   else "its data lives in a temporary directory that ends with it; give path= to keep it")
            )
        return reopened, (type(self), self._reopen)

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

    def _wanted(self, dim: int, base: Optional[StoreSchema] = None, late: bool = False,
                dense: Optional[Sequence[str]] = None) -> StoreSchema:
        """The schema this store asks for: options not given are taken from ``base`` when there is one;
        ``dense`` (checked by ``chosen_dense``) overrides the store's ``dense_vectors``."""
        given = self._options_given()
        options = {o: getattr(base if base is not None and o not in given else self, o) for o in STORAGE_OPTIONS}
        multivector = MULTIVECTOR_NAME if late else None
        dense = dense or chosen_dense(self.dense_vectors) or (base.dense if base is not None else DENSE_VECTOR_NAMES)
        return StoreSchema(dim=dim, dense=dense, bm25_language=self.bm25_language,
                           multivector=multivector, **options, **self._sparse_layout(base))

    def _sparse_layout(self, base: Optional[StoreSchema]) -> Dict[str, Any]:
        """The sparse vectors asked for: as given, else (left out) ``base``'s, the collection's."""
        return sparse_layout(base, self.model_fields_set, self.bm25, self.sparse_model)

    def _learned_for(self, schema: Optional[StoreSchema]) -> Optional[LearnedSparseEncoder]:
        """The learned sparse model of a collection laid out as ``schema`` (loaded on first encode)."""
        self._learned = learned_encoder(schema, self._learned, self.sparse_model_kwargs)
        return self._learned

    def _create(self, dim: int, base: Optional[StoreSchema] = None, late: bool = False,
                dense: Optional[Sequence[str]] = None) -> StoreSchema:
        schema = self._wanted(dim, base, late, dense)
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
        return self._add(list(nodes), None, add_kwargs)

    def add_parts(self, parts: Sequence[NodeParts], **add_kwargs: Any) -> List[str]:
        """``add`` for nodes already read (``inputs.read_node`` of each node in its stored form,
        ``inputs.storable``): the ingestion job reads a node once and hands the reading on."""
        return self._add([p.node for p in parts], list(parts), add_kwargs)

    def _add(self, nodes: List[BaseNode], parts: Optional[List[NodeParts]], add_kwargs: Dict[str, Any]) -> List[str]:
        if not nodes:
            return []
        schema = self._schema
        if schema is not None:
            dim, late = schema.dim, schema.late_interaction
        else:
            first = P.dense_vectors(parts[0] if parts else read_node(nodes[0]))
            dim = self.dim or len(next(iter(first.values()), []))
            late = self._late_wanted(node_multivector(nodes[0]) is not None)
        # Every node is checked against the schema it will be written under: the collection's, or the
        # one this call is about to create (its dense_vectors), before anything exists or is written.
        planned = schema if schema is not None else self._wanted(dim, late=late)
        points = self.plan_points(nodes, planned, parts)
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

    def plan_points(self, nodes: Sequence[BaseNode], schema: Optional[StoreSchema] = None,
                    parts: Optional[Sequence[NodeParts]] = None) -> List[P.PointSpec]:
        """The points ``add`` would write for these nodes (checked, as ``add`` checks them), without
        writing anything: the store's plan, to inspect. ``schema``: the collection's by default;
        ``parts``: the nodes' readings when the caller has them (``add_parts``)."""
        schema = schema or self._schema
        if schema is None:
            raise ValueError("the collection does not exist yet: pass the schema to plan against, or add nodes first")
        encode, keys = (self._bm25.document if schema.sparse else None), self.bm25_metadata_keys
        dim, names, late = schema.dim, schema.dense, schema.late_interaction
        if parts is not None:
            points = [P.parts_to_point(p, p.node, dim, encode, keys, names, late) for p in parts]
        else:
            points = [P.node_to_point(node, dim, encode, keys, names, late) for node in nodes]
        learned = self._learned_for(schema)
        if learned is None:
            return points
        readings = parts if parts is not None else [read_node(storable(node)) for node in nodes]
        return with_learned_sparse(points, readings, learned, keys)

    def ensure_collection(self, dim: int, *, dense_vectors: Optional[Sequence[str]] = None,
                          late_interaction: bool = False) -> StoreSchema:
        """The collection, made now when it does not exist yet: ``dim``-sized vectors, a dense vector
        for each of ``dense_vectors`` (None: the store's ``dense_vectors`` setting) and multivectors when
        ``late_interaction``. An existing collection keeps the vectors it has, but its dimension and
        kind must match (``SchemaMismatchError`` otherwise): what a runner calls once its model is known."""
        schema = self._schema
        if schema is None:
            return self._create(dim, late=late_interaction, dense=chosen_dense(dense_vectors))
        if schema.dim != dim or schema.late_interaction != late_interaction:
            problems = [f"dimension {schema.dim} != {dim}"] if schema.dim != dim else []
            if schema.late_interaction != late_interaction:
                problems.append(kind_mismatch(schema.late_interaction, late_interaction, "are wanted"))
            raise SchemaMismatchError(f"{self._backend.where} does not match: " + "; ".join(problems))
        return schema

    def payload_values(self, keys: Sequence[str], filters: Optional[MetadataFilters] = None) -> List[Dict[str, Any]]:
        """The named payload keys of every point matching ``filters``, nothing else: no node is rebuilt
        and no vector read, so a resume check over a large store reads only what it needs."""
        return [dict(h.payload) for h in self._backend.scroll(self._selection(None, filters), payload=list(keys))]

    def sparse_vectors(self, node_ids: Sequence[str], vector: Optional[str] = None) -> List[tuple[List[int], List[float]]]:
        """The stored sparse vectors of these nodes, in the order asked, as ``(indices, values)`` pairs:
        the learned sparse model's by default (BM25's when there is none; ``vector="bm25"`` asks for it);
        ``([], [])`` for a node without words. For tests and debugging."""
        schema = self._schema
        names = schema.sparse_vectors if schema is not None else ()
        name = vector or (schema.learned_sparse or schema.sparse if schema is not None else None)
        if name not in names:
            raise ValueError(f"this store has no sparse vector {name!r}; it holds {list(names)}")
        found = self._backend.sparse_vectors([P.point_id(i) for i in node_ids], name)
        missing = [i for i in node_ids if P.point_id(i) not in found]
        if missing:
            raise ValueError(f"no node with id {missing[0]!r} in the store ({len(missing)} of those asked are missing)")
        return [found[P.point_id(i)] for i in node_ids]

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

    @property
    def indexed_keys(self) -> Dict[str, IndexKind]:
        """Payload keys with an index, and its kind (the store's own keys included)."""
        return dict(self._indexed)

    def export_points(self, batch_size: Optional[int] = None) -> Iterator[List[P.PointSpec]]:
        """Every point as stored (id, named dense vectors, BM25 vector, payload, multivector), in
        batches: what ``import_points`` of another store takes, with this store's ``schema``."""
        yield from self._backend.export(batch_size or self.batch_size)

    def import_points(self, batches: Iterable[Sequence[P.PointSpec]], schema: StoreSchema,
                      indexes: Optional[Dict[str, IndexKind]] = None) -> int:
        """Write points exported from a store whose schema is ``schema`` (``export_points``), as they
        are: nothing is embedded again. A new collection is made with ``schema``'s layout and storage
        options, except those this store was given (and its own WAL choice); an existing one must
        match it. ``indexes`` are payload indexes to make first. Returns the number of points written."""
        existing = self._schema
        if existing is None:  # a new graph: the source's tuned search width does not carry over
            base = dataclasses.replace(schema, wal=self.wal, hnsw_ef=None, target_recall=None)
            self._create(schema.dim, base=base, late=schema.late_interaction)
        else:
            check_schema(self._backend.where, existing, schema, dim_given=True, options_given=())
        self._ensure_indexes(dict(indexes or {}))
        self._held_dense = None  # it gains vectors past add(): count them again at the next query
        written = 0
        for points in batches:
            self._backend.upsert(list(points), self.batch_size)
            written += len(points)
        return written

    def copy_to(self, target: "MultimodalQdrantStore") -> int:
        """Copy every point, vectors and payload included, into another store: how an embedded store
        moves to a server without re-embedding. The collection's metadata (``get_metadata``: which
        model built it, for ``mmst``) comes along, merged over the target's. Returns the number of
        points copied."""
        if self._schema is None:
            return 0
        copied = target.import_points(self.export_points(), self._schema, self.indexed_keys)
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
        """Build the HNSW and payload indexes now (Edge); call after a bulk load for full query speed.
        With ``target_recall`` set, the search width that reaches it is then measured and recorded."""
        self._backend.optimize()
        if self.target_recall is not None and self._schema is not None and self._backend.count(None):
            self.tune_hnsw_ef()

    # ------------------------------------------------------------ recall

    def recall_report(self, sample: int = R.DEFAULT_SAMPLE, top_k: int = R.DEFAULT_TOP_K,
                      queries: R.ProbeQueries = None, hnsw_ef: Optional[int] = None) -> R.RecallReport:
        """recall@``top_k`` of this store's dense search against exact search, per dense vector: ``sample``
        stored points (each left out of its own results) or the caller's ``queries`` (vectors searched in
        every dense vector, or a dict naming the vector for each list), searched as queries are (graph
        width, quantization, oversampling, rescoring; ``hnsw_ef=`` another width) and exactly."""
        ef = hnsw_ef if hnsw_ef is not None else self._hnsw_ef()
        return R.estimate(self._backend, self._searched_dense(), self._search_settings(), ef, sample, top_k, queries)

    def estimate_recall(self, sample: int = R.DEFAULT_SAMPLE, top_k: int = R.DEFAULT_TOP_K,
                        queries: R.ProbeQueries = None) -> float:
        """recall@``top_k`` of this store's search over every probe query (``recall_report`` has it per vector)."""
        return self.recall_report(sample, top_k, queries).recall

    def tune_hnsw_ef(self, target: Optional[float] = None, sample: int = R.DEFAULT_SAMPLE,
                     top_k: int = R.DEFAULT_TOP_K) -> int:
        """Measure the narrowest search width whose recall@``top_k`` reaches ``target`` (default: the
        store's ``target_recall``) on every dense vector, record it in the schema and use it; returns it.
        When no width up to 4,096 reaches it and exact search costs no more than the widest, queries
        search exactly (``schema.exact_search``). Run it again when the collection has changed much
        (``optimize()`` does, with ``target_recall`` set)."""
        target = target if target is not None else self.target_recall
        if self._schema is None:
            raise ValueError("the collection does not exist yet: add nodes first")
        tuned = R.tune(self._backend, self._searched_dense(), self._search_settings(), target, sample, top_k)
        self._schema = replace(self._schema, hnsw_ef=tuned.hnsw_ef, target_recall=target, exact_search=tuned.exact)
        self._backend.record_schema(self._schema)
        return tuned.hnsw_ef

    def _hnsw_ef(self) -> Optional[int]:
        """The search width queries use: ``hnsw_ef`` when given, else the width ``target_recall`` recorded, else the default."""
        schema = self._schema
        if "hnsw_ef" in self.model_fields_set or schema is None or schema.hnsw_ef is None:
            return self.hnsw_ef
        return schema.hnsw_ef

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
        """Nodes by id (in the order asked) and/or filter; all nodes when neither is given. Each node
        comes back with its stored vectors (``embedding``, and an image node's ``text_embedding``; a
        late-interaction node its multivector), so ``other_store.add(store.get_nodes())`` copies them.
        The engine stores cosine vectors unit-length: a vector added unnormalised comes back normalised."""
        if node_ids is not None and filters is None:
            hits = self._backend.retrieve([P.point_id(i) for i in node_ids], with_vectors=True)
            order = {P.point_id(i): n for n, i in enumerate(node_ids)}
            hits.sort(key=lambda h: order[h.id])
        else:
            hits = self._backend.scroll(self._selection(node_ids, filters), with_vectors=True)
        return [self._node_of(h) for h in hits]

    @staticmethod
    def _node_of(found: Any) -> BaseNode:
        node = P.with_vectors(P.payload_to_node(found.payload), found.dense)
        if found.multivector is not None:
            attach_multivector(node, np.asarray(found.multivector, dtype=np.float32))
        return node

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

    def plan(self, query: VectorStoreQuery, **kwargs: Any) -> P.QueryPlan:
        """The request ``query`` would send the engine (branches, filter, fusion), without running it:
        the store's plan, to inspect or test. Takes the same per-query arguments as ``query``."""
        return self._plan(query, kwargs)

    def _plan(self, query: VectorStoreQuery, kwargs: Dict[str, Any]) -> P.QueryPlan:
        unknown = set(kwargs) - set(_QUERY_KWARGS)
        if unknown:
            raise TypeError(f"unexpected query arguments {sorted(unknown)}; valid: {list(_QUERY_KWARGS)}")
        weights = kwargs.get("rrf_weights", self.rrf_weights)
        check_weights(weights)
        query, late = late_stage(self._schema, query, kwargs.get("query_multivector"), self.prefetch_limit,
                                 self.oversampling)
        schema = self._schema
        learned = self._learned_for(schema)
        opts = P.QueryOptions(
            dense=self._searched_dense(),
            hybrid=self.hybrid,
            modality=kwargs.get("modality", self.modality),
            rrf_k=int(kwargs.get("rrf_k", self.rrf_k)),
            weights=weights,
            query_modality=kwargs.get("query_modality", "text"),
            search=self._search_settings(),
            late=late,
            with_multivector=self.return_multivectors and schema is not None and schema.late_interaction,
            bm25=schema is None or schema.sparse is not None,
            fusion=kwargs.get("fusion", self.fusion),
            mmr=kwargs.get("mmr_threshold"),
            mmr_candidates=kwargs.get("mmr_candidates", self.mmr_candidates),
            max_per_document=kwargs.get("max_per_document", self.max_per_document),
            document_key=kwargs.get("document_key", self.document_key),
        )
        return P.plan_query(query, opts, self.sparse_query_vector, learned.query if learned is not None else None)

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
        schema = self._schema
        quantization = schema.quantization if schema is not None else None
        settings = search_settings(quantization, self._hnsw_ef(), self.rescore, self.oversampling)
        if schema is not None and schema.exact_search and "hnsw_ef" not in self.model_fields_set:
            return P.SearchSettings(exact=True)  # what target_recall chose: no graph width reached it
        return settings

    @classmethod
    def _result(cls, hits: Sequence[Any]) -> VectorStoreQueryResult:
        nodes = [cls._node_of(h) for h in hits]
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

        Search quality, per query (the store fields of the same names are the defaults): ``fusion=``
        ("rrf" or "dbsf"); ``mmr_threshold=`` (MMR's lambda; the MMR mode alone uses 0.5) and
        ``mmr_candidates=``; ``max_per_document=`` and ``document_key=``. See docs/store.md, "Search quality".
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
        if self._live is not None:
            self._live.close()

    def __enter__(self) -> "MultimodalQdrantStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# The engine handle and what is read with it exist once the collection is open; an unpickled store
# opens it on the first read of any of them (after ``fast_private_attributes``, which made the others fast).
MultimodalQdrantStore._backend = property(  # type: ignore[attr-defined]
    lambda self: self._live if self._live is not None else self._connect(),
    doc="The open backend (opening an unpickled store's collection on first use).",
)
for _name in ("_schema", "_indexed", "_held_dense"):
    setattr(MultimodalQdrantStore, _name, connected_reader(_name))
