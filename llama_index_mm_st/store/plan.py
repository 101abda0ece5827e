"""The query planner, pure and without I/O: a ``VectorStoreQuery`` -> ranked lists (branches) fused
in the engine, under one filter, with optional last stages (MMR, a cap per document).

The backends turn these plain records into their own request objects, so what the store asks
Qdrant for is decided (and tested) here, once. Nodes -> points is the payload codec, ``payload.py``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Optional, Sequence

from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode
from qdrant_client import models

from llama_index_mm_st.defaults import DEFAULT_RRF_K
from llama_index_mm_st.ids import point_id
from llama_index_mm_st.inputs import QUERY_MODALITIES, QueryModality
from llama_index_mm_st.store import filters as F
from llama_index_mm_st.store.payload import SparseEncoder, check_vector
from llama_index_mm_st.store.schema import LEARNED_SPARSE_NAME, MODALITY_KEY, REF_DOC_ID_KEY, SPARSE_VECTOR_NAME
from llama_index_mm_st.store.stages import FUSIONS, Fusion, GroupStage, MmrStage, group_stage, mmr_lambda, mmr_stage
from llama_index_mm_st.types import Modality


@dataclass(frozen=True)
class SearchSettings:
    """How a dense search runs: ``hnsw_ef`` is the graph search width (None: the engine's); on a
    quantized store ``oversampling`` times the limit is drawn by the compressed vectors, then
    ``rescore`` re-ranks those by the originals (what keeps recall). ``quantized`` False: no
    quantization parameters are sent."""

    hnsw_ef: Optional[int] = None
    quantized: bool = False
    rescore: bool = True
    oversampling: Optional[float] = None
    exact: bool = False
    """Compare every vector by its original (no graph, no compressed copy): a recall estimate's ground truth."""


@dataclass(frozen=True)
class Branch:
    """One ranked list: nearest points by the named vector ``using``, among points matching the plan's
    filter and, when set, the branch's own ``restriction``."""

    using: str
    vector: Any  # list[float] for dense, SparseVector for bm25
    limit: int
    restriction: Optional[models.Filter] = None
    search: Optional[SearchSettings] = None


@dataclass(frozen=True)
class LateStage:
    """Late interaction, two-stage: the dense branches (pooled vectors) each prefetch
    ``prefetch_limit`` candidates, then ``vector`` (the query's token vectors) ranks their union
    by exact MaxSim over the stored multivector ``using``."""

    using: str
    vector: list[list[float]]
    prefetch_limit: int
    search: Optional[SearchSettings] = None


@dataclass(frozen=True)
class QueryPlan:
    """Branches fused inside the engine (RRF or DBSF; one branch: searched directly), all under
    ``filter`` (metadata filters, ids and the modality tag), which a backend translates once. With
    ``late``, the dense branches are prefetches of one MaxSim-ranked list, which is fused with the
    others. ``mmr`` and ``group`` are last stages over the fused list; ``limit`` is always the number
    of hits returned."""

    branches: list[Branch]
    limit: int
    filter: Optional[models.Filter]
    rrf_k: int = DEFAULT_RRF_K
    weights: Optional[list[float]] = None
    late: Optional[LateStage] = None
    with_multivector: bool = False
    """Return each hit's multivector (late interaction: so a MaxSim reranker needs no re-encoding)."""
    fused: bool = True
    """Rank by fusion over the branches, however many there are (a dense or hybrid query), so a score
    means the same whichever vectors the collection holds and whichever backend runs it. False: the
    one branch ranks by its own score (a single sparse branch)."""
    fusion: Fusion = "rrf"
    mmr: Optional[MmrStage] = None
    group: Optional[GroupStage] = None
    with_dense: tuple[str, ...] = ()
    """Dense vectors each hit comes back with (what our own MMR compares)."""


@dataclass(frozen=True)
class QueryOptions:
    """Store-level query settings, overridable per query."""

    dense: tuple[str, ...]
    hybrid: bool = False
    modality: Optional[Modality] = None
    rrf_k: int = DEFAULT_RRF_K
    weights: Mapping[str, float] = field(default_factory=dict)
    query_modality: QueryModality = "text"
    search: Optional[SearchSettings] = None
    """Search parameters for the dense branches (graph width, quantization)."""
    late: Optional[LateStage] = None
    """A late-interaction collection's MaxSim stage (None: rank by the dense vectors themselves)."""
    with_multivector: bool = False
    bm25: bool = True
    """Whether the collection has the BM25 vector (a learned sparse model may have replaced it)."""
    fusion: Fusion = "rrf"
    mmr: Optional[float] = None
    """MMR's lambda (LlamaIndex's ``mmr_threshold``: 1 = relevance only, 0 = diversity only); None: no MMR
    unless the query asks for it (``stages.mmr_lambda``)."""
    mmr_candidates: Optional[int] = None
    """Fused hits MMR chooses from; None: ``stages.DEFAULT_MMR_CANDIDATES_PER_HIT`` x the hits returned."""
    max_per_document: Optional[int] = None
    document_key: Optional[str] = None


SPARSE_BRANCHES = (SPARSE_VECTOR_NAME, LEARNED_SPARSE_NAME)
"""The word-level (sparse) branches: BM25 and the learned sparse model."""


@functools.lru_cache(maxsize=None)
def dense_restriction(using: str, query_modality: QueryModality) -> Optional[models.Filter]:
    """Rank every node once by dense similarity, never twice.

    A node with pixels and words carries both vectors; if both dense lists ranked it, RRF would add
    its two ranks and it would beat an exact match that only one list holds (an identical image
    under a PDF page with text). So the list of the query's own modality ranks every node that has
    that vector, and the other list only nodes that lack it (pure images for a text query, pure texts
    for an image query).
    """
    if using == query_modality:
        return None
    return models.Filter(must_not=[models.HasVectorCondition(has_vector=query_modality)])


_DENSE_MODES = (VectorStoreQueryMode.DEFAULT, VectorStoreQueryMode.HYBRID, VectorStoreQueryMode.MMR)
_SPARSE_MODES = (VectorStoreQueryMode.SPARSE, VectorStoreQueryMode.TEXT_SEARCH)


def modality_condition(modality: Optional[Modality]) -> Optional[models.FieldCondition]:
    """Restrict to points that carry a modality: "image" keeps captioned images ("text+image") too."""
    if modality is None:
        return None
    allowed: list[str] = [modality, "text+image"] if modality in ("text", "image") else [modality]
    return models.FieldCondition(key=MODALITY_KEY, match=models.MatchAny(any=allowed))


MATCH_NOTHING = models.HasIdCondition(has_id=[])
"""A condition no point meets (an empty id list)."""


def query_filter(query: VectorStoreQuery, modality: Optional[Modality]) -> Optional[models.Filter]:
    """Metadata filters AND doc_ids AND node_ids AND the modality restriction."""
    return F.all_of(
        [
            F.to_qdrant_filter(query.filters) if query.filters and query.filters.filters else None,
            # LlamaIndex: doc_ids=[] matches no document, while node_ids=[] is no restriction (its
            # retriever passes the index's empty node list by default when the store holds the text).
            (models.FieldCondition(key=REF_DOC_ID_KEY, match=models.MatchAny(any=list(query.doc_ids)))
             if query.doc_ids else MATCH_NOTHING) if query.doc_ids is not None else None,
            models.HasIdCondition(has_id=[point_id(i) for i in query.node_ids]) if query.node_ids else None,
            modality_condition(modality),
        ]
    )


def plan_query(query: VectorStoreQuery, opts: QueryOptions, encode_query: SparseEncoder,
               encode_learned: Optional[SparseEncoder] = None) -> QueryPlan:
    """Dense: one branch per named vector. Hybrid (mode, or store option): plus the sparse branches on
    the query text (BM25, and the learned sparse model's when the collection has one). MMR (mode, or
    a lambda in ``opts.mmr``) and ``max_per_document`` add their last stages."""
    mode = VectorStoreQueryMode(query.mode)
    if mode not in _DENSE_MODES + _SPARSE_MODES:
        raise ValueError(
            f"query mode {mode.value!r} is not supported; use one of "
            f"{[m.value for m in _DENSE_MODES + _SPARSE_MODES]}"
        )
    if opts.query_modality not in QUERY_MODALITIES:
        raise ValueError(f"query_modality must be one of {QUERY_MODALITIES}, got {opts.query_modality!r}")
    if opts.fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {list(FUSIONS)}, got {opts.fusion!r}")
    lambda_ = mmr_lambda(mode == VectorStoreQueryMode.MMR, opts.mmr, query.mmr_threshold)
    top_k = query.similarity_top_k
    sparse_k = query.sparse_top_k or top_k
    common = query_filter(query, opts.modality)
    branches: list[Branch] = []
    vector: Optional[list[float]] = None
    if mode in _DENSE_MODES:
        if query.query_embedding is None:
            raise ValueError(f"a {mode.value} query needs query_embedding")
        embedding = query.query_embedding
        # A numpy query vector becomes Python floats in one C call: pyo3 reads numpy scalars one by one, slowly.
        vector = embedding.tolist() if hasattr(embedding, "tolist") else list(embedding)
        check_vector(vector, "the query embedding")
        dense_k = top_k if opts.late is None else max(top_k, opts.late.prefetch_limit)
        branches += [
            Branch(name, vector, dense_k, dense_restriction(name, opts.query_modality), opts.search)
            for name in opts.dense
        ]
    wants_sparse = mode in _SPARSE_MODES or mode == VectorStoreQueryMode.HYBRID or opts.hybrid
    if wants_sparse and query.query_str:
        encoders = [(SPARSE_VECTOR_NAME, encode_query if opts.bm25 else None), (LEARNED_SPARSE_NAME, encode_learned)]
        for name, encode in encoders:
            sparse = encode(query.query_str) if encode is not None else None
            if sparse is not None and len(sparse.indices):
                branches.append(Branch(name, sparse, sparse_k))
    elif mode in _SPARSE_MODES:
        raise ValueError(f"a {mode.value} query needs query_str")
    if mode in _SPARSE_MODES:
        limit = sparse_k
    elif mode == VectorStoreQueryMode.HYBRID or len(branches) > len(opts.dense):
        limit = query.hybrid_top_k or top_k
    else:
        limit = top_k
    late = opts.late if mode in _DENSE_MODES else None
    if late is not None:
        weights = _late_weights(branches, opts.weights, query.alpha)
    else:
        weights = _weights(branches, opts.weights, query.alpha, opts.query_modality)
    if opts.fusion == "dbsf":
        if query.alpha is not None or opts.weights:
            raise ValueError("weights (rrf_weights, alpha) apply to RRF fusion; DBSF normalises each list's scores "
                             "and takes none: leave them out, or use fusion='rrf'")
        weights = None
    group = group_stage(opts.max_per_document, opts.document_key)
    mmr = None
    if lambda_ is not None:
        if vector is None:
            raise ValueError("MMR needs a dense query (it compares the candidates' dense vectors); use a dense, "
                             "hybrid or mmr query, not a sparse one")
        if late is not None:
            raise ValueError("MMR compares single dense vectors and can't follow a MaxSim (late interaction) "
                             "ranking; leave MMR out, or query by the pooled vector alone")
        mmr = mmr_stage(vector, lambda_, opts.dense, opts.query_modality, opts.mmr_candidates, limit, group)
        branches = [replace(b, limit=max(b.limit, mmr.candidates)) for b in branches]
    fused = mode not in _SPARSE_MODES or len(branches) > 1
    return QueryPlan(branches=branches, limit=limit, filter=common, rrf_k=opts.rrf_k, weights=weights, late=late,
                     with_multivector=opts.with_multivector, fused=fused, fusion=opts.fusion, mmr=mmr, group=group,
                     with_dense=() if mmr is None or mmr.using is not None else mmr.order)


def _late_weights(branches: Sequence[Branch], weights: Mapping[str, float], alpha: Optional[float]) -> Optional[list[float]]:
    """RRF weights of a late-interaction plan: the MaxSim list, then BM25 when present."""
    sparse = [b.using for b in branches if b.using in SPARSE_BRANCHES]
    if not sparse:
        return None
    if alpha is not None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        return [alpha] + [1.0 - alpha] * len(sparse)
    chosen = [1.0] + [float(weights.get(name, 1.0)) for name in sparse]
    return None if all(w == 1.0 for w in chosen) else chosen


CROSS_MODAL_TIE_BREAK = 0.999
"""Default RRF weight of the dense list of the other modality. Each list's winner scores 1/k, so the
best image for a text query would tie with the best text; the query's own modality wins such ties
(0.999/k still sorts above 1/(k+1), so the cross-modal winner stays right behind)."""


def _weights(branches: Sequence[Branch], weights: Mapping[str, float], alpha: Optional[float],
             query_modality: QueryModality = "text") -> Optional[list[float]]:
    """Per-branch RRF weights. LlamaIndex's ``alpha`` (0 = bm25 only, 1 = dense only) overrides them."""
    if alpha is not None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        return [1.0 - alpha if b.using in SPARSE_BRANCHES else alpha for b in branches]
    cross_modal = {name for name in QUERY_MODALITIES if name != query_modality}
    chosen = [float(weights.get(b.using, CROSS_MODAL_TIE_BREAK if b.using in cross_modal else 1.0)) for b in branches]
    return None if all(w == 1.0 for w in chosen) else chosen
