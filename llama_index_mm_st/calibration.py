"""Calibrating relevance on the user's own labels: what ``mmst calibrate QRELS`` runs.

A qrels file (``evaluation.load_qrels``) says which files or nodes answer each query. For every query
the store's relevance-fused hits are labelled by it and the store fits, per dense vector, a map from
their evidence to the share that is relevant (``MultimodalQdrantStore.calibrate``), kept with the
index. With a reranker, its scores are calibrated the same way, per scorer and document modality
(``rerank.fusion.fit_rerank_calibration``), and kept with the index too (``RERANK_CALIBRATION_KEY``),
where ``mmst search --rerank`` reads them back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence, Union

from llama_index.core.schema import NodeWithScore

from .evaluation import Qrel, load_qrels
from .hits import search_hits
from .inputs import read_node, read_query
from .pipeline import MultimodalRetriever, query_bundle
from .rerank.fusion import RerankCalibration, fit_rerank_calibration, score_scale, to_relevance

__all__ = ["RERANK_CALIBRATION_KEY", "Calibrated", "calibrate", "rerank_calibration"]

RERANK_CALIBRATION_KEY = "mmst_rerank_calibration"
"""The collection metadata key of the rerankers' fitted maps."""


@dataclass(frozen=True)
class Calibrated:
    """What ``calibrate`` fitted: the store's report (``store.calibration.CalibrationReport``) and the
    rerankers' maps (None without a reranker)."""

    store: Any
    rerank: Optional[RerankCalibration] = None


def _matcher(qrel: Qrel) -> Any:
    def matches(node: Any) -> bool:
        hit = search_hits([NodeWithScore(node=node, score=0.0)], "relevance")[0]
        return any(item.matches(hit) for item in qrel.relevant)
    return matches


def calibrate(store: Any, embedding: Any, qrels: Union[str, Path, Sequence[Qrel]], *, reranker: Any = None,
              depth: int = 50, model: Optional[str] = None) -> Calibrated:
    """Fit the store's relevance (and the reranker's, when given) to ``qrels``; both are kept with the index."""
    from .store.calibration import LabeledQuery

    rows = load_qrels(qrels) if isinstance(qrels, (str, Path)) else list(qrels)
    retriever = MultimodalRetriever(store, embedding, top_k=depth, fusion="relevance")
    labelled = []
    for qrel in rows:
        kind = qrel.example_kind
        bundle = query_bundle(qrel.query, **({kind: qrel.example} if kind else {}))
        query = read_query(bundle)
        labelled.append(LabeledQuery(retriever.embed_query(query), text=qrel.query, query_modality=query.modality,
                                     relevant=[r.raw for r in qrel.relevant], matches=_matcher(qrel)))
    report = store.calibrate(labelled, depth=depth, model=model)
    if reranker is None:
        return Calibrated(report)
    fitted = fit_rerank_calibration(rerank_samples(store, embedding, reranker, rows, labelled, depth))
    store.update_metadata({RERANK_CALIBRATION_KEY: fitted.to_dict()})
    return Calibrated(report, fitted)


def rerank_samples(store: Any, embedding: Any, reranker: Any, rows: Sequence[Qrel], labelled: Sequence[Any],
                   depth: int) -> List[tuple[str, str, float, bool]]:
    """(scorer, document modality, relevance before calibration, label) of every reranked candidate."""
    plain = reranker.model_copy(update={"calibration": {}, "top_n": depth})
    retriever = MultimodalRetriever(store, embedding, plain, top_k=depth)
    scales = {scorer.name: score_scale(scorer) for scorer in plain.scorers}
    samples = []
    for qrel, query in zip(rows, labelled):
        kind = qrel.example_kind
        bundle = query_bundle(qrel.query, **({kind: qrel.example} if kind else {}))
        bundle.embedding = query.embedding
        for item in retriever.retrieve(bundle):
            scorer = getattr(item, "scorer", None)
            if scorer is None or scales.get(scorer) == "maxsim":  # MaxSim's relevance needs its query's tokens
                continue
            relevance = float(to_relevance(scales[scorer], [item.model_score])[0])
            samples.append((scorer, read_node(item.node).modality, relevance, bool(query.matches(item.node))))
    return samples


def rerank_calibration(store: Any) -> dict[str, Any]:
    """The rerankers' maps kept with the index ({} when none were fitted)."""
    found = store.get_metadata().get(RERANK_CALIBRATION_KEY)
    return dict(found) if isinstance(found, dict) else {}
