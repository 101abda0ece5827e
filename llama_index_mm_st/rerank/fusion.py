"""Ordering: each scorer's output as a relevance in [0, 1], several scorers fused by relevance.

Scores of different models live on different scales (a sigmoid, a logit difference, an ITM
probability, a MaxSim sum), so their raw values never compare. Each scorer declares its scale
(``score_scale``) and its output is mapped to a relevance with one meaning, the probability that the
pair is relevant: a probability as it is, a logit through the sigmoid, a signed score from [-1, 1],
a MaxSim sum by the mean best match per query token. When labels exist, ``RerankCalibration`` maps
each (scorer, document modality) further through a fitted logistic map, the way the store calibrates
its own relevance. Candidates are then ordered by relevance, whichever scorer read them.

The rank-based helpers (``reciprocal_rank_fusion``, ``keep_in_place``) stay for callers that fuse
rankings whose scales they cannot map. Pure functions over positions and scores, no models, no nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Optional, Sequence, get_args

import numpy as np

from ..defaults import DEFAULT_RRF_K  # noqa: E402 - re-exported
"""The constant of Cormack et al. (2009), also Qdrant's and Elasticsearch's default."""
from ..relevance import LogisticMap, fit_logistic, logit, sigmoid

ScoreScale = Literal["probability", "logit", "signed", "maxsim"]
SCORE_SCALES: tuple[ScoreScale, ...] = get_args(ScoreScale)
"""What a scorer's raw output is: a probability in [0, 1] (BLIP's ITM head, a cross-encoder with a
sigmoid), a logit (a cross-encoder without an activation, a yes/no logit difference), a score in
[-1, 1] (a tanh head), or a MaxSim sum over query tokens (late interaction)."""


def score_scale(scorer: Any) -> ScoreScale:
    """The scale a scorer declares (``ScorerAbilities.score_scale``); one that declares none gives
    real-valued scores, read as logits."""
    from .scorers.base import abilities_of

    declared = abilities_of(scorer).score_scale
    return declared if declared in SCORE_SCALES else "logit"  # type: ignore[return-value]


def to_relevance(scale: ScoreScale, raw: Sequence[float], query_tokens: Optional[int] = None) -> np.ndarray:
    """Raw scores on ``scale`` as relevances in [0, 1] (monotone in the raw score)."""
    x = np.asarray(raw, dtype=np.float64)
    if scale == "probability":
        return np.clip(x, 0.0, 1.0)
    if scale == "signed":
        return np.clip((x + 1.0) / 2.0, 0.0, 1.0)
    if scale == "maxsim":
        if not query_tokens or query_tokens < 1:
            raise ValueError("a MaxSim score needs its query's token count to become a relevance")
        return np.clip(x / query_tokens, 0.0, 1.0)  # the mean best match per query token
    return sigmoid(x)


@dataclass(frozen=True)
class RerankCalibration:
    """Fitted maps per scorer name and document modality: ``relevance = sigmoid(a * logit(r) + b)``,
    with ``r`` the scorer's relevance before calibration. Pairs without a map keep ``r``."""

    maps: Mapping[str, Mapping[str, LogisticMap]] = field(default_factory=dict)

    def apply(self, scorer: str, modality: str, relevance: np.ndarray) -> np.ndarray:
        fitted = self.maps.get(scorer, {}).get(modality)
        return relevance if fitted is None else fitted(logit(relevance))

    def to_dict(self) -> dict[str, Any]:
        return {scorer: {modality: m.to_dict() for modality, m in sorted(by.items())}
                for scorer, by in sorted(self.maps.items())}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RerankCalibration":
        if not isinstance(data, Mapping):
            raise ValueError(f"a reranker calibration is {{scorer: {{modality: map}}}}, got {data!r}")
        return cls({str(scorer): {str(modality): LogisticMap.from_dict(m) for modality, m in dict(by).items()}
                    for scorer, by in data.items()})


def fit_rerank_calibration(samples: Sequence[tuple[str, str, float, bool]], minimum: int = 20) -> RerankCalibration:
    """Maps from (scorer, document modality, relevance before calibration, label) samples; a group with
    fewer than ``minimum`` samples, or with one label only, gets no map (it keeps its prior relevance)."""
    groups: dict[tuple[str, str], list[tuple[float, bool]]] = {}
    for scorer, modality, relevance, label in samples:
        groups.setdefault((scorer, modality), []).append((relevance, label))
    maps: dict[str, dict[str, LogisticMap]] = {}
    for (scorer, modality), rows in sorted(groups.items()):
        labels = [label for _, label in rows]
        if len(rows) < minimum or all(labels) or not any(labels):
            continue
        maps.setdefault(scorer, {})[modality] = fit_logistic(logit([r for r, _ in rows]), labels)
    return RerankCalibration(maps)


def order_by_relevance(relevance: Mapping[int, float], unscored: Mapping[int, float], merge: bool) -> list[int]:
    """Positions best first. Scored positions by relevance (ties: retrieval order); unscored ones by
    their retrieval score among them when ``merge`` (it is a relevance too), else at their own places."""
    if merge:
        return rank_by_score({**relevance, **unscored})
    return keep_in_place(rank_by_score(relevance), sorted(unscored))


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
