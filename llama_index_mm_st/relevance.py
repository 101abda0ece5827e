"""Relevance in [0, 1]: the math every component shares, pure numpy, no I/O.

A relevance is meant as a probability: of the hits scored 0.7, about 70% are relevant, whatever
their modality and whichever model scored them. The store derives it from how far a hit stands above
its vector's background (``store/relevance.py``), a reranker from its model's probability
(``rerank/fusion.py``); both are logistic in some evidence, so both are calibrated the same way when
labels exist: a logistic map fitted to (evidence, label) pairs (Platt scaling, by Newton's method).
``expected_calibration_error`` says how far a set of relevances is from that meaning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["LogisticMap", "abstention_auc", "coverage_precision", "expected_calibration_error", "fit_logistic", "logit",
           "reliability", "sigmoid"]

LOGIT_CLIP = 40.0
"""Logits are clipped to +-40 before the sigmoid: beyond that a float64 relevance is 0 or 1 anyway."""


def sigmoid(x: Any) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, dtype=np.float64), -LOGIT_CLIP, LOGIT_CLIP)))


def logit(p: Any, eps: float = 1e-12) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1 - eps)
    return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class LogisticMap:
    """``relevance = sigmoid(bias + sum(weights[i] * features[i]))``: a fitted calibration map."""

    weights: tuple[float, ...]
    bias: float

    def logit(self, features: Any) -> np.ndarray:
        x = np.asarray(features, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None] if len(self.weights) == 1 else x[None, :]
        return x @ np.asarray(self.weights) + self.bias

    def __call__(self, features: Any) -> np.ndarray:
        return sigmoid(self.logit(features))

    def to_dict(self) -> dict[str, Any]:
        return {"weights": list(self.weights), "bias": self.bias}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LogisticMap":
        weights = data.get("weights")
        bias = data.get("bias")
        if not isinstance(weights, list) or not all(isinstance(w, (int, float)) for w in weights) \
                or not isinstance(bias, (int, float)):
            raise ValueError(f"a logistic map is {{'weights': [numbers], 'bias': number}}, got {dict(data)!r}")
        return cls(tuple(float(w) for w in weights), float(bias))


def fit_logistic(features: Any, labels: Sequence[bool], l2: float = 1e-2, iterations: int = 100) -> LogisticMap:
    """Logistic regression of ``labels`` on ``features`` (rows), by Newton's method with a small L2
    penalty on the weights (not the bias), so separable labels still give finite weights. One feature
    column is Platt scaling. Needs both labels present."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    y = np.asarray(labels, dtype=np.float64)
    if len(x) != len(y) or not len(y):
        raise ValueError(f"fit_logistic needs as many labels as feature rows, got {len(y)} and {len(x)}")
    if y.min() == y.max():
        raise ValueError("fit_logistic needs relevant and irrelevant examples; all labels are "
                         + ("relevant" if y[0] else "irrelevant"))
    design = np.hstack([x, np.ones((len(x), 1))])
    penalty = np.full(design.shape[1], l2)
    penalty[-1] = 0.0
    beta = np.zeros(design.shape[1])
    beta[-1] = math.log(y.mean() / (1 - y.mean()))
    for _ in range(iterations):
        p = sigmoid(design @ beta)
        gradient = design.T @ (p - y) + penalty * beta
        hessian = (design * (p * (1 - p))[:, None]).T @ design + np.diag(penalty) + 1e-9 * np.eye(len(beta))
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return LogisticMap(tuple(float(b) for b in beta[:-1]), float(beta[-1]))


def reliability(relevance: Sequence[float], labels: Sequence[bool], bins: int = 10) -> list[tuple[float, float, int, float, float]]:
    """Per equal-width bin of relevance: (low, high, count, mean relevance, share relevant); empty bins left out."""
    r = np.asarray(relevance, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, r, side="right") - 1, 0, bins - 1)
    out = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            out.append((float(edges[b]), float(edges[b + 1]), int(mask.sum()), float(r[mask].mean()), float(y[mask].mean())))
    return out


def expected_calibration_error(relevance: Sequence[float], labels: Sequence[bool], bins: int = 10) -> float:
    """ECE: the count-weighted mean gap between mean relevance and the share relevant, over equal-width
    bins (Guo et al., 2017). 0 is perfectly calibrated."""
    if not len(relevance):
        raise ValueError("expected_calibration_error needs at least one relevance")
    total = len(relevance)
    return float(sum(count / total * abs(mean - observed)
                     for _, _, count, mean, observed in reliability(relevance, labels, bins)))


def abstention_auc(confidence: Sequence[float], quality: Sequence[float]) -> float:
    """How well ``confidence`` tells the queries a system answers well from the rest, as MTEB's abstention
    metrics measure it: answer the most confident queries first; the mean ``quality`` (nDCG, say) of
    those answered, over the coverage from one query to all, has an area; normalised so that answering
    in random order scores 0 and in the order of the quality itself (the oracle) scores 1 (nAUC)."""
    c = np.asarray(confidence, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    if len(c) != len(q) or len(q) < 2:
        raise ValueError("abstention_auc needs one confidence per quality, for at least two queries")

    def area(order: np.ndarray) -> float:
        means = np.cumsum(q[order]) / np.arange(1, len(q) + 1)
        return float(np.mean(means))

    model = area(np.lexsort((np.arange(len(c)), -c)))  # ties: in the given order
    oracle = area(np.argsort(-q, kind="stable"))
    chance = float(q.mean())
    if oracle - chance <= 1e-12:
        return 1.0  # every query equally good: any order is the oracle's
    return (model - chance) / (oracle - chance)


def coverage_precision(confidence: Sequence[float], correct: Sequence[bool], cut: float) -> tuple[float, float]:
    """At relevance ``cut``: the share of queries answered (best hit at or above it) and, of those, the
    share whose best hit is relevant (1.0 when none is answered)."""
    c = np.asarray(confidence, dtype=np.float64)
    answered = c >= cut
    if not len(c):
        raise ValueError("coverage_precision needs at least one query")
    precision = float(np.asarray(correct, dtype=np.float64)[answered].mean()) if answered.any() else 1.0
    return float(answered.mean()), precision
