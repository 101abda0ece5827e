"""The one small interface both backends implement; only ``store/backends/`` does Qdrant I/O.

Requests arrive as plans (``plan.PointSpec``, ``plan.QueryPlan``) and filters as
``qdrant_client.models.Filter``. What both backends do alike (paging, query shapes, hits, all-or-nothing
writes) lives in ``core.BackendCore``; each backend only adapts engine types and does the I/O.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping, Optional, Protocol, Sequence

from qdrant_client import models

from llama_index_mm_st.store.backends.core import Hit, PayloadSelection
from llama_index_mm_st.store.payload import PointSpec
from llama_index_mm_st.store.plan import QueryPlan
from llama_index_mm_st.store.schema import IndexKind, StoreSchema


class Backend(Protocol):
    """A Qdrant collection, embedded (Edge) or remote (qdrant-client)."""

    @property
    def raw(self) -> Any:
        """The underlying engine object (``EdgeShard`` or ``QdrantClient``)."""

    @property
    def local_path(self) -> Optional[str]:
        """The collection's directory when it lives on this machine's disk (Edge), else None."""

    @property
    def searches_exactly(self) -> bool:
        """Whether every search compares every vector (qdrant-client's local mode): recall is 1 by construction."""

    @property
    def where(self) -> str:
        """A human-readable name of the collection, for error messages."""

    @property
    def unfinished(self) -> Optional[str]:
        """Why the collection is not whole yet (its creation was interrupted; it holds no points and
        the next ``create`` finishes it), or None."""

    def existing_schema(self) -> Optional[StoreSchema]:
        """The schema of the collection if it already exists, else None (also while ``unfinished``)."""

    def open(self, schema: StoreSchema) -> None:
        """Open the existing collection, once its schema has been checked."""

    def create(self, schema: StoreSchema) -> None:
        """Create the collection (the store then adds its payload indexes)."""

    def record_schema(self, schema: StoreSchema) -> None:
        """Rewrite the collection's schema record (what tuning measured: the search width)."""

    def read_metadata(self) -> dict[str, Any]:
        """The collection's user metadata ({} when it has none or does not exist yet)."""

    def write_metadata(self, metadata: Mapping[str, Any]) -> None:
        """Replace the collection's user metadata (the collection must exist)."""

    def indexed_fields(self) -> dict[str, IndexKind]:
        """Payload keys that already have an index, with its kind."""

    def create_index(self, key: str, kind: IndexKind, hnsw: bool) -> None:
        """A payload index; ``hnsw`` adds per-value graph links (faster very selective filters, slower optimize)."""

    def upsert(self, points: Sequence[PointSpec], batch_size: int,
               on_batch: Optional[Callable[[int], None]] = None) -> None:
        """Convert every point, then write them in batches (a point the engine refuses writes nothing)."""

    def query(self, plan: QueryPlan) -> list[Hit]: ...

    def query_batch(self, plans: Sequence[QueryPlan]) -> list[list[Hit] | BaseException]:
        """Hits per plan from one engine call; a failing query gets its exception, the others their hits."""

    def retrieve(self, ids: Sequence[str], with_vectors: bool = False) -> list[Hit]:
        """The points with these ids (missing ones are left out), with their vectors when asked."""

    def scroll(self, flt: Optional[models.Filter], with_vectors: bool = False,
               payload: PayloadSelection = True) -> list[Hit]:
        """Every point matching the filter (all points for None); ``payload``: all, or the keys listed."""

    def count(self, flt: Optional[models.Filter]) -> int: ...

    def dense_held(self, names: Sequence[str]) -> tuple[str, ...]:
        """The dense vectors among ``names`` a query must search: on Edge only those some point
        carries (every writer is in this process); a server collection may be written by others at
        any time, so all of them."""

    def sparse_vectors(self, ids: Sequence[str], name: str) -> dict[str, tuple[list[int], list[float]]]:
        """The named sparse vector of each point found among ``ids``, as ``(indices, values)``."""

    def export(self, batch_size: int) -> Iterator[list[PointSpec]]:
        """Every point with its vectors, in batches: what another backend needs to hold a copy."""

    def delete(self, flt: models.Filter) -> None: ...

    def clear(self) -> None: ...

    def optimize(self) -> None:
        """Build the HNSW and payload indexes now, so queries run at full speed."""

    def flush(self) -> None:
        """Make every write so far durable (what a checkpoint needs when the WAL is off)."""

    def close(self) -> None: ...
