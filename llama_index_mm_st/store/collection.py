"""``Collection``: one Qdrant collection as the store uses it, with all of its state declared here.

``MultimodalQdrantStore`` (the LlamaIndex class) holds one and delegates to it; the store's pydantic
fields are this object's settings, read live and never written. What the collection owns, each with
one writer:

- ``backend``: the engine I/O (Edge or a Qdrant server), given at construction;
- ``schema``: the collection's layout, written only by ``_hold`` (on open, create and tuning);
- ``indexes``: its payload indexes (``indexes.PayloadIndexes``, the only writer of which keys have one);
- the learned sparse model's encoder, written only by ``learned_for``.

Which dense vectors hold points is the backend's to know (``Backend.dense_held``): an Edge folder is
shared by every store object of the process on it, so the answer lives with the open shard.

Every upsert goes through ``write`` and every delete through ``delete``: the one place a change of
the points passes (``add``, ``add_parts`` and ``import_points``; ``delete``, ``delete_nodes`` and ``clear``).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import replace
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Union

from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import (
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from qdrant_client import models
from tqdm.auto import tqdm

from llama_index_mm_st.errors import SchemaMismatchError
from llama_index_mm_st.ids import point_id
from llama_index_mm_st.inputs import NodeParts, read_node, storable
from llama_index_mm_st.multivector import node_multivector
from llama_index_mm_st.store import recall as R
from llama_index_mm_st.store.backends import Backend
from llama_index_mm_st.store.bm25 import SparseTextEncoder
from llama_index_mm_st.store.documents import StoredDocument, delete_filters, read_keys
from llama_index_mm_st.store.documents import group as group_documents
from llama_index_mm_st.store.fields import StoreFields
from llama_index_mm_st.store.filters import all_of, to_qdrant_filter
from llama_index_mm_st.store.indexes import PayloadIndexes
from llama_index_mm_st.store.late import late_stage
from llama_index_mm_st.store.learned_sparse import LearnedSparseEncoder, learned_encoder, with_learned_sparse
from llama_index_mm_st.store.payload import PointSpec, dense_vectors, node_of, node_to_point, parts_to_point
from llama_index_mm_st.store.plan import QueryOptions, QueryPlan, plan_query
from llama_index_mm_st.store.schema import (
    KEYWORD_INDEXED_KEYS, MODALITY_KEY, IndexKind, StoreSchema, check_schema, kind_mismatch,
)
from llama_index_mm_st.store.settings import check_weights, chosen_dense, known_dense
from llama_index_mm_st.store.calibration import CalibrationReport, LabeledQuery, fit_model
from llama_index_mm_st.store.statistics import statistics_of
from llama_index_mm_st.store.tuning import dense_search, hnsw_ef
from llama_index_mm_st.store.wanted import late_wanted, options_given, sparse_wanted, wanted_schema
from llama_index_mm_st.types import DENSE_VECTOR_NAMES, MODALITIES

QUERY_KWARGS = ("modality", "rrf_k", "rrf_weights", "query_modality", "query_multivector", "fusion", "mmr_threshold",
                "mmr_candidates", "max_per_document", "document_key", "min_relevance")
"""The per-query overrides ``query`` takes (the store fields of the same names are the defaults)."""
QueryItem = tuple[VectorStoreQuery, Dict[str, Any]]


def selection(node_ids: Optional[Sequence[str]], filters: Optional[MetadataFilters]) -> Optional[models.Filter]:
    """The one filter for "these ids and/or these metadata filters" (reads, deletes, ``get_nodes``);
    None: every point. An empty id list selects no point."""
    if node_ids is not None and not node_ids:
        return models.Filter(must=[models.HasIdCondition(has_id=[])])
    return all_of(
        [
            models.HasIdCondition(has_id=[point_id(i) for i in node_ids]) if node_ids else None,
            to_qdrant_filter(filters) if filters is not None and filters.filters else None,
        ]
    )


def check_min_relevance(value: Any) -> Optional[float]:
    """``min_relevance``: None, or a relevance in [0, 1]."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"min_relevance must be a relevance in [0, 1], got {value!r}")
    return float(value)


def above(hits: Sequence[Any], plan: QueryPlan, cut: Optional[float]) -> Sequence[Any]:
    """The hits at or above the relevance ``cut`` (None: all); only relevance-fused scores have a cut."""
    if cut is None:
        return hits
    if plan.relevance is None:
        raise ValueError("min_relevance cuts relevance scores: use fusion='relevance' (a dense or hybrid query); "
                         f"this query's scores are {plan.fusion if plan.fused else 'its own list'}'s")
    return [h for h in hits if h.score is not None and h.score >= cut]


def query_result(hits: Sequence[Any]) -> VectorStoreQueryResult:
    nodes = [node_of(h) for h in hits]
    return VectorStoreQueryResult(nodes=nodes, similarities=[float(h.score or 0.0) for h in hits],
                                  ids=[n.node_id for n in nodes])


class Collection:
    """A collection's state and every operation on it; ``MultimodalQdrantStore`` delegates here."""

    def __init__(self, settings: StoreFields, backend: Backend, bm25: SparseTextEncoder) -> None:
        self.settings = settings
        self.backend = backend
        self.bm25 = bm25
        self.indexes = PayloadIndexes(backend)
        self._schema: Optional[StoreSchema] = None
        self._learned: Optional[LearnedSparseEncoder] = None

    # ------------------------------------------------------------ schema and lifecycle

    def _schema_lock(self) -> threading.RLock:
        """Held while the collection is looked for, opened or made: one per collection in this process
        (``Backend.shared_state``), so two threads (a server's concurrent first writes) or two store
        objects never open an engine another is making (Edge refuses a second open of its WAL)."""
        return self.backend.shared_state.setdefault("collection_schema_lock", threading.RLock())

    def open(self) -> None:
        """Open the existing collection (checked against what the settings ask for), or make it now
        when ``dim`` is given; a new ``target_recall`` for a filled collection is measured at once."""
        settings = self.settings
        with self._schema_lock():
            existing = self.backend.existing_schema()
            if existing is None:
                if settings.dim is not None:
                    self._create(wanted_schema(settings, settings.dim, late=bool(settings.late_interaction)))
                return
            self._open_existing(existing)
        target = settings.target_recall
        if target is not None and existing.target_recall != target and self.backend.count(None):
            self.tune_hnsw_ef()  # a new target for a filled store: measure now, as optimize() would

    def _open_existing(self, existing: StoreSchema) -> None:
        # An existing store keeps the dense vectors it was made with (one made before audio and video
        # has only "text" and "image"); adding a node of a modality it lacks is refused.
        settings = self.settings
        wanted = wanted_schema(settings, settings.dim or existing.dim,
                               late=late_wanted(settings, existing.late_interaction))
        if settings.dense_vectors is None:  # left out: the collection's own (one made before audio has two)
            wanted = replace(wanted, dense=known_dense(existing.dense))
        wanted = replace(wanted, **sparse_wanted(settings, existing))
        check_schema(self.backend.where, existing, wanted, settings.dim is not None, options_given(settings))
        self.backend.open(existing)
        self._hold(existing, self.backend.indexed_fields())
        self.indexes.ensure(dict(settings.payload_indexes), settings.payload_hnsw)

    def _create(self, schema: StoreSchema) -> StoreSchema:
        """The one place a collection is made: by ``open`` (``dim`` given), the first ``add``,
        ``ensure`` and ``import_points``."""
        with self._schema_lock():
            self.backend.create(schema)
            statistics_of(self.backend).reset()
            self._hold(schema, {})
            wanted: Dict[str, IndexKind] = {key: "keyword" for key in KEYWORD_INDEXED_KEYS}
            wanted.update(self.settings.payload_indexes)
            self.indexes.ensure(wanted, self.settings.payload_hnsw)
        return schema

    def _hold(self, schema: StoreSchema, indexed: Optional[Mapping[str, IndexKind]] = None) -> None:
        """The one writer of the schema (and, when given, of what is indexed in the collection now)."""
        self._schema = schema
        if indexed is not None:
            self.indexes.reset(indexed)

    @property
    def schema(self) -> Optional[StoreSchema]:
        """The collection's schema; None before it exists. Another store object (or process, on a
        server) may make it after this one opened: it is looked for again while missing."""
        if self._schema is None:
            with self._schema_lock():
                existing = None if self._schema is not None else self.backend.existing_schema()
                if existing is not None:
                    self._open_existing(existing)
        return self._schema

    def ensure(self, dim: int, dense: Optional[Sequence[str]], late: bool) -> StoreSchema:
        """The collection, made now when missing; an existing one must have this ``dim`` and kind."""
        with self._schema_lock():
            schema = self.schema
            if schema is None:
                return self._create(wanted_schema(self.settings, dim, late=late, dense=chosen_dense(dense)))
        if schema.dim != dim or schema.late_interaction != late:
            problems = [f"dimension {schema.dim} != {dim}"] if schema.dim != dim else []
            if schema.late_interaction != late:
                problems.append(kind_mismatch(schema.late_interaction, late, "are wanted"))
            raise SchemaMismatchError(f"{self.backend.where} does not match: " + "; ".join(problems))
        return schema

    def learned_for(self, schema: Optional[StoreSchema]) -> Optional[LearnedSparseEncoder]:
        """The learned sparse model of a collection laid out as ``schema`` (loaded on first encode)."""
        self._learned = learned_encoder(schema, self._learned, self.settings.sparse_model_kwargs)
        return self._learned

    def close(self) -> None:
        try:
            statistics_of(self.backend).save()
        except OSError:  # DiskFullError included
            pass  # the record is a cache: a store opened without a current one reads the sample from its points
        finally:
            self.backend.close()

    def flush(self) -> None:
        """Make every write durable, the relevance statistics' record included."""
        statistics_of(self.backend).save()
        self.backend.flush()

    # ------------------------------------------------------------ writes and deletes

    def add(self, nodes: List[BaseNode], parts: Optional[List[NodeParts]], batch_size: int,
            show_progress: Optional[bool]) -> List[str]:
        """Check every node and turn it into a point, make the collection when it is missing, then write."""
        if not nodes:
            return []
        settings = self.settings
        schema = self.schema
        if schema is None:
            # Every node is checked against the schema it will be written under: the one this call is
            # about to create (its dense_vectors), before anything exists or is written.
            first = dense_vectors(parts[0] if parts else read_node(nodes[0]))
            dim = settings.dim or len(next(iter(first.values()), []))
            planned = wanted_schema(settings, dim, late=late_wanted(settings, node_multivector(nodes[0]) is not None))
        else:
            planned = schema
        points = self.plan_points(nodes, planned, parts)
        if schema is None:
            with self._schema_lock():  # another thread or store object may have made it meanwhile
                made = self.schema
                if made is None:
                    self._create(planned)
                elif made != planned:
                    points = self.plan_points(nodes, made, parts)
        if settings.auto_index:
            self.indexes.on_sight(nodes, settings.payload_hnsw)
        batches = -(-len(points) // batch_size)
        disable = (batches <= 1 or None) if show_progress is None else not show_progress
        with tqdm(total=len(points), desc="upsert", unit="point", disable=disable) as bar:
            self.write(points, batch_size, on_batch=bar.update)
        return [n.node_id for n in nodes]

    def plan_points(self, nodes: Sequence[BaseNode], schema: StoreSchema,
                    parts: Optional[Sequence[NodeParts]] = None) -> List[PointSpec]:
        """The points these nodes become under ``schema``, each checked (a bad node raises, naming it)."""
        encode = self.bm25.document if schema.sparse else None
        keys = self.settings.bm25_metadata_keys
        dim, names, late = schema.dim, schema.dense, schema.late_interaction
        if parts is not None:
            points = [parts_to_point(p, p.node, dim, encode, keys, names, late) for p in parts]
        else:
            points = [node_to_point(node, dim, encode, keys, names, late) for node in nodes]
        learned = self.learned_for(schema)
        if learned is None:
            return points
        readings = parts if parts is not None else [read_node(storable(node)) for node in nodes]
        return with_learned_sparse(points, readings, learned, keys)

    def write(self, points: Sequence[PointSpec], batch_size: int,
              on_batch: Optional[Callable[[int], None]] = None) -> None:
        """Every upsert of points goes through here (``add``, ``add_parts``, ``import_points``); the
        relevance statistics follow each batch written."""
        statistics = statistics_of(self.backend)
        names = self._schema.dense if self._schema is not None else DENSE_VECTOR_NAMES
        written = 0

        def after_batch(size: int) -> None:
            nonlocal written
            statistics.written(points[written:written + size], names)
            written += size
            if on_batch is not None:
                on_batch(size)

        self.backend.upsert(points, batch_size, after_batch)

    def delete(self, chosen: Optional[models.Filter]) -> None:
        """Every delete goes through here (``delete``, ``delete_nodes``; ``clear`` with None: every point)."""
        statistics_of(self.backend).before_delete(chosen, self._schema.dense if self._schema is not None else ())
        if chosen is None:
            self.backend.clear()
        else:
            self.backend.delete(chosen)

    # ------------------------------------------------------------ reads

    def get_nodes(self, node_ids: Optional[Sequence[str]], filters: Optional[MetadataFilters]) -> List[BaseNode]:
        if node_ids is not None and filters is None:
            hits = self.backend.retrieve([point_id(i) for i in node_ids], with_vectors=True)
            order = {point_id(i): n for n, i in enumerate(node_ids)}
            hits.sort(key=lambda h: order[h.id])
        else:
            hits = self.backend.scroll(selection(node_ids, filters), with_vectors=True)
        return [node_of(h) for h in hits]

    def payload_values(self, keys: Sequence[str], filters: Optional[MetadataFilters]) -> List[Dict[str, Any]]:
        return [dict(h.payload) for h in self.backend.scroll(selection(None, filters), payload=list(keys))]

    def documents(self, keys: Sequence[str], filters: Optional[MetadataFilters]) -> List[StoredDocument]:
        """The documents with a point matching ``filters``, from a read of a few payload keys per point."""
        return group_documents(self.payload_values(read_keys(keys), filters), keys)

    def delete_documents(self, document_ids: Sequence[str]) -> None:
        """Every point of these documents, one delete operation per batch of documents (each whole)."""
        for chosen in delete_filters(document_ids):
            self.delete(chosen)

    def sparse_vectors(self, node_ids: Sequence[str], vector: Optional[str]) -> List[tuple[List[int], List[float]]]:
        schema = self.schema
        names = schema.sparse_vectors if schema is not None else ()
        name = vector or (schema.learned_sparse or schema.sparse if schema is not None else None)
        if name is None or name not in names:
            raise ValueError(f"this store has no sparse vector {name!r}; it holds {list(names)}")
        found = self.backend.sparse_vectors([point_id(i) for i in node_ids], name)
        missing = [i for i in node_ids if point_id(i) not in found]
        if missing:
            raise ValueError(f"no node with id {missing[0]!r} in the store ({len(missing)} of those asked are missing)")
        return [found[point_id(i)] for i in node_ids]

    def update_metadata(self, values: Mapping[str, Any]) -> None:
        if self.schema is None:
            raise ValueError("the collection does not exist yet: add nodes, or open the store with dim=, first")
        self.backend.write_metadata({**self.backend.read_metadata(), **values})

    def count(self, filters: Optional[MetadataFilters]) -> int:
        return self.backend.count(selection(None, filters))

    def count_by_modality(self) -> Counter:
        return Counter({
            modality: self.backend.count(
                models.Filter(must=[models.FieldCondition(key=MODALITY_KEY, match=models.MatchValue(value=modality))])
            )
            for modality in MODALITIES
        })

    # ------------------------------------------------------------ queries

    def searched_dense(self, schema: Optional[StoreSchema]) -> tuple[str, ...]:
        """The dense vectors a query searches: the schema's, less those no point carries (Edge)."""
        return self.backend.dense_held(schema.dense if schema is not None else DENSE_VECTOR_NAMES)

    def plan(self, query: VectorStoreQuery, overrides: Mapping[str, Any]) -> QueryPlan:
        """The request ``query`` sends the engine, with the per-query ``overrides`` (``QUERY_KWARGS``)."""
        unknown = set(overrides) - set(QUERY_KWARGS)
        if unknown:
            raise TypeError(f"unexpected query arguments {sorted(unknown)}; valid: {list(QUERY_KWARGS)}")
        settings = self.settings
        weights = overrides.get("rrf_weights", settings.rrf_weights)
        check_weights(weights)
        schema = self.schema
        query, late = late_stage(schema, query, overrides.get("query_multivector"), settings.prefetch_limit,
                                 settings.oversampling)
        learned = self.learned_for(schema)
        # RRF weights given with no fusion named say which fusion is meant.
        fusion = overrides.get("fusion") or ("rrf" if overrides.get("rrf_weights") else settings.fusion)
        dense = self.searched_dense(schema)
        relevance: Dict[str, Any] = {}
        if fusion == "relevance" and query.query_embedding is not None and schema is not None \
                and not schema.late_interaction:
            statistics = statistics_of(self.backend)
            sampled = (*dense, *((schema.sparse,) if schema.sparse is not None else ()))
            relevance = {"backgrounds": statistics.backgrounds(sampled), "relevance_model": statistics.model()}
        opts = QueryOptions(
            dense=dense,
            hybrid=settings.hybrid,
            modality=overrides.get("modality", settings.modality),
            rrf_k=int(overrides.get("rrf_k", settings.rrf_k)),
            weights=weights,
            query_modality=overrides.get("query_modality", "text"),
            search=dense_search(settings, schema),
            late=late,
            with_multivector=settings.return_multivectors and schema is not None and schema.late_interaction,
            bm25=schema is None or schema.sparse is not None,
            fusion=fusion,
            mmr=overrides.get("mmr_threshold"),
            mmr_candidates=overrides.get("mmr_candidates", settings.mmr_candidates),
            max_per_document=overrides.get("max_per_document", settings.max_per_document),
            document_key=overrides.get("document_key", settings.document_key),
            **relevance,
        )
        return plan_query(query, opts, self.bm25.query, learned.query if learned is not None else None)

    def query(self, query: VectorStoreQuery, overrides: Mapping[str, Any]) -> VectorStoreQueryResult:
        plan = self.plan(query, overrides)
        return query_result(above(self.backend.query(plan), plan, self._min_relevance(overrides)))

    def _min_relevance(self, overrides: Mapping[str, Any]) -> Optional[float]:
        return check_min_relevance(overrides.get("min_relevance", self.settings.min_relevance))

    def query_batch(self, items: Sequence[QueryItem]) -> List[Union[VectorStoreQueryResult, BaseException]]:
        """Several queries as one engine batch; a bad query gets its own error, the rest run."""
        planned: List[Union[QueryPlan, BaseException]] = []
        for query, overrides in items:
            try:
                planned.append(self.plan(query, overrides))
            except (TypeError, ValueError) as exc:
                planned.append(exc)
        found = iter(self.backend.query_batch([p for p in planned if isinstance(p, QueryPlan)]))
        out: List[Union[VectorStoreQueryResult, BaseException]] = []
        for plan, (_, overrides) in zip(planned, items):
            if isinstance(plan, BaseException):
                out.append(plan)
                continue
            hits = next(found)
            if isinstance(hits, BaseException):
                out.append(hits)
                continue
            try:
                out.append(query_result(above(hits, plan, self._min_relevance(overrides))))
            except ValueError as exc:
                out.append(exc)
        return out

    def calibrate(self, queries: Sequence[LabeledQuery], depth: int, model: Optional[str]) -> CalibrationReport:
        """Fit the relevance model to labelled queries (``store.calibrate``) and keep it with the collection."""
        schema = self.schema
        if schema is None:
            raise ValueError("the collection does not exist yet: add nodes first")
        if not queries:
            raise ValueError("calibrate needs labelled queries")
        statistics = statistics_of(self.backend)
        base = replace(statistics.model(), fitted={}, model=model)
        samples: Dict[str, List[tuple[float, float, bool]]] = {}
        for query in queries:
            mode = VectorStoreQueryMode.HYBRID if query.text else VectorStoreQueryMode.DEFAULT
            vsq = VectorStoreQuery(query_embedding=list(query.embedding), query_str=query.text, mode=mode,
                                   similarity_top_k=depth)
            planned = self.plan(vsq, {"fusion": "relevance", "query_modality": query.query_modality})
            stage = planned.relevance
            if stage is None:
                continue
            stage = replace(stage, model=base)  # sampled by the prior
            relevant = {point_id(i) for i in query.relevant}
            for found in self.backend.query(replace(planned, relevance=stage)):
                detail = found.detail
                if detail is None or detail.vector is None or detail.z is None:
                    continue  # found by its words alone: the vectors' maps are fitted on vector evidence
                background = stage.backgrounds.get(detail.vector)
                if background is None:
                    continue
                label = found.id in relevant or (query.matches is not None and bool(query.matches(node_of(found))))
                logit = float(base.prior.logit(detail.z, background.count))
                samples.setdefault(detail.vector, []).append((logit, detail.words, label))
        report = fit_model(samples, base, len(queries))
        statistics.set_model(report.model)
        return report

    # ------------------------------------------------------------ moving points, durability, tuning

    def export_points(self, batch_size: int) -> Iterator[List[PointSpec]]:
        yield from self.backend.export(batch_size)

    def import_points(self, batches: Iterable[Sequence[PointSpec]], schema: StoreSchema,
                      indexes: Optional[Mapping[str, IndexKind]]) -> int:
        """Points exported from a collection laid out as ``schema``, written as they are."""
        with self._schema_lock():
            existing = self.schema
            if existing is None:  # a new graph: the source's tuned search width does not carry over
                base = replace(schema, wal=self.settings.wal, hnsw_ef=None, target_recall=None)
                self._create(wanted_schema(self.settings, schema.dim, base=base, late=schema.late_interaction))
        if existing is not None:
            check_schema(self.backend.where, existing, schema, dim_given=True, options_given=())
        self.indexes.ensure(dict(indexes or {}), self.settings.payload_hnsw)
        written = 0
        for points in batches:
            self.write(list(points), self.settings.batch_size)
            written += len(points)
        return written

    def copy_to(self, target: "Collection") -> int:
        schema = self.schema
        if schema is None:
            return 0
        copied = target.import_points(self.export_points(self.settings.batch_size), schema, self.indexes.kinds)
        metadata = self.backend.read_metadata()
        if metadata:  # last: a copy that stopped early is not yet labelled as built by our model
            target.update_metadata(metadata)
        return copied

    def optimize(self) -> None:
        self.backend.optimize()
        if self.settings.target_recall is not None and self.schema is not None and self.backend.count(None):
            self.tune_hnsw_ef()

    def recall_report(self, sample: int, top_k: int, queries: R.ProbeQueries, width: Optional[int]) -> R.RecallReport:
        schema = self.schema
        ef = width if width is not None else hnsw_ef(self.settings, schema)
        return R.estimate(self.backend, self.searched_dense(schema), dense_search(self.settings, schema), ef,
                          sample, top_k, queries)

    def tune_hnsw_ef(self, target: Optional[float] = None, sample: int = R.DEFAULT_SAMPLE,
                     top_k: int = R.DEFAULT_TOP_K) -> int:
        """Measure the narrowest width reaching ``target`` (default: ``target_recall``), record it, use it."""
        target = target if target is not None else self.settings.target_recall
        schema = self.schema
        if schema is None:
            raise ValueError("the collection does not exist yet: add nodes first")
        tuned = R.tune(self.backend, self.searched_dense(schema), dense_search(self.settings, schema), target,
                       sample, top_k)
        schema = replace(schema, hnsw_ef=tuned.hnsw_ef, target_recall=target, exact_search=tuned.exact)
        self.backend.record_schema(schema)
        self._hold(schema)
        return tuned.hnsw_ef
