"""``Moving``: points out of one store and into another as stored (nothing embedded again), and
making what was written durable and fast (``flush``, ``optimize``).

A mixin of ``MultimodalQdrantStore``: a plain class without fields or annotations (pydantic would
take those for fields). ``copy_to`` is how an embedded store moves to a server.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING, Dict, Iterable, Iterator, List, Optional, Sequence

from llama_index_mm_st.store import plan as P
from llama_index_mm_st.store.schema import IndexKind, StoreSchema, check_schema

if TYPE_CHECKING:
    from llama_index_mm_st.store.store import MultimodalQdrantStore


class Moving:
    """Export, import and copy of stored points; ``flush`` and ``optimize``."""

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

    async def aoptimize(self) -> None:
        await asyncio.to_thread(self.optimize)
