"""Fitting the store's relevance to labels: per dense vector, a logistic map from the label-free
evidence (the prior's logit of a hit's standing, its word score) to the share of such hits that are
relevant. Pure: the collection runs the queries (``Collection.calibrate``) and hands the samples here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Collection, Mapping, Optional, Sequence

import numpy as np

from llama_index_mm_st.relevance import LogisticMap, expected_calibration_error, fit_logistic, sigmoid
from llama_index_mm_st.store.relevance import RelevanceModel

MIN_SAMPLES = 30
"""Hits a dense vector needs (with both labels among them) to get a fitted map; fewer keep the prior."""
DEFAULT_DEPTH = 50
"""Hits read per labelled query: the candidates a relevance is fitted on."""


@dataclass(frozen=True)
class LabeledQuery:
    """A query with its answer: ``embedding`` (the query's vector), ``text`` (its words, for BM25; None:
    a dense search), and what is relevant: node ids, and/or ``matches(node)``, a test of a node (a qrels
    file names source files, which only the node's metadata shows)."""

    embedding: Sequence[float]
    relevant: Collection[str] = ()
    text: Optional[str] = None
    query_modality: str = "text"
    matches: Optional[Callable[[Any], bool]] = None


@dataclass(frozen=True)
class VectorFit:
    """How one dense vector was calibrated: samples, how many relevant, ECE before and after (on them)."""

    samples: int
    relevant: int
    ece_before: float
    ece_after: Optional[float]
    """None: too few samples, or one label only: the vector keeps the prior."""


@dataclass(frozen=True)
class CalibrationReport:
    queries: int
    vectors: dict[str, VectorFit] = field(default_factory=dict)
    model: RelevanceModel = field(default_factory=RelevanceModel)


def fit_model(samples: Mapping[str, Sequence[tuple[float, float, bool]]], base: RelevanceModel,
              queries: int, minimum: int = MIN_SAMPLES) -> CalibrationReport:
    """A relevance model fitted on (prior logit, word score, label) samples per dense vector; a vector
    with too few samples, or one label only, keeps ``base``'s prior."""
    fitted: dict[str, LogisticMap] = {}
    report: dict[str, VectorFit] = {}
    for name, rows in sorted(samples.items()):
        features = np.array([[logit, words] for logit, words, _ in rows], dtype=np.float64).reshape(-1, 2)
        labels = [label for _, _, label in rows]
        before = expected_calibration_error(
            sigmoid(features[:, 0] + base.word_weight * features[:, 1]).tolist(), labels) if rows else 0.0
        if len(rows) < minimum or all(labels) or not any(labels):
            report[name] = VectorFit(len(rows), sum(labels), before, None)
            continue
        fitted[name] = fit_logistic(features, labels)
        after = expected_calibration_error(fitted[name](features).tolist(), labels)
        report[name] = VectorFit(len(rows), sum(labels), before, after)
    return CalibrationReport(queries, report, replace(base, fitted=fitted))
