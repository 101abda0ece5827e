"""Ordering: sort by one model's scores, or merge several models' rankings by reciprocal rank fusion.

Scores of different models live on different scales (a sigmoid, a logit difference, an ITM
probability), so they are never compared. Each scorer ranks its own candidates; a candidate's
fused score is ``sum(1 / (k + rank))`` over the rankings it appears in (rank from 1). Equal fused
scores keep retrieval order. Pure functions over positions, no models, no nodes.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from ..defaults import DEFAULT_RRF_K  # noqa: E402 - re-exported
"""The constant of Cormack et al. (2009), also Qdrant's and Elasticsearch's default."""


def rank_by_score(scores: Mapping[int, float]) -> list[int]:
    """Positions from best to worst score; ties keep retrieval order (lower position first)."""
    return sorted(scores, key=lambda position: (-scores[position], position))


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = DEFAULT_RRF_K) -> dict[int, float]:
    """Fused score per position from several best-first rankings."""
    if k < 0:
        raise ValueError(f"rrf k must be >= 0, got {k}")
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, position in enumerate(ranking, start=1):
            fused[position] = fused.get(position, 0.0) + 1.0 / (k + rank)
    return fused


def keep_in_place(ordered: Sequence[int], kept: Sequence[int]) -> list[int]:
    """Merge ``ordered`` positions around ``kept`` ones, each kept position staying at its own index
    (or as close to it as the list's length allows)."""
    queue = sorted(kept)
    result: list[int] = []
    rest = iter(ordered)
    remaining = len(ordered)
    while queue or remaining:
        if queue and (queue[0] <= len(result) or remaining == 0):
            result.append(queue.pop(0))
        else:
            result.append(next(rest))
            remaining -= 1
    return result
