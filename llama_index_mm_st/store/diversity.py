"""Maximal marginal relevance on our side, exactly as Qdrant runs it, for what the engine can't run.

The engine's MMR compares one named vector, so it can't diversify a list of texts and images (each
carries a different vector), nor skip a document that already has its ``max_per_document`` hits.
Here each candidate stands by the vector the dense search ranked it by (``MmrStage.order``), in the
model's shared space. With no document cap the picks are Qdrant's: the most relevant first, then
each time the candidate maximising ``lambda * relevance - (1 - lambda) * max similarity to the
picked``, ties going to the last maximum of a list kept in Qdrant's swap-remove order; the scores
are each hit's cosine relevance to the query, as the engine returns them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Hashable, Optional, Sequence

import numpy as np

from llama_index_mm_st.store.stages import GroupStage, MmrStage


def _unit(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    return rows / np.where(norms == 0, 1.0, norms)


def _last_argmax(values: np.ndarray) -> int:
    """The position of the last maximum (Rust's ``max_by_key`` keeps the last of equal keys)."""
    return int(len(values) - 1 - np.argmax(values[::-1]))


def mmr_select(query: Sequence[float], vectors: np.ndarray, lambda_: float, limit: int,
               documents: Optional[Sequence[Hashable]] = None, per_document: Optional[int] = None) -> list[int]:
    """The positions of the candidates MMR picks, in pick order. ``documents``/``per_document``: a
    candidate whose document already has ``per_document`` picks is passed over."""
    if not len(vectors):
        return []
    q = _unit(np.asarray(query, dtype=np.float64))
    rows = _unit(np.asarray(vectors, dtype=np.float64))
    relevance = rows @ q
    # Similarities to each pick, one matrix-vector product at a time: a full candidates x candidates
    # product goes to multithreaded BLAS, whose threads waking beside the engine's cost 16 ms a query
    # (measured at 50 candidates after an Edge query; each product alone takes microseconds).
    pending = list(range(len(rows)))
    picked: list[int] = []
    closest = np.full(len(rows), -np.inf)  # each candidate's highest similarity to a pick so far
    taken: Counter = Counter()
    while pending and len(picked) < limit:
        if documents is not None and per_document is not None:
            pending = [i for i in pending if taken[documents[i]] < per_document]
            if not pending:
                break
        index = np.asarray(pending)
        scores = relevance[index] if not picked else lambda_ * relevance[index] - (1.0 - lambda_) * closest[index]
        position = _last_argmax(scores)
        chosen = pending[position]
        pending[position] = pending[-1]  # swap_remove, as the engine keeps its pending set
        pending.pop()
        picked.append(chosen)
        closest = np.maximum(closest, rows @ rows[chosen])
        if documents is not None:
            taken[documents[chosen]] += 1
    return picked


def relevance(query: Sequence[float], vectors: np.ndarray) -> np.ndarray:
    """Cosine of the query with each row: the score an MMR hit carries."""
    return _unit(np.asarray(vectors, dtype=np.float64)) @ _unit(np.asarray(query, dtype=np.float64))


def standing_vector(dense: dict[str, Any], order: Sequence[str]) -> Optional[Any]:
    """The vector a candidate stands by: the first of ``order`` it carries (None: none of them)."""
    return next((dense[name] for name in order if dense.get(name) is not None), None)


def mmr_hits(hits: Sequence[Any], stage: MmrStage, limit: int, group: Optional[GroupStage] = None,
             document_of: Any = None) -> list[Any]:
    """MMR over candidate hits (``core.Hit``, read with their dense vectors): the picked hits, each
    scored by its cosine relevance to the query (a hit fused by relevance keeps its relevance)."""
    usable = [(h, v) for h in hits if (v := standing_vector(h.dense, stage.order)) is not None]
    if not usable:
        return []
    vectors = np.asarray([v for _, v in usable], dtype=np.float64)
    documents = [document_of(h, group.key) for h, _ in usable] if group is not None else None
    order = mmr_select(stage.vector, vectors, stage.lambda_, limit, documents,
                       group.per_document if group is not None else None)
    scores = relevance(stage.vector, vectors)
    out = []
    for i in order:
        found = usable[i][0]
        if getattr(found, "detail", None) is None:
            found.score = float(scores[i])
        out.append(found)
    return out
