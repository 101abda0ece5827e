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
relevant, by the same rule in every modality. A node with several vectors (a captioned image, a PDF
page) is as relevant as its best vector, and counted once.

Words are evidence too, measured as *coverage*: a hit's BM25 score over the score of a document that
holds every query word once (``WordBackground``: the words' IDF, estimated from the same sample), so
matching the query's rare words counts and matching its common ones little. Coverage adds
``word_weight * coverage`` to a hit's vector logit (words reorder and lift a text, but cannot make a
text that matches no better outrank an image), and on its own is the logit
``word_signal * (coverage - word_midpoint)``: a text whose exact rare words (a product code, an error
message) match is found though its vector is far. A node's logit is the larger of the two. (A learned
sparse list, whose weights have no IDF, counts by its score over the list's best, as a lift only.)
Labels replace the prior per named vector with a fitted map (``RelevanceModel.fitted``, from
``store.calibrate``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from llama_index_mm_st.relevance import LogisticMap, sigmoid

MIN_SD = 1e-4
PRIOR_POINTS = 10.0
"""Pseudo-points of an uninformed background (random directions) mixed into each estimate: they decide a
background of a handful of points and vanish beside a real sample (10 of 1,000 points: 1%)."""
"""Floor of a background's standard deviation (a collection of identical vectors has none)."""
DEFAULT_SIGNAL = 5.0
DEFAULT_EXPECTED = 1.5
DEFAULT_WORD_WEIGHT = 2.0
"""Logit added to a vector's by a full word match (coverage 1): odds times e^2 = 7.4."""
DEFAULT_WORD_SIGNAL = 8.0
DEFAULT_WORD_MIDPOINT = 1.1
"""Words alone: logit ``8 * (coverage - 1.1)``. A hit holding every informative query word (coverage 1)
is relevant at 0.31, one holding a tenth less at 0.17, one holding only the common words near 0: exact
words make a hit a candidate above the vectors' background, but words that collide (a text that names
a product without being about it) are no answer by themselves; the vectors must agree for 0.5."""
MODEL_VERSION = 1
WORDS = "words"
"""The name of the words' own map in ``RelevanceModel.fitted`` (beside the dense vectors' names)."""


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

    def moments(self, query: np.ndarray, normalised: bool = False) -> tuple[float, float]:
        q = np.asarray(query, dtype=np.float64) if normalised else unit(np.asarray(query, dtype=np.float64))
        p = self.basis.T @ q
        variance = float(p @ (self.variances * p) + self.residual * max(1.0 - float(p @ p), 0.0))
        return float(q @ self.mean), math.sqrt(max(variance, MIN_SD**2))

    @classmethod
    def of(cls, vectors: Any, count: Optional[int] = None, rank: int = BASIS_RANK,
           prior_points: float = PRIOR_POINTS) -> "Background":
        """The background of these vectors (rows; made unit length, as the engine stores cosine vectors),
        standing for ``count`` points (default: as many as there are rows). A few rows say little about
        a background, so the estimate leans on ``prior_points`` points of an uninformed one (directions
        at random: mean 0, covariance I/d), which a large sample outweighs."""
        x = unit(np.asarray(vectors, dtype=np.float64))
        if x.ndim != 2 or not len(x):
            raise ValueError("a background needs at least one vector")
        n, dim = x.shape
        mean = x.mean(axis=0)
        centred = x - mean
        cov = centred.T @ centred / max(n - 1, 1)
        values, directions = np.linalg.eigh(cov)
        keep = min(rank, dim)
        residual = float(values[: dim - keep].mean()) if keep < dim else 0.0
        own = max(n - 1, 0) / (max(n - 1, 0) + prior_points)  # the sample's weight against the prior's
        isotropic = (1.0 - own) / dim
        return cls(count if count is not None else n, mean * n / (n + prior_points),
                   directions[:, dim - keep:].copy(), own * np.clip(values[dim - keep:], 0.0, None) + isotropic,
                   own * max(residual, 0.0) + isotropic)


def unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(norm == 0, 1.0, norm)


@dataclass(frozen=True)
class WordBackground:
    """A word vector's background (BM25): how many points hold it, and in how many of the ``sampled``
    ones each term occurs, from which each term's IDF is estimated as the engine computes it."""

    count: int
    sampled: int
    frequency: Mapping[int, int]

    def idf(self, term: int) -> float:
        n = self.frequency.get(term, 0) * self.count / max(self.sampled, 1)
        return math.log(1.0 + (self.count - n + 0.5) / (n + 0.5))

    def full_match(self, indices: Sequence[int], values: Sequence[float]) -> float:
        """The BM25 score of a document holding each query word once (at the average length)."""
        return float(sum(float(v) * self.idf(int(t)) for t, v in zip(indices, values)))

    @classmethod
    def of(cls, documents: Sequence[Sequence[int]], count: Optional[int] = None) -> "WordBackground":
        frequency: dict[int, int] = {}
        for terms in documents:
            for term in set(int(t) for t in terms):
                frequency[term] = frequency.get(term, 0) + 1
        return cls(count if count is not None else len(documents), len(documents), frequency)


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
    word_signal: float = DEFAULT_WORD_SIGNAL
    word_midpoint: float = DEFAULT_WORD_MIDPOINT
    model: Optional[str] = None
    """The embedding model the fitted maps were made for (the collection's recorded model)."""

    def logits(self, name: str, dense_logit: np.ndarray, words: np.ndarray) -> np.ndarray:
        """Relevance logits of hits seen by the vector ``name`` (prior logits) with word scores in [0, 1]."""
        fitted = self.fitted.get(name)
        if fitted is None:
            return dense_logit + self.word_weight * words
        return fitted.logit(np.column_stack([dense_logit, words]))

    def words_alone(self, coverage: np.ndarray) -> np.ndarray:
        """The logit of a hit by its words alone (a word map fitted to labels, else the prior)."""
        fitted = self.fitted.get(WORDS)
        if fitted is None:
            return self.word_signal * (coverage - self.word_midpoint)
        return fitted.logit(coverage[:, None] if np.ndim(coverage) == 1 else coverage)

    def to_dict(self) -> dict[str, Any]:
        return {"version": MODEL_VERSION, "signal": self.prior.signal, "expected": self.prior.expected,
                "word_weight": self.word_weight, "word_signal": self.word_signal,
                "word_midpoint": self.word_midpoint, "model": self.model,
                "fitted": {name: m.to_dict() for name, m in sorted(self.fitted.items())}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RelevanceModel":
        if data.get("version") != MODEL_VERSION:
            raise ValueError(f"relevance calibration version {data.get('version')!r} is not {MODEL_VERSION}")
        fitted = {str(name): LogisticMap.from_dict(m) for name, m in dict(data.get("fitted") or {}).items()}
        return cls(prior=Prior(float(data["signal"]), float(data["expected"])), word_weight=float(data["word_weight"]),
                   fitted=fitted, model=data.get("model"),
                   word_signal=float(data.get("word_signal", DEFAULT_WORD_SIGNAL)),
                   word_midpoint=float(data.get("word_midpoint", DEFAULT_WORD_MIDPOINT)))


@dataclass(frozen=True)
class Scored:
    """One fused hit: its relevance, the vector that found it best (None: words alone), that vector's
    z, and its word score (0..1)."""

    id: Any
    """The point id (text; as the engine gave it until the hit is read back)."""
    relevance: float
    vector: Optional[str]
    z: Optional[float]
    words: float


def word_scores(sparse: Mapping[str, Mapping[str, float]], full: Mapping[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    """Each candidate's word evidence in [0, 1] (its best over the sparse lists), and its coverage by
    the lists whose ``full`` match score is known (BM25): a score over that full score, else (a learned
    sparse list) over the list's best score, which lifts but never finds a hit on its own."""
    evidence: dict[str, float] = {}
    coverage: dict[str, float] = {}
    for name, found in sparse.items():
        scale = full.get(name)
        best = scale if scale is not None and scale > 0 else max(found.values(), default=0.0)
        if best <= 0:
            continue
        for node, score in found.items():
            value = min(max(score, 0.0) / best, 1.0)
            if value > evidence.get(node, 0.0):
                evidence[node] = value
            if scale is not None and scale > 0 and value > coverage.get(node, 0.0):
                coverage[node] = value
    return evidence, coverage


def fuse(query: Any, dense: Mapping[str, Mapping[str, float]], sparse: Mapping[str, Mapping[str, float]],
         backgrounds: Mapping[str, Background], model: RelevanceModel = RelevanceModel(),
         limit: Optional[int] = None, full: Mapping[str, float] = {}) -> list[Scored]:
    """Fuse ranked lists by relevance, best first (ties by id, so every engine orders them alike).

    ``dense[v]``: cosine to the query of candidates holding vector ``v`` (its own branch's hits, and the
    word candidates' own); ``sparse[s]``: word scores of each sparse branch, with ``full[s]`` the score of
    a full match (``WordBackground.full_match``) where known. A node's logit is the larger of its best
    vector's (plus its words' lift) and its words' alone."""
    words, coverage = word_scores(sparse, full)
    best: dict[Any, tuple[float, Optional[str], Optional[float]]] = {}
    q = unit(np.asarray(query, dtype=np.float64))
    for name, found in dense.items():
        background = backgrounds.get(name)
        if background is None or not found:
            continue
        mean, sd = background.moments(q, normalised=True)
        ids = list(found)
        z = (np.fromiter((found[i] for i in ids), np.float64, len(ids)) - mean) / sd
        w = np.fromiter((words.get(i, 0.0) for i in ids), np.float64, len(ids))
        logits = model.logits(name, model.prior.logit(z, background.count), w)
        for node, value, zz in zip(ids, logits.tolist(), z.tolist()):
            if node not in best or value > best[node][0]:
                best[node] = (value, name, zz)
    if coverage:
        ids = list(coverage)
        alone = model.words_alone(np.fromiter((coverage[i] for i in ids), np.float64, len(ids)))
        for node, value in zip(ids, alone.tolist()):
            if node not in best or value > best[node][0]:
                best[node] = (value, None, best[node][2] if node in best else None)
    for node, lift in words.items():
        if node not in best:  # words of a list without a full-match scale, and no vector evidence: a floor
            best[node] = (float(model.prior.logit(0.0, 1)) + model.word_weight * lift, None, None)
    ordered = sorted(best.items(), key=lambda item: (-item[1][0], item[0]))
    if limit is not None:
        ordered = ordered[:limit]
    return [Scored(node, float(sigmoid(value)), name, z, words.get(node, 0.0))
            for node, (value, name, z) in ordered]
