"""``MultimodalQdrantStore``: text and image nodes in one Qdrant collection, fused by RRF in the engine.

Thin on purpose: planning lives in ``plan.py`` and ``filters.py``, Qdrant I/O in ``backends/``.
This module is the core: opening the collection and its schema, pickling, ``get_nodes`` and queries.
The fields are declared in ``fields.py``; the other methods come from mixins of one concept each:
``writes.py`` (add, delete), ``reads.py`` (counts, payloads, metadata), ``documents.py`` (documents
listed and deleted whole), ``indexes.py`` (payload
indexes), ``moving.py`` (export, import, copy, optimize), ``tuning.py`` (recall and the search width).
Each async method runs its sync twin in a thread.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import (
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryResult,
)
from qdrant_client import QdrantClient, models

from llama_index_mm_st.concurrency import DynamicBatcher
from llama_index_mm_st.docs import document_parameters
from llama_index_mm_st.errors import SchemaMismatchError, refuse_unknown
from llama_index_mm_st.fast_private import fast_private_attributes
from llama_index_mm_st.multivector import attach_multivector
from llama_index_mm_st.store import plan as P
from llama_index_mm_st.store.backends import Backend
from llama_index_mm_st.store.backends.choose import API_KEY_ENV, open_backend  # noqa: F401 - API_KEY_ENV kept importable here
from llama_index_mm_st.store.bm25 import QdrantBm25
from llama_index_mm_st.store.documents import Documents
from llama_index_mm_st.store.fields import StoreFields
from llama_index_mm_st.store.indexes import PayloadIndexes
from llama_index_mm_st.store.late import late_stage
from llama_index_mm_st.store.learned_sparse import LearnedSparseEncoder, learned_encoder, sparse_layout
from llama_index_mm_st.store.moving import Moving
from llama_index_mm_st.store.reads import Reads
from llama_index_mm_st.store.reopen import _DEFER_OPEN, ReopenArgs, connected_reader, reopened
from llama_index_mm_st.store.schema import (
    KEYWORD_INDEXED_KEYS,
    MULTIVECTOR_NAME,
    RESERVED_PAYLOAD_KEYS,
    STORAGE_OPTIONS,
    StoreSchema,
    check_schema,
    kind_mismatch,
)
from llama_index_mm_st.store.settings import check_weights, chosen_dense, known_dense
from llama_index_mm_st.store.tuning import Tuning
from llama_index_mm_st.store.writes import Writes
from llama_index_mm_st.types import DENSE_VECTOR_NAMES

_QUERY_KWARGS = ("modality", "rrf_k", "rrf_weights", "query_modality", "query_multivector", "fusion", "mmr_threshold",
                 "mmr_candidates", "max_per_document", "document_key")
QueryItem = tuple[VectorStoreQuery, Dict[str, Any]]


@document_parameters(api_key="Qdrant server API key (default: QDRANT_API_KEY); never logged.", client="A ready QdrantClient to use instead of path/url.", client_kwargs="Passed to QdrantClient when url is given.")
@fast_private_attributes
class MultimodalQdrantStore(Writes, Reads, Documents, PayloadIndexes, Moving, Tuning, StoreFields):
    """Text and image nodes in one Qdrant collection: dense "text" and "image" vectors plus BM25.

    A query searches each named dense vector (and BM25 in hybrid) as its own ranked list and Qdrant
    fuses them with RRF, so images are not buried under texts by the modality gap. Embedded by
    default (Qdrant Edge at ``path``, or a temporary directory); ``url=``/``client=`` use a Qdrant
    server. ``ImageNode.embedding`` is stored as the image vector, ``ImageNode.text_embedding`` as
    the text vector.
    """

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

    # ------------------------------------------------------------ schema

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

    # ------------------------------------------------------------ reads and queries

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
