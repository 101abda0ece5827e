"""The last stages of a query, pure: fusion choices, diversity (MMR) and one-hit-per-document plans.

``plan.plan_query`` attaches them to a ``QueryPlan``; the backends run MMR in the engine where it can,
and ``store.diversity`` / ``store.grouping`` run what the engine can't, on the same candidates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Sequence

from llama_index_mm_st.types import DENSE_VECTOR_NAMES

Fusion = Literal["rrf", "dbsf", "relevance"]
FUSIONS: tuple[Fusion, ...] = ("rrf", "dbsf", "relevance")
"""How the ranked lists are fused: RRF (ranks: each list adds ``1 / ((rank + 1) / w + k - 1)``, rank
from 0, which is ``1 / (k + rank)`` at weight 1) or DBSF (each list's scores normalised by their mean
and three standard deviations, then summed; no weights), both in the engine; or relevance (each hit's
standing above its own vector's background, plus its words, as a relevance in [0, 1]; a node by its
best vector: ``store/relevance.py``), on our side over the engine's lists."""


@dataclass(frozen=True)
class MmrStage:
    """Diversity as the last stage (maximal marginal relevance, as Qdrant defines it): from the fused
    list's ``candidates`` best, hits are picked one at a time, each the candidate with the highest
    ``lambda_ * relevance - (1 - lambda_) * (its highest similarity to a hit already picked)``, where
    similarities are cosines in the model's shared space and the first pick is the most relevant.
    ``using``: the one dense vector every candidate carries, so the engine runs it; None: candidates
    carry different vectors (texts and images) or documents are capped, and ``store.diversity`` runs it,
    each candidate standing by the first vector of ``order`` it has (the query's modality first, the
    vector the dense search ranked it by)."""

    vector: list[float]
    lambda_: float
    candidates: int
    using: Optional[str]
    order: tuple[str, ...]


@dataclass(frozen=True)
class GroupStage:
    """At most ``per_document`` hits per document, the places of the rest filled from further down
    the fused list. The document is the metadata value of ``key`` when set and present, else the
    node's ``ref_doc_id``, else the node itself (``store.grouping.document_of``)."""

    per_document: int
    key: Optional[str] = None


DEFAULT_MMR_LAMBDA = 0.5
"""LlamaIndex's default ``mmr_threshold`` (``get_top_k_mmr_embeddings``)."""
DEFAULT_MMR_CANDIDATES_PER_HIT = 5
"""MMR's candidate pool per hit returned: 50 for a top 10 (LangChain's default is 5x too: 20 for 4)."""


def mmr_lambda(mode_is_mmr: bool, given: Optional[float], query_threshold: Optional[float]) -> Optional[float]:
    """MMR's lambda when the query asks for MMR (the MMR mode, or a lambda given as the store's
    ``mmr_threshold=`` argument or the query's own field), else None."""
    lambda_ = given if given is not None else query_threshold
    if lambda_ is None and mode_is_mmr:
        lambda_ = DEFAULT_MMR_LAMBDA
    if lambda_ is not None and (isinstance(lambda_, bool) or not isinstance(lambda_, (int, float))
                                or not 0.0 <= lambda_ <= 1.0):
        raise ValueError(f"mmr_threshold (MMR's lambda) must be in [0, 1] (1 = relevance only), got {lambda_!r}")
    return None if lambda_ is None else float(lambda_)


def mmr_stage(vector: list[float], lambda_: float, dense: Sequence[str], query_modality: str,
              candidates: Optional[int], limit: int, group: Optional[GroupStage]) -> MmrStage:
    """The MMR stage of a query searching the dense vectors ``dense``, returning ``limit`` hits."""
    pool = candidates if candidates is not None else DEFAULT_MMR_CANDIDATES_PER_HIT * limit
    if isinstance(pool, bool) or not isinstance(pool, int) or pool < 1:
        raise ValueError(f"mmr_candidates must be a positive integer, got {pool!r}")
    order = tuple(name for name in dict.fromkeys((query_modality, *DENSE_VECTOR_NAMES)) if name in dense)
    # The engine's MMR compares one named vector: it runs it when every candidate carries that vector
    # (the query searches a single dense vector) and no document cap has to steer its picks.
    using = dense[0] if len(dense) == 1 and group is None else None
    return MmrStage(vector, lambda_, max(pool, limit), using, order)


def group_stage(per_document: Optional[int], key: Optional[str]) -> Optional[GroupStage]:
    """The one-hit-per-document stage (None: no cap), checked."""
    if per_document is None:
        return None
    if isinstance(per_document, bool) or not isinstance(per_document, int) or per_document < 1:
        raise ValueError(f"max_per_document must be a positive integer, got {per_document!r}")
    if key is not None and not (isinstance(key, str) and key):
        raise ValueError(f"document_key must be a metadata key (text), got {key!r}")
    return GroupStage(per_document, key)
