"""Relevance fusion: every hit's relevance in [0, 1], on one scale for every modality. Pure, no I/O.

A raw cosine says little by itself: text-text cosines of a CLIP-style model sit far above text-image
ones (the modality gap), and a collection's own density moves them too. What carries one meaning is
how far a hit stands above the *background* of its own named vector for this query:

    z = (cos(q, x) - mean_v(q)) / sd_v(q),   mean_v(q) = q . mu_v,   sd_v(q)^2 = q' C_v q

with ``mu_v`` and ``C_v`` the mean and covariance of the vectors stored under the name ``v`` (from a
sample the store keeps up to date: ``store/background.py``). That is CSLS's and QB-Norm's idea
(normalise a similarity by what the neighbourhood scores anyway), made cheap: two small products per
vector at query time, nothing per point.

Without labels, ``z`` becomes a relevance by a two-component model (``Prior``): background points
score ``N(0, 1)`` in z, relevant ones ``N(signal, 1)``, and ``expected`` of the ``N_v`` points holding
the vector are relevant to a query. The posterior is logistic in z,

    logit = signal * z - signal^2 / 2 - ln(N_v / expected),

so a hit must clear the top of its own background (which rises with ``ln N_v``) to count as
relevant, by the same rule in every modality. Words add evidence: ``word_weight`` times the hit's
word score over the best word score of the query (BM25, learned sparse), so words reorder and lift
texts but cannot make a text that matches no better outrank an image. A node with several vectors (a
captioned image, a PDF page) is as relevant as its best vector, and counted once. Labels replace the
prior per named vector with a fitted map (``RelevanceModel.fitted``, from ``store.calibrate``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from llama_index_mm_st.relevance import LogisticMap, sigmoid

MIN_SD = 1e-4
"""Floor of a background's standard deviation (a collection of identical vectors has none)."""
DEFAULT_SIGNAL = 5.0
DEFAULT_EXPECTED = 1.5
DEFAULT_WORD_WEIGHT = 2.0
"""Logit added by a full word match (the query's best word score): odds times e^2 = 7.4."""
MODEL_VERSION = 1


BASIS_RANK = 128
"""Principal directions a background keeps exactly; the rest of its variance is spread evenly over
the other directions (probabilistic PCA). Embedding spectra fall fast, so 128 directions of a 512-d
model hold almost all of it, and a query's spread costs one 512 x 128 product instead of 512 x 512."""


@dataclass(frozen=True)
class Background:
    """One named vector's background: how many points hold it, and the mean and covariance of their
    unit vectors (as the covariance's leading ``basis`` directions with their ``variances``, plus an
    even ``residual`` variance in every other direction). ``moments(q)``: the mean and standard
    deviation of ``cos(q, x)`` over the points."""

    count: int
    mean: np.ndarray
    basis: np.ndarray
    variances: np.ndarray
    residual: float = 0.0

    def moments(self, query: np.ndarray) -> tuple[float, float]:
        q = unit(np.asarray(query, dtype=np.float64))
        p = self.basis.T @ q
        variance = float(p @ (self.variances * p) + self.residual * max(1.0 - float(p @ p), 0.0))
        return float(q @ self.mean), math.sqrt(max(variance, MIN_SD**2))

    @classmethod
    def of(cls, vectors: Any, count: Optional[int] = None, rank: int = BASIS_RANK) -> "Background":
        """The background of these vectors (rows; made unit length, as the engine stores cosine vectors),
        standing for ``count`` points (default: as many as there are rows)."""
        x = unit(np.asarray(vectors, dtype=np.float64))
        if x.ndim != 2 or not len(x):
            raise ValueError("a background needs at least one vector")
        mean = x.mean(axis=0)
        centred = x - mean
        cov = centred.T @ centred / max(len(x) - 1, 1)
        values, directions = np.linalg.eigh(cov)
        dim = len(values)
        keep = min(rank, dim)
        residual = float(values[: dim - keep].mean()) if keep < dim else 0.0
        return cls(count if count is not None else len(x), mean, directions[:, dim - keep:].copy(),
                   np.clip(values[dim - keep:], 0.0, None), max(residual, 0.0))


def unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(norm == 0, 1.0, norm)


@dataclass(frozen=True)
class Prior:
    """The label-free map from z to a relevance logit (see the module docstring)."""

    signal: float = DEFAULT_SIGNAL
    """Mean z of a relevant point: how many background standard deviations it stands out by."""
    expected: float = DEFAULT_EXPECTED
    """Relevant points a query has, per named vector, before anything is seen."""

    def logit(self, z: Any, count: int) -> np.ndarray:
        return self.signal * np.asarray(z, dtype=np.float64) - self.signal**2 / 2 \
            - math.log(max(count, 1) / self.expected)


@dataclass(frozen=True)
class RelevanceModel:
    """How evidence becomes relevance: the prior, plus per named vector a map fitted to labels
    (features: the prior's logit and the word score) where ``store.calibrate`` made one."""

    prior: Prior = Prior()
    word_weight: float = DEFAULT_WORD_WEIGHT
    fitted: Mapping[str, LogisticMap] = field(default_factory=dict)
    model: Optional[str] = None
    """The embedding model the fitted maps were made for (the collection's recorded model)."""

    def logits(self, name: str, dense_logit: np.ndarray, words: np.ndarray) -> np.ndarray:
        """Relevance logits of hits seen by the vector ``name`` (prior logits) with word scores in [0, 1]."""
        fitted = self.fitted.get(name)
        if fitted is None:
            return dense_logit + self.word_weight * words
        return fitted.logit(np.column_stack([dense_logit, words]))

    def to_dict(self) -> dict[str, Any]:
        return {"version": MODEL_VERSION, "signal": self.prior.signal, "expected": self.prior.expected,
                "word_weight": self.word_weight, "model": self.model,
                "fitted": {name: m.to_dict() for name, m in sorted(self.fitted.items())}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RelevanceModel":
        if data.get("version") != MODEL_VERSION:
            raise ValueError(f"relevance calibration version {data.get('version')!r} is not {MODEL_VERSION}")
        fitted = {str(name): LogisticMap.from_dict(m) for name, m in dict(data.get("fitted") or {}).items()}
        return cls(Prior(float(data["signal"]), float(data["expected"])), float(data["word_weight"]), fitted,
                   data.get("model"))


@dataclass(frozen=True)
class Scored:
    """One fused hit: its relevance, the vector that found it best (None: words alone), that vector's
    z, and its word score (0..1)."""

    id: str
    relevance: float
    vector: Optional[str]
    z: Optional[float]
    words: float


def word_scores(sparse: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Each candidate's word evidence in [0, 1]: its score over the best score of the same word list,
    the best over the lists (BM25, learned sparse)."""
    out: dict[str, float] = {}
    for found in sparse.values():
        best = max(found.values(), default=0.0)
        if best <= 0:
            continue
        for node, score in found.items():
            value = max(score, 0.0) / best
            if value > out.get(node, 0.0):
                out[node] = value
    return out


def fuse(query: Any, dense: Mapping[str, Mapping[str, float]], sparse: Mapping[str, Mapping[str, float]],
         backgrounds: Mapping[str, Background], model: RelevanceModel = RelevanceModel(),
         limit: Optional[int] = None) -> list[Scored]:
    """Fuse ranked lists by relevance, best first (ties by id, so every engine orders them alike).

    ``dense[v]``: cosine to the query of candidates holding vector ``v`` (its own branch's hits and the
    word candidates rescored by ``v``); ``sparse[s]``: word scores of each sparse branch. A candidate
    with no dense evidence (its vectors have no background yet) counts by its words alone."""
    words = word_scores(sparse)
    best: dict[str, tuple[float, Optional[str], Optional[float]]] = {}
    q = np.asarray(query, dtype=np.float64)
    for name, found in dense.items():
        background = backgrounds.get(name)
        if background is None or not found:
            continue
        mean, sd = background.moments(q)
        ids = list(found)
        z = (np.fromiter((found[i] for i in ids), np.float64, len(ids)) - mean) / sd
        w = np.fromiter((words.get(i, 0.0) for i in ids), np.float64, len(ids))
        logits = model.logits(name, model.prior.logit(z, background.count), w)
        for node, value, zz in zip(ids, logits.tolist(), z.tolist()):
            if node not in best or value > best[node][0]:
                best[node] = (value, name, zz)
    for node, w in words.items():
        if node not in best:  # words alone: no vector evidence, the prior's floor plus the words
            best[node] = (float(model.prior.logit(0.0, 1)) + model.word_weight * w, None, None)
    ordered = sorted(best.items(), key=lambda item: (-item[1][0], item[0]))
    if limit is not None:
        ordered = ordered[:limit]
    return [Scored(node, float(sigmoid(value)), name, z, words.get(node, 0.0))
            for node, (value, name, z) in ordered]


def relevance_features(query: Any, name: str, cosines: Sequence[float], words: Sequence[float],
                       background: Background, prior: Prior = Prior()) -> np.ndarray:
    """The (prior logit, word score) rows a calibration map is fitted on, for hits seen by ``name``."""
    mean, sd = background.moments(np.asarray(query, dtype=np.float64))
    z = (np.asarray(cosines, dtype=np.float64) - mean) / sd
    return np.column_stack([prior.logit(z, background.count), np.asarray(words, dtype=np.float64)])
