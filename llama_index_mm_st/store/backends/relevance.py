"""Relevance fusion's engine side: the ranked lists in one engine batch, fused on our side.

One batch holds every list's scores, without payloads: each dense branch ranks every point holding
its vector, each sparse branch ranks by words. A candidate found by its words alone still stands by
its vectors (``store/relevance.fuse``): those few are read with their vectors and their cosines taken
here. Only the fused top hits are then read back with their payload.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from llama_index_mm_st.store.plan import SPARSE_BRANCHES, QueryPlan
from llama_index_mm_st.store.relevance import Scored, fuse, unit

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
    found = backend._run_all([backend._scores_request(b, common, b.limit) for b in (*dense, *sparse)])
    # Ids as text (the engines give a UUID object or text): the same key whichever engine, and ties
    # broken by it order alike (canonical UUID text sorts as the number does).
    dense_scores: dict[str, dict[str, float]] = {b.using: {} for b in dense}
    sparse_scores: dict[str, dict[str, float]] = {}
    for branch, records in zip((*dense, *sparse), found):
        scores = {str(r.id): float(r.score) for r in records}
        if branch.using in SPARSE_BRANCHES:
            sparse_scores[branch.using] = scores
        else:
            dense_scores[branch.using].update(scores)
    seen = {i for scores in dense_scores.values() for i in scores}
    words_only = sorted({i for scores in sparse_scores.values() for i in scores} - seen)
    if words_only and dense:
        query = unit(np.asarray(stage.vector, dtype=np.float64))
        for point in backend.retrieve(words_only, with_vectors=True):
            for name, vector in point.dense.items():
                if name in dense_scores:
                    dense_scores[name][point.id] = float(unit(np.asarray(vector, dtype=np.float64)) @ query)
    fused = fuse(stage.vector, dense_scores, sparse_scores, stage.backgrounds, stage.model, limit=plan.limit,
                 full=stage.full)
    return _read_back(backend, fused, bool(plan.with_dense), Hit)


def _read_back(backend: "BackendCore", fused: "list[Scored]", with_vectors: bool, hit_type: Any) -> "list[Hit]":
    """The fused hits with their payloads (and vectors, for our MMR), in fused order."""
    if not fused:
        return []
    read = {h.id: h for h in backend.retrieve([s.id for s in fused], with_vectors=with_vectors)}
    out = []
    for scored in fused:
        point = read.get(scored.id)
        if point is not None:  # None: deleted between the two reads
            out.append(hit_type(point._record, scored.relevance, point.payload, point.multivector, point.dense,
                                point.sparse, detail=scored))
    return out
