"""Relevance fusion's engine side: the ranked lists in one engine batch, fused on our side.

One batch holds every list's scores, without payloads: each dense branch ranks every point holding
its vector, each sparse branch ranks by words. A candidate found by its words alone still stands by
its vectors (``store/relevance.fuse``): a second batch scores those few by each dense vector (a search
among their ids only). Only the fused top hits are then read back with their payload.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import uuid
from dataclasses import replace

from qdrant_client import models

from llama_index_mm_st.store.plan import SPARSE_BRANCHES, QueryPlan
from llama_index_mm_st.store.relevance import Scored, fuse

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
    # Ids as the engine gives them (a UUID object on Edge, text on a server): text costs microseconds a hit,
    # so only the hits kept are turned into it. Ties are broken by id, which orders alike either way
    # (canonical UUID text sorts as the number does).
    dense_scores: dict[str, dict[Any, float]] = {b.using: {} for b in dense}
    sparse_scores: dict[str, dict[Any, float]] = {}
    for branch, records in zip((*dense, *sparse), found):
        scores = {_key(r.id): float(r.score) for r in records}
        if branch.using in SPARSE_BRANCHES:
            sparse_scores[branch.using] = scores
        else:
            dense_scores[branch.using].update(scores)
    seen = {i for scores in dense_scores.values() for i in scores}
    words_only = sorted({i for scores in sparse_scores.values() for i in scores} - seen)
    if words_only and dense:  # their cosines, by the engine, among those few points only
        only = backend._engine_filter(models.Filter(must=[models.HasIdCondition(has_id=[_text(i) for i in words_only])]))
        rescored = backend._run_all([backend._scores_request(b, only, len(words_only)) for b in dense])
        for branch, records in zip(dense, rescored):
            dense_scores[branch.using].update((_key(r.id), float(r.score)) for r in records)
    fused = fuse(stage.vector, dense_scores, sparse_scores, stage.backgrounds, stage.model, limit=plan.limit,
                 full=stage.full)
    return _read_back(backend, fused, bool(plan.with_dense), Hit)


def _key(point_id: Any) -> Any:
    """An engine's point id as a cheap key: a UUID object's number (hashing and comparing a UUID object
    runs Python code), text as it is. Numbers and canonical UUID text order alike."""
    return getattr(point_id, "int", point_id)


def _text(key: Any) -> str:
    return str(uuid.UUID(int=key)) if isinstance(key, int) else str(key)


def _read_back(backend: "BackendCore", fused: "list[Scored]", with_vectors: bool, hit_type: Any) -> "list[Hit]":
    """The fused hits with their payloads (and vectors, for our MMR), in fused order."""
    if not fused:
        return []
    ids = [_text(s.id) for s in fused]
    read = {h.id: h for h in backend.retrieve(ids, with_vectors=with_vectors)}
    out = []
    for point_id, scored in zip(ids, fused):
        point = read.get(point_id)
        if point is not None:  # None: deleted between the two reads
            out.append(hit_type(point._record, scored.relevance, point.payload, point.multivector, point.dense,
                                point.sparse, detail=replace(scored, id=point_id)))
    return out
