"""``Writes``: adding nodes (checked, all or nothing, in batches) and deleting them.

A mixin of ``MultimodalQdrantStore``: a plain class without fields or annotations (pydantic would
take those for fields). ``add`` plans every point before it writes one (``plan.node_to_point``), so
a bad node leaves the store as it was; the collection is made on the first add when it is missing.
"""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Optional, Sequence

from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import MetadataFilters
from qdrant_client import models
from tqdm.auto import tqdm

from llama_index_mm_st.inputs import NodeParts, read_node, storable
from llama_index_mm_st.multivector import node_multivector
from llama_index_mm_st.store import plan as P
from llama_index_mm_st.store.learned_sparse import with_learned_sparse
from llama_index_mm_st.store.schema import REF_DOC_ID_KEY, StoreSchema
from llama_index_mm_st.text_vectors import reembed_text_embedded


class Writes:
    """Upserts (``add``, ``add_parts``, ``plan_points``, the points they write) and deletes."""

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> List[str]:
        """Upsert nodes in batches; the same node id again replaces its point.

        All or nothing per call: every node is checked and turned into a point (vectors finite and of
        the store's size, metadata that a payload can hold) before the first point is written, so a
        bad node leaves the store exactly as it was and the error names it.

        A node with pixels (or media) whose ``embedding`` our embedding made from its text (LlamaIndex's
        ``VectorStoreIndex`` embeds every node's text) is embedded properly first, by that embedding
        (``text_vectors``), so an image is stored with its image vector.
        """
        return self._add(reembed_text_embedded(nodes), None, add_kwargs)

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
