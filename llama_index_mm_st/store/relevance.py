"""Relevance on one scale for every modality: pure math, no I/O.

A hit's raw cosine says little by itself: text-text cosines of a CLIP-style model sit far above
text-image ones (the modality gap), and a collection's own density moves them too. What does carry
one meaning is how far a hit stands above the *background* of its own named vector for this query:

    z = (cos(q, x) - mean_bg(q)) / sd_bg(q),   mean_bg(q) = q . mu_v,   sd_bg(q)^2 = q' Sigma_v q

where ``mu_v`` and ``Sigma_v`` are the mean and covariance of the vectors stored under the name ``v``
(estimated from a sample the store keeps up to date). That is CSLS's and QB-Norm's idea (normalise a
similarity by what the neighbourhood scores anyway), made cheap: two small products per vector at
query time, nothing per point.

``z`` becomes a relevance in [0, 1] by a two-component model: background points score
``N(0, 1)`` in z, relevant ones ``N(signal, 1)``, and about ``expected`` of the ``count`` points under
a vector are relevant to a query. The posterior is logistic in z:

    logit r = signal * z - signal^2 / 2 - ln(count / expected)

so a hit must clear the background's own extreme (which grows with ``ln count``) to count as
relevant, by the same rule in every modality. Labels replace the prior with a fitted map
(``Calibration``). A node with several vectors (a captioned image, a PDF page) is relevant by its
best vector; words (BM25, learned sparse) add bounded evidence to the logit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np

MIN_SD = 1e-4
"""Floor of a background's standard deviation (a collection of identical vectors has none)."""


@dataclass(frozen=True)
class Background:
    """One named vector's background: how many points hold it and the mean and covariance of their
    (unit) vectors. ``moments(q)`` is the mean and standard deviation of ``cos(q, x)`` over them."""

    count: int
    mean: np.ndarray
    cov: np.ndarray

    def moments(self, query: np.ndarray) -> tuple[float, float]:
        q = _unit(query)
        variance = float(q @ self.cov @ q)
        return float(q @ self.mean), math.sqrt(max(variance, MIN_SD**2))

    @classmethod
    def of(cls, vectors: np.ndarray, count: Optional[int] = None) -> "Background":
        """The background of these vectors (rows; normalised here as the engine stores them), standing
        for ``count`` points (default: as many as the rows)."""
        x = _unit(np.asarray(vectors, dtype=np.float64))
        mean = x.mean(axis=0)
        centred = x - mean
        cov = centred.T @ centred / max(len(x) - 1, 1)
        return cls(count if count is not None else len(x), mean, cov)


@dataclass(frozen=True)
class Prior:
    """The label-free map from z to relevance (see the module docstring)."""

    signal: float = 4.0
    """Mean z of a relevant point: how many background standard deviations it stands out by."""
    expected: float = 3.0
    """Relevant points a query has, per named vector, before anything is seen."""

    def logit(self, z: np.ndarray, count: int) -> np.ndarray:
        return self.signal * np.asarray(z) - self.signal**2 / 2 - math.log(max(count, 1) / self.expected)


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(norm == 0, 1.0, norm)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


def standardise(scores: Sequence[float], mean: float, sd: float) -> np.ndarray:
    return (np.asarray(scores, dtype=np.float64) - mean) / sd


def dense_logits(query: np.ndarray, scores: Mapping[str, Mapping[str, float]],
                 backgrounds: Mapping[str, Background], prior: Prior = Prior()) -> dict[str, dict[str, float]]:
    """Per named vector, each candidate's relevance logit from its cosine ``scores[name][id]``."""
    out: dict[str, dict[str, float]] = {}
    for name, found in scores.items():
        background = backgrounds.get(name)
        if background is None or not found:
            continue
        mean, sd = background.moments(query)
        ids = list(found)
        logits = prior.logit(standardise([found[i] for i in ids], mean, sd), background.count)
        out[name] = dict(zip(ids, logits.tolist()))
    return out


def best_of(logits: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Each node's best logit over its vectors: a node is as relevant as its best evidence, counted once."""
    best: dict[str, float] = {}
    for found in logits.values():
        for node, value in found.items():
            if value > best.get(node, -math.inf):
                best[node] = value
    return best
