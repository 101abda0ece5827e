"""What both backends share: paging, query shapes, hit and point assembly, all-or-nothing writes.

A backend subclasses ``BackendCore`` and adapts engine types only (the way httpx keeps its logic in
one client and doubles just the I/O): how a filter, a point, a nearest-neighbour query and a fused
query look in its engine, and the calls that read a page or write a batch. Engine records of both
engines expose ``id``, ``score``, ``payload`` and ``vector``, so reading them back is shared too.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import replace
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence, Union

from qdrant_client import models

from llama_index_mm_st.store import diversity, grouping
from llama_index_mm_st.store.filters import all_of
from llama_index_mm_st.store.payload import READ_BACK_KEYS, PointSpec
from llama_index_mm_st.store.plan import SPARSE_BRANCHES, Branch, LateStage, QueryPlan, SearchSettings
from llama_index_mm_st.store.stages import MmrStage
from llama_index_mm_st.store.schema import LEARNED_SPARSE_NAME, MULTIVECTOR_NAME, REF_DOC_ID_KEY, SPARSE_VECTOR_NAME
from llama_index_mm_st.types import SparseVector

SCROLL_PAGE = 1024
"""Points per page when reading a whole selection back: large enough that paging costs little."""

ENGINE_REJECTIONS: tuple[type[BaseException], ...] = (TypeError, ValueError, OverflowError)
"""What an engine's point constructor raises for a value it cannot hold (pyo3 and pydantic alike)."""

QUERY_FAILURES: tuple[type[BaseException], ...] = (TypeError, ValueError, OverflowError, RuntimeError, OSError)
"""What building or running one query may raise (a filter the engine can't express, an engine error):
in a batch it becomes that query's result, so the error stays with its caller."""

BatchResult = Union[list["Hit"], BaseException]
PayloadSelection = Union[bool, Sequence[str]]
"""A read's payload: all of it (True), none (False), or only the keys listed."""


class Hit:
    """A point as read back: its id, score (None for plain reads) and payload.

    The id is read from the engine's record only when asked for: a query result is rebuilt from the
    payload alone, and the engine's UUID object plus its ``str`` cost about 9 µs a hit.
    ``multivector`` is the point's late-interaction multivector, when the request asked for it
    (``QueryPlan.with_multivector``); ``dense`` its named dense vectors and ``sparse`` its named sparse
    ones, when a read asked for vectors.
    """

    __slots__ = ("_record", "score", "payload", "multivector", "dense", "sparse")

    def __init__(self, record: Any, score: Optional[float], payload: Mapping[str, Any],
                 multivector: Optional[Any] = None, dense: Optional[Mapping[str, Any]] = None,
                 sparse: Optional[Mapping[str, Any]] = None) -> None:
        self._record = record
        self.score = score
        self.payload = payload
        self.multivector = multivector
        self.dense = dense or {}
        self.sparse = sparse or {}

    @property
    def id(self) -> str:
        return str(self._record.id)


def hit(record: Any) -> Hit:
    vectors = getattr(record, "vector", None)
    if not isinstance(vectors, dict):
        return Hit(record, getattr(record, "score", None), record.payload or {})
    dense = {name: v for name, v in vectors.items() if name != MULTIVECTOR_NAME and name not in SPARSE_BRANCHES}
    sparse = {name: _sparse(vectors[name]) for name in SPARSE_BRANCHES if vectors.get(name) is not None}
    return Hit(record, getattr(record, "score", None), record.payload or {}, vectors.get(MULTIVECTOR_NAME), dense,
               sparse)


def _sparse(vector: Any) -> SparseVector:
    return SparseVector(list(vector.indices), list(vector.values))


def point_spec(record: Any) -> PointSpec:
    """A record read with its vectors, as a spec another backend can write."""
    vectors = dict(record.vector or {})
    sparse = vectors.pop(SPARSE_VECTOR_NAME, None)
    learned = vectors.pop(LEARNED_SPARSE_NAME, None)
    multivector = vectors.pop(MULTIVECTOR_NAME, None)
    return PointSpec(str(record.id), vectors, None if sparse is None else _sparse(sparse), record.payload or {},
                     multivector=multivector, learned_sparse=None if learned is None else _sparse(learned))


def payload_keys(plan: QueryPlan) -> list[str]:
    """The payload a query reads: what a node is rebuilt from, and what its group stage keys documents by."""
    keys = list(READ_BACK_KEYS)
    if plan.group is not None:
        keys += [REF_DOC_ID_KEY] + ([plan.group.key] if plan.group.key else [])
    return keys


def vector_names(plan: QueryPlan) -> Optional[list[str]]:
    """The vectors a query's hits come back with (None: none): dense ones our MMR compares, the multivector."""
    names = list(plan.with_dense) + ([MULTIVECTOR_NAME] if plan.with_multivector else [])
    return names or None


def own_stages(plan: QueryPlan) -> bool:
    """Whether the plan has a last stage the engine can't run (MMR over mixed vectors or with document
    caps, a document cap): ``BackendCore`` runs it over the engine's fused list."""
    return plan.group is not None or (plan.mmr is not None and plan.mmr.using is None)


class BackendCore(ABC):
    """The shared half of a backend. Subclasses implement the ``_engine_*`` adapters and the I/O."""

    searches_exactly = False
    """See ``Backend.searches_exactly``; qdrant-client's local mode sets it."""

    # ---------------------------------------------------------------- adapters: engine types

    @abstractmethod
    def _engine_filter(self, flt: Optional[models.Filter]) -> Any:
        """Our filter (a ``qdrant_client.models.Filter``) in the engine's type; None stays None."""

    @abstractmethod
    def _engine_point(self, point: PointSpec) -> Any:
        """One point in the engine's type; raises one of ``ENGINE_REJECTIONS`` for a value it can't hold."""

    @abstractmethod
    def _engine_search(self, search: SearchSettings) -> Any:
        """Dense search settings (graph width, quantization) in the engine's type."""

    def _params(self, branch: Branch) -> Any:
        """The engine's search parameters for one branch; None leaves the engine's defaults. Settings
        repeat from query to query, so each is translated once."""
        if branch.search is None:
            return None
        cache = self.__dict__.setdefault("_search_cache", {})
        if branch.search not in cache:
            cache[branch.search] = self._engine_search(branch.search)
        return cache[branch.search]

    # ---------------------------------------------------------------- adapters: I/O

    @property
    @abstractmethod
    def exists(self) -> bool:
        """Whether the collection exists (reads of a missing collection return nothing)."""

    @abstractmethod
    def _write(self, engine_points: list[Any]) -> None: ...

    @abstractmethod
    def _nearest_request(self, branch: Branch, engine_filter: Any, plan: QueryPlan) -> Any:
        """A request for the nearest ``plan.limit`` points by one named vector."""

    @abstractmethod
    def _prefetch(self, branch: Branch, engine_filter: Any) -> Any:
        """One branch as a prefetch: its ``limit`` nearest points by its vector, under the filter."""

    @abstractmethod
    def _fused_request(self, prefetches: Sequence[Any], plan: QueryPlan) -> Any:
        """A request over engine prefetches, fused by ``plan.fusion`` (RRF with ``plan.rrf_k``/``weights``, or DBSF)."""

    @abstractmethod
    def _fused_prefetch(self, prefetches: Sequence[Any], plan: QueryPlan, limit: int) -> Any:
        """The same fusion as a prefetch of ``limit`` hits (the candidates of a last stage)."""

    @abstractmethod
    def _mmr_request(self, candidates: Any, mmr: MmrStage, plan: QueryPlan) -> Any:
        """The engine's MMR (``mmr``, the plan's, over its one vector ``using``) of a fused prefetch, ``plan.limit`` hits."""

    @abstractmethod
    def _late_query(self, late: LateStage) -> tuple[Any, Any]:
        """The MaxSim query over the stored multivectors and its search parameters (None: the engine's)."""

    @abstractmethod
    def _late_request(self, prefetches: Sequence[Any], late: LateStage, plan: QueryPlan) -> Any:
        """A request that ranks the union of ``prefetches`` by MaxSim (``_late_query``), ``plan.limit`` hits."""

    @abstractmethod
    def _late_prefetch(self, prefetches: Sequence[Any], late: LateStage, limit: int) -> Any:
        """The same MaxSim ranking as a prefetch (one list of an RRF fusion)."""

    @abstractmethod
    def _run(self, request: Any) -> list[Any]:
        """Run one request; the engine's scored records."""

    @abstractmethod
    def _run_batch(self, requests: list[Any]) -> list[list[Any]]:
        """Run several requests in one engine call; one record list per request, in order."""

    @abstractmethod
    def retrieve(self, ids: Sequence[str], with_vectors: bool = False) -> list[Hit]:
        """The points with these ids (missing ones are left out), with their vectors when asked."""

    @abstractmethod
    def _page(self, engine_filter: Any, offset: Any, limit: int, with_vectors: bool,
              payload: PayloadSelection = True) -> tuple[list[Any], Any]:
        """One page of points and the offset of the next (None after the last); ``payload`` is True
        (all of it) or the keys to read."""

    # ---------------------------------------------------------------- shared logic

    def upsert(self, points: Sequence[PointSpec], batch_size: int,
               on_batch: Optional[Callable[[int], None]] = None) -> None:
        """Convert every point before writing the first, so a value the engine can't hold leaves the
        collection as it was; then write in batches (``on_batch`` is told each batch's size)."""
        engine_points = []
        for point in points:
            try:
                engine_points.append(self._engine_point(point))
            except ENGINE_REJECTIONS as exc:
                raise ValueError(f"node {point.node_id or point.id} cannot be stored: {exc}") from None
        for start in range(0, len(engine_points), batch_size):
            batch = engine_points[start : start + batch_size]
            self._write(batch)
            if on_batch is not None:
                on_batch(len(batch))

    def _request(self, plan: QueryPlan) -> Any:
        """The plan's filter is translated once; each branch adds only its own restriction."""
        common = self._engine_filter(plan.filter)
        filtered = [
            (branch, common if branch.restriction is None
             else self._engine_filter(all_of([plan.filter, branch.restriction])))
            for branch in plan.branches
        ]
        if plan.late is not None:
            return self._late_plan_request(filtered, plan.late, plan)
        mmr = plan.mmr
        if mmr is not None and mmr.using is not None:
            prefetches = [self._prefetch(branch, f) for branch, f in filtered]
            return self._mmr_request(self._fused_prefetch(prefetches, plan, mmr.candidates), mmr, plan)
        if plan.fused:
            return self._fused_request([self._prefetch(branch, f) for branch, f in filtered], plan)
        branch, engine_filter = filtered[0]
        return self._nearest_request(branch, engine_filter, plan)

    def _late_plan_request(self, filtered: Sequence[tuple[Branch, Any]], late: LateStage, plan: QueryPlan) -> Any:
        """Two-stage late interaction: pooled dense prefetches, exact MaxSim over their union; with
        BM25 that MaxSim list is one prefetch of the RRF fusion (its ``plan.limit`` best)."""
        dense = [self._prefetch(branch, f) for branch, f in filtered if branch.using not in SPARSE_BRANCHES]
        others = [self._prefetch(branch, f) for branch, f in filtered if branch.using in SPARSE_BRANCHES]
        if not others:
            return self._late_request(dense, late, plan)
        return self._fused_request([self._late_prefetch(dense, late, plan.limit), *others], plan)

    def query(self, plan: QueryPlan) -> list[Hit]:
        if not self.exists or not plan.branches:
            return []
        if own_stages(plan):
            return self._staged(plan)
        return self._hits(plan)

    def _hits(self, plan: QueryPlan) -> list[Hit]:
        return [hit(record) for record in self._run(self._request(plan))]

    def _staged(self, plan: QueryPlan) -> list[Hit]:
        """The last stages the engine can't run, over its fused list: our MMR (on the candidates it
        would choose from, read with their dense vectors), or the document cap (``grouping``)."""
        if plan.mmr is not None:
            candidates = self._hits(replace(plan, limit=plan.mmr.candidates))
            return diversity.mmr_hits(candidates, plan.mmr, plan.limit, plan.group, grouping.document_of)
        return grouping.grouped(plan, self._hits)

    def query_batch(self, plans: Sequence[QueryPlan]) -> list[BatchResult]:
        """Hits per plan, in order, from one engine call; a query that fails gets its exception as
        its result, and the others still get theirs."""
        results: list[BatchResult] = [[] for _ in plans]
        requests: list[Any] = []
        slots: list[int] = []
        for slot, plan in enumerate(plans):
            if not self.exists or not plan.branches:
                continue
            if own_stages(plan):  # several reads or our own last stage: run on its own, after the batch
                continue
            try:
                requests.append(self._request(plan))
                slots.append(slot)
            except QUERY_FAILURES as exc:
                results[slot] = exc
        if requests:
            try:
                records: list[Union[list[Any], BaseException]] = list(self._run_batch(requests))
            except QUERY_FAILURES:
                # The engine refuses a batch as a whole; rerun its queries one by one to find whose error it is.
                records = [self._run_alone(request) for request in requests]
            for slot, found in zip(slots, records):
                results[slot] = found if isinstance(found, BaseException) else [hit(record) for record in found]
        for slot, plan in enumerate(plans):
            if self.exists and plan.branches and own_stages(plan):
                try:
                    results[slot] = self._staged(plan)
                except QUERY_FAILURES as exc:
                    results[slot] = exc
        return results

    def _run_alone(self, request: Any) -> Union[list[Any], BaseException]:
        try:
            return self._run(request)
        except QUERY_FAILURES as exc:
            return exc

    def _pages(self, flt: Optional[models.Filter], limit: int, with_vectors: bool,
               payload: PayloadSelection = True) -> Iterator[list[Any]]:
        if not self.exists:
            return
        engine_filter, offset = self._engine_filter(flt), None
        while True:
            records, offset = self._page(engine_filter, offset, limit, with_vectors, payload)
            yield records
            if offset is None:
                return

    def scroll(self, flt: Optional[models.Filter], with_vectors: bool = False,
               payload: PayloadSelection = True) -> list[Hit]:
        """Every point matching the filter (all points for None), with its vectors when asked, and
        only the payload keys named when ``payload`` lists them."""
        return [hit(record) for page in self._pages(flt, SCROLL_PAGE, with_vectors, payload) for record in page]

    def dense_held(self, names: Sequence[str]) -> tuple[str, ...]:
        """See ``Backend.dense_held``: all of them, unless the backend knows every writer (Edge)."""
        return tuple(names)

    def sparse_vectors(self, ids: Sequence[str], name: str) -> dict[str, tuple[list[int], list[float]]]:
        """The named sparse vector of each point found among ``ids``, as ``(indices, values)``
        (empty lists for a point without one)."""
        out = {}
        for point in self.retrieve(ids, with_vectors=True):
            vector = point.sparse.get(name)
            out[point.id] = ([], []) if vector is None else ([int(i) for i in vector.indices],
                                                             [float(v) for v in vector.values])
        return out

    def export(self, batch_size: int) -> Iterator[list[PointSpec]]:
        """Every point with its vectors, in batches: what another backend needs to hold a copy."""
        for page in self._pages(None, batch_size, True):
            yield [point_spec(record) for record in page]
