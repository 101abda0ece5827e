"""``MultimodalQdrantStore``: text and image nodes in one Qdrant collection, fused by RRF in the engine.

The LlamaIndex face of the store: its settings (pydantic fields, ``fields.py``), constructor checks,
pickling, and the public methods with their async twins. Each method delegates to the store's one
``Collection`` (``collection.py``), which owns the collection's state: the backend, the schema, the
payload indexes, creating, writing, deleting, reading, querying, moving points and tuning.
Planning is pure (``payload.py`` for points, ``plan.py`` for queries); Qdrant I/O is ``backends/``.
Each async method runs its sync twin in a thread, except ``aquery``, which batches.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Union

from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import MetadataFilters, VectorStoreQuery, VectorStoreQueryResult
from qdrant_client import QdrantClient, models

from llama_index_mm_st.concurrency import DynamicBatcher
from llama_index_mm_st.docs import document_parameters
from llama_index_mm_st.errors import refuse_unknown
from llama_index_mm_st.fast_private import fast_private_attributes
from llama_index_mm_st.inputs import NodeParts, read_node
from llama_index_mm_st.store import recall as R
from llama_index_mm_st.store.backends import Backend
from llama_index_mm_st.store.backends.choose import API_KEY_ENV, open_backend  # noqa: F401 - API_KEY_ENV kept importable here
from llama_index_mm_st.store.bm25 import QdrantBm25
from llama_index_mm_st.store.collection import Collection, QueryItem, selection
from llama_index_mm_st.store.documents import StoredDocument
from llama_index_mm_st.store.fields import StoreFields
from llama_index_mm_st.store.payload import PointSpec
from llama_index_mm_st.store.plan import QueryPlan
from llama_index_mm_st.store.reopen import _DEFER_OPEN, ReopenArgs, reopened
from llama_index_mm_st.store.schema import REF_DOC_ID_KEY, RESERVED_PAYLOAD_KEYS, IndexKind, StoreSchema
from llama_index_mm_st.store.settings import check_weights, chosen_dense
from llama_index_mm_st.text_vectors import reembed_text_embedded
from llama_index_mm_st.types import Modality, SparseVector

_CLUSTER_FIELDS = ("shard_number", "replication_factor", "write_consistency_factor")


@document_parameters(api_key="Qdrant server API key (default: QDRANT_API_KEY); never logged.", client="A ready QdrantClient to use instead of path/url.", client_kwargs="Passed to QdrantClient when url is given.")
@fast_private_attributes
class MultimodalQdrantStore(StoreFields):
    """Text and image nodes in one Qdrant collection: dense "text" and "image" vectors plus BM25.

    A query searches each named dense vector (and BM25 in hybrid) as its own ranked list and Qdrant
    fuses them with RRF, so images are not buried under texts by the modality gap. Embedded by
    default (Qdrant Edge at ``path``, or a temporary directory); ``url=``/``client=`` use a Qdrant
    server. ``ImageNode.embedding`` is stored as the image vector, ``ImageNode.text_embedding`` as
    the text vector.
    """

    _live: Optional[Collection] = PrivateAttr(default=None)
    """The open collection; None until it is opened (an unpickled store opens it on first use)."""
    _reopen: Optional[ReopenArgs] = PrivateAttr(default=None)
    """What pickling sends: how to open this store again (None: it can't be reopened elsewhere)."""
    _batcher: DynamicBatcher = PrivateAttr()
    _bm25: QdrantBm25 = PrivateAttr()

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
        self._batcher = DynamicBatcher(self._query_batch, max_batch_size=self.query_batch_size)
        self._reopen = None if client is not None or self.path is None and url is None else ReopenArgs(
            collection_name, self.path, url, api_key, dict(client_kwargs or {}), dict(fields))
        if _DEFER_OPEN.get():
            return  # unpickled: opened on first use (``_collection``), so a copy costs nothing until then
        self._connect(open_backend(collection_name, self.path, url, api_key, client, client_kwargs,
                                   self._cluster(), self.wal))

    def _cluster(self) -> Dict[str, Optional[int]]:
        return {name: getattr(self, name) for name in _CLUSTER_FIELDS}

    def _connect(self, backend: Optional[Backend] = None) -> Collection:
        """Open the collection (or the unpickled store's, on first use) and check its schema; any
        failure (a mismatch, a full disk, an engine error) releases an Edge store's lock at once."""
        if backend is None:
            args = self._reopen
            if args is None:  # only an unpickled store opens late, and it has how to reopen
                raise RuntimeError("this store has no collection open and no way to open one")
            backend = open_backend(args.collection_name, args.path, args.url, args.api_key, None,
                                   args.client_kwargs or None, self._cluster(), self.wal)
        collection = Collection(self, backend, self._bm25)
        try:
            collection.open()
        except BaseException:  # re-raised as it is: this object will not hold the store
            backend.close()
            raise
        self._live = collection
        return collection

    @property
    def _collection(self) -> Collection:
        """The open collection, opening an unpickled store's on first use."""
        live = self._live
        return live if live is not None else self._connect()

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle how to open the store, never its engine: the copy opens the same collection on first
        use (in this process it shares an Edge store's open shard; in another, the lock must be free by
        then). A temporary Edge store or one given a client object can't be reopened, and says so."""
        if self._reopen is None:
            live = self._live
            given_client = self.url is None and self.path is None and live is not None \
                and live.backend.local_path is None
            raise TypeError(
                "this MultimodalQdrantStore can't be pickled: "
                + ("it was given a client object; pass url= (and api_key=) instead so a copy can reconnect"
                   if given_client else "its data lives in a temporary directory that ends with it; give path= to keep it")
            )
        return reopened, (type(self), self._reopen)

    @classmethod
    def class_name(cls) -> str:
        return "MultimodalQdrantStore"

    @property
    def local_path(self) -> Optional[str]:
        """The directory of an embedded (Edge) collection, a temporary one when ``path`` was None;
        None for a collection on a Qdrant server."""
        return self._collection.backend.local_path

    @property
    def unfinished(self) -> Optional[str]:
        """Why this store is not a whole store yet, or None: its creation was interrupted (a kill or a
        crash between its steps). Such a store holds no points, opens as one without a collection, and
        the next write that creates the collection (``add``, ``copy_to``, ``dim=``) finishes it."""
        return self._collection.backend.unfinished

    @property
    def client(self) -> Any:
        """The engine object: a ``qdrant_edge.EdgeShard`` or a ``QdrantClient``."""
        return self._collection.backend.raw

    @property
    def schema(self) -> Optional[StoreSchema]:  # type: ignore[override]  # over pydantic's deprecated schema()
        """The collection's schema, storage options included; None before the collection exists."""
        return self._collection.schema

    @property
    def indexed_keys(self) -> Dict[str, IndexKind]:
        """Payload keys with an index, and its kind (the store's own keys included)."""
        return self._collection.indexes.kinds

    def ensure_collection(self, dim: int, *, dense_vectors: Optional[Sequence[str]] = None,
                          late_interaction: bool = False) -> StoreSchema:
        """The collection, made now when it does not exist yet: ``dim``-sized vectors, a dense vector
        for each of ``dense_vectors`` (None: the store's ``dense_vectors`` setting) and multivectors when
        ``late_interaction``. An existing collection keeps the vectors it has, but its dimension and
        kind must match (``SchemaMismatchError`` otherwise): what a runner calls once its model is known."""
        return self._collection.ensure(dim, dense_vectors, late_interaction)

    # ------------------------------------------------------------ writes

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> List[str]:
        """Upsert nodes in batches; the same node id again replaces its point.

        All or nothing per call: every node is checked and turned into a point (vectors finite and of
        the store's size, metadata that a payload can hold) before the first point is written, so a
        bad node leaves the store exactly as it was and the error names it. The collection is made on
        the first add when it is missing.

        A node with pixels (or media) whose ``embedding`` our embedding made from its words (LlamaIndex's
        ``VectorStoreIndex`` embeds every node's text) is embedded properly first, by that embedding
        (``text_vectors``), so an image is stored with its image vector.
        """
        return self._add(reembed_text_embedded(nodes), None, add_kwargs)

    def add_parts(self, parts: Sequence[NodeParts], **add_kwargs: Any) -> List[str]:
        """``add`` for nodes already read (``inputs.read_node`` of each node in its stored form,
        ``inputs.storable``): the ingestion job reads a node once and hands the reading on."""
        return self._add([p.node for p in parts], list(parts), add_kwargs)

    def _add(self, nodes: List[BaseNode], parts: Optional[List[NodeParts]], add_kwargs: Dict[str, Any]) -> List[str]:
        size = int(add_kwargs.get("batch_size", self.batch_size))
        return self._collection.add(nodes, parts, size, add_kwargs.get("show_progress", self.show_progress))

    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> List[str]:
        return await asyncio.to_thread(self.add, nodes, **kwargs)

    def plan_points(self, nodes: Sequence[BaseNode], schema: Optional[StoreSchema] = None,
                    parts: Optional[Sequence[NodeParts]] = None) -> List[PointSpec]:
        """The points ``add`` would write for these nodes (checked, as ``add`` checks them), without
        writing anything: the store's plan, to inspect. ``schema``: the collection's by default;
        ``parts``: the nodes' readings when the caller has them (``add_parts``)."""
        collection = self._collection
        schema = schema or collection.schema
        if schema is None:
            raise ValueError("the collection does not exist yet: pass the schema to plan against, or add nodes first")
        return collection.plan_points(nodes, schema, parts)

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of one source document."""
        self._collection.delete(models.Filter(must=[models.FieldCondition(
            key=REF_DOC_ID_KEY, match=models.MatchValue(value=ref_doc_id))]))

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        await asyncio.to_thread(self.delete, ref_doc_id, **delete_kwargs)

    def delete_nodes(
        self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None, **delete_kwargs: Any
    ) -> None:
        """Delete nodes by id and/or filter (both given: nodes matching both)."""
        if node_ids is None and filters is None:
            raise ValueError("delete_nodes needs node_ids or filters; use clear() to delete everything")
        chosen = selection(node_ids, filters)
        if chosen is not None:  # None: filters without conditions select nothing to delete here
            self._collection.delete(chosen)

    async def adelete_nodes(
        self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None, **delete_kwargs: Any
    ) -> None:
        await asyncio.to_thread(self.delete_nodes, node_ids, filters, **delete_kwargs)

    def clear(self) -> None:
        """Delete every point; the collection and its schema stay."""
        self._collection.delete(None)

    async def aclear(self) -> None:
        await asyncio.to_thread(self.clear)

    # ------------------------------------------------------------ reads

    def get_nodes(self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None) -> List[BaseNode]:
        """Nodes by id (in the order asked) and/or filter; all nodes when neither is given. Each node
        comes back with its stored vectors (``embedding``, and an image node's ``text_embedding``; a
        late-interaction node its multivector), so ``other_store.add(store.get_nodes())`` copies them.
        The engine stores cosine vectors unit-length: a vector added unnormalised comes back normalised."""
        return self._collection.get_nodes(node_ids, filters)

    async def aget_nodes(
        self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None
    ) -> List[BaseNode]:
        return await asyncio.to_thread(self.get_nodes, node_ids, filters)

    def documents(self, keys: Sequence[str] = (), filters: Optional[MetadataFilters] = None) -> List[StoredDocument]:
        """Every document (points grouped by ``ref_doc_id``) with a point matching ``filters`` (all when None),
        sorted by id: its point count by modality tag and the payload ``keys`` asked for. Reads only those
        payload keys: no node is rebuilt, no vector read."""
        return self._collection.documents(keys, filters)

    async def adocuments(self, keys: Sequence[str] = (), filters: Optional[MetadataFilters] = None) -> List[StoredDocument]:
        return await asyncio.to_thread(self.documents, keys, filters)

    def delete_documents(self, document_ids: Sequence[str]) -> None:
        """Delete every point of these documents (``ref_doc_id``s). Each document goes whole or not at all:
        its points are deleted by one engine operation, which a kill either applied or did not."""
        self._collection.delete_documents(document_ids)

    async def adelete_documents(self, document_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.delete_documents, document_ids)

    def payload_values(self, keys: Sequence[str], filters: Optional[MetadataFilters] = None) -> List[Dict[str, Any]]:
        """The named payload keys of every point matching ``filters``, nothing else: no node is rebuilt
        and no vector read, so a resume check over a large store reads only what it needs."""
        return self._collection.payload_values(keys, filters)

    def sparse_vectors(self, node_ids: Sequence[str], vector: Optional[str] = None) -> List[tuple[List[int], List[float]]]:
        """The stored sparse vectors of these nodes, in the order asked, as ``(indices, values)`` pairs:
        the learned sparse model's by default (BM25's when there is none; ``vector="bm25"`` asks for it);
        ``([], [])`` for a node without words. For tests and debugging."""
        return self._collection.sparse_vectors(node_ids, vector)

    def sparse_query_vector(self, text: str) -> SparseVector:
        """The BM25 vector this store searches ``text`` with; no indices when it has no searchable
        words (only stop words or punctuation)."""
        return self._bm25.query(text)

    def modality_of(self, node: BaseNode) -> Modality:
        """The modality tag this store gives a node: "image" (pixels only), "text+image" (pixels and
        words) or "text"; the same rule the embedding and the reranker apply."""
        return read_node(node).modality

    def get_metadata(self) -> Dict[str, Any]:
        """Free-form metadata kept with the collection (e.g. which model built it); {} if none."""
        return self._collection.backend.read_metadata()

    def update_metadata(self, values: Dict[str, Any]) -> None:
        """Merge ``values`` into the collection's metadata (JSON values). The collection must exist:
        add nodes, or open the store with ``dim=``, first."""
        self._collection.update_metadata(values)

    def count(self, filters: Optional[MetadataFilters] = None) -> int:
        """Number of nodes, optionally only those matching ``filters``."""
        return self._collection.count(filters)

    async def acount(self, filters: Optional[MetadataFilters] = None) -> int:
        return await asyncio.to_thread(self.count, filters)

    def count_by_modality(self) -> Counter:
        """Number of nodes per modality tag (exact tags: "image" does not count "text+image" here)."""
        return self._collection.count_by_modality()

    # ------------------------------------------------------------ queries

    def plan(self, query: VectorStoreQuery, **kwargs: Any) -> QueryPlan:
        """The request ``query`` would send the engine (branches, filter, fusion), without running it:
        the store's plan, to inspect or test. Takes the same per-query arguments as ``query``."""
        return self._collection.plan(query, kwargs)

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
        return self._collection.query(query, kwargs)

    def _query_batch(self, items: Sequence[QueryItem]) -> List[Union[VectorStoreQueryResult, BaseException]]:
        return self._collection.query_batch(items)

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """``query`` for async callers: concurrent calls are coalesced into one engine batch
        (``EdgeShard.query_batch``, or ``query_batch_points`` on a server) while the previous batch runs."""
        return await self._batcher.submit((query, kwargs))

    # ------------------------------------------------------------ moving points, durability, tuning

    def export_points(self, batch_size: Optional[int] = None) -> Iterator[List[PointSpec]]:
        """Every point as stored (id, named dense vectors, BM25 vector, payload, multivector), in
        batches: what ``import_points`` of another store takes, with this store's ``schema``."""
        return self._collection.export_points(batch_size or self.batch_size)

    def import_points(self, batches: Iterable[Sequence[PointSpec]], schema: StoreSchema,
                      indexes: Optional[Dict[str, IndexKind]] = None) -> int:
        """Write points exported from a store whose schema is ``schema`` (``export_points``), as they
        are: nothing is embedded again. A new collection is made with ``schema``'s layout and storage
        options, except those this store was given (and its own WAL choice); an existing one must
        match it. ``indexes`` are payload indexes to make first. Returns the number of points written."""
        return self._collection.import_points(batches, schema, indexes)

    def copy_to(self, target: "MultimodalQdrantStore") -> int:
        """Copy every point, vectors and payload included, into another store: how an embedded store
        moves to a server without re-embedding. The collection's metadata (``get_metadata``: which
        model built it, for ``mmst``) comes along, merged over the target's. Returns the number of
        points copied."""
        return self._collection.copy_to(target._collection)

    async def acopy_to(self, target: "MultimodalQdrantStore") -> int:
        return await asyncio.to_thread(self.copy_to, target)

    def flush(self) -> None:
        """Make every write so far durable: the checkpoint of a bulk build with ``wal=False``
        (record "done" only after it returns). With the WAL (the default) writes are durable anyway."""
        self._collection.backend.flush()

    def optimize(self) -> None:
        """Build the HNSW and payload indexes now (Edge); call after a bulk load for full query speed.
        With ``target_recall`` set, the search width that reaches it is then measured and recorded."""
        self._collection.optimize()

    async def aoptimize(self) -> None:
        await asyncio.to_thread(self.optimize)

    def recall_report(self, sample: int = R.DEFAULT_SAMPLE, top_k: int = R.DEFAULT_TOP_K,
                      queries: R.ProbeQueries = None, hnsw_ef: Optional[int] = None) -> R.RecallReport:
        """recall@``top_k`` of this store's dense search against exact search, per dense vector: ``sample``
        stored points (each left out of its own results) or the caller's ``queries`` (vectors searched in
        every dense vector, or a dict naming the vector for each list), searched as queries are (graph
        width, quantization, oversampling, rescoring; ``hnsw_ef=`` another width) and exactly."""
        return self._collection.recall_report(sample, top_k, queries, hnsw_ef)

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
        return self._collection.tune_hnsw_ef(target, sample, top_k)

    # ------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Flush and release the store (for Edge: the lock, so another process can open it, once
        every store object of this process on the folder is closed)."""
        if self._live is not None:
            self._live.close()

    def __enter__(self) -> "MultimodalQdrantStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
