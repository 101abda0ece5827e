"""Relevance fusion's engine side: the ranked lists in one engine batch, fused on our side.

One batch holds every list's scores (no payloads): each dense branch ranks every point holding its
vector, each sparse branch ranks by words, and each sparse branch's candidates are rescored by every
dense vector, so a candidate found by its words alone still stands by its vectors
(``store/relevance.fuse``). Only the fused top hits are then read back with their payload.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from llama_index_mm_st.store.plan import SPARSE_BRANCHES, QueryPlan
from llama_index_mm_st.store.relevance import fuse

if TYPE_CHECKING:
    from llama_index_mm_st.store.backends.core import BackendCore, Hit


def relevance_hits(backend: "BackendCore", plan: QueryPlan) -> "list[Hit]":
    """The plan's hits, best first, each scored by its relevance (``Hit.detail``: the ``Scored`` record)."""
    from llama_index_mm_st.store.backends.core import Hit

    stage = plan.relevance
    if stage is None:
        raise ValueError("relevance_hits needs a plan fused by relevance")
    common = backend._engine_filter(plan.filter)
    dense = [b for b in plan.branches if b.using not in SPARSE_BRANCHES]
    sparse = [b for b in plan.branches if b.using in SPARSE_BRANCHES]
    requests: list[Any] = [backend._scores_request(b, common, b.limit) for b in (*dense, *sparse)]
    rescored: list[str] = []
    for branch in sparse:
        candidates = backend._prefetch(branch, common)
        for vector in dense:
            requests.append(backend._rescore_request(candidates, vector, branch.limit))
            rescored.append(vector.using)
    found = backend._run_batch(requests)
    # Engine ids are used as they come (a UUID object on Edge, text on a server): reading one as text
    # costs microseconds, and only the hits kept need it.
    dense_scores: dict[str, dict[Any, float]] = {b.using: {} for b in dense}
    sparse_scores: dict[str, dict[Any, float]] = {}
    for branch, records in zip((*dense, *sparse), found):
        scores = {r.id: float(r.score) for r in records}
        if branch.using in SPARSE_BRANCHES:
            sparse_scores[branch.using] = scores
        else:
            dense_scores[branch.using].update(scores)
    for using, records in zip(rescored, found[len(dense) + len(sparse):]):
        dense_scores[using].update((r.id, float(r.score)) for r in records)
    fused = fuse(stage.vector, dense_scores, sparse_scores, stage.backgrounds, stage.model, limit=plan.limit)
    if not fused:
        return []
    read = {h.id: h for h in backend.retrieve([str(s.id) for s in fused], with_vectors=bool(plan.with_dense))}
    out = []
    for scored in fused:
        point = read.get(str(scored.id))
        if point is None:  # deleted between the two reads
            continue
        out.append(Hit(point._record, scored.relevance, point.payload, point.multivector, point.dense, point.sparse,
                       detail=replace(scored, id=str(scored.id))))
    return out
