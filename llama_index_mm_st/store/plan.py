"""Pure planning, no I/O: LlamaIndex nodes -> points, a ``VectorStoreQuery`` -> branches fused by RRF.

The backends turn these plain records into their own request objects, so what the store asks
Qdrant for is decided (and tested) here, once.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Literal, Mapping, Optional, Sequence

from llama_index.core.schema import BaseNode, ImageNode, TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode
from llama_index.core.vector_stores.utils import metadata_dict_to_node
from qdrant_client import models

from llama_index_mm_st.defaults import DEFAULT_RRF_K
from llama_index_mm_st.errors import SchemaMismatchError
from llama_index_mm_st.multivector import check_multivector, node_multivector
from llama_index_mm_st.store import filters as F
from llama_index_mm_st.store.stages import FUSIONS, Fusion, GroupStage, MmrStage, group_stage, mmr_lambda, mmr_stage
from llama_index_mm_st.store.schema import (
    MODALITY_KEY,
    NODE_CONTENT_KEY,
    NODE_TYPE_KEY,
    REF_DOC_ID_KEY,
    LEARNED_SPARSE_NAME,
    RESERVED_PAYLOAD_KEYS,
    SPARSE_VECTOR_NAME,
)
from llama_index_mm_st.ids import point_id
from llama_index_mm_st.inputs import QUERY_MODALITIES, NodeParts, QueryModality, read_node, storable
from llama_index_mm_st.types import DENSE_VECTOR_NAMES, Modality, SparseVector

SparseEncoder = Callable[[str], SparseVector]
"""Text -> its BM25 sparse vector (``store.bm25``)."""


@dataclass(frozen=True)
class PointSpec:
    """One point to upsert: id, named dense vectors, the optional BM25 vector, payload. ``node_id``
    names the node in errors (the point id is derived from it)."""

    id: str
    dense: Mapping[str, Sequence[float]]
    sparse: Optional[SparseVector]
    payload: dict[str, Any]
    node_id: str = ""
    multivector: Optional[Any] = None
    """A late-interaction collection's (tokens, dim) float32 matrix, scored by MaxSim."""
    learned_sparse: Optional[SparseVector] = None
    """The learned sparse model's vector of the node's words (``StoreSchema.learned_sparse``)."""


def bm25_text(parts: NodeParts, metadata_keys: Sequence[str]) -> str:
    """The words BM25 indexes: the node's words plus caption-like metadata (alt text, OCR) when present."""
    words = parts.words
    metadata = parts.node.metadata
    extra = [value for key in metadata_keys if isinstance(value := metadata.get(key), str)]
    if not extra:  # the common case: the node's own words only
        return words if words and not words.isspace() else ""
    texts = [words]
    for value in extra:
        if value not in texts:
            texts.append(value)
    return "\n".join(t for t in texts if t and t.strip())


def dense_vectors(parts: NodeParts) -> dict[str, Sequence[float]]:
    """The node's named dense vectors, read from the fields ``NodeParts.vector_fields`` names (the one
    rule: a node with pixels keeps its image vector in ``embedding`` and its words' in ``text_embedding``)."""
    fields = parts.node.__dict__  # ``node_field``: pydantic fields without the slow attribute fallback
    return {name: vec for name, fieldname in parts.vector_fields.items() if (vec := fields.get(fieldname)) is not None}


def with_vectors(node: BaseNode, vectors: Mapping[str, Sequence[float]]) -> BaseNode:
    """A node read back with its stored vectors in the fields ``NodeParts.vector_fields`` names, so
    ``other_store.add(store.get_nodes())`` moves a store the way LlamaIndex stores move nodes."""
    for name, fieldname in read_node(node).vector_fields.items():
        vector = vectors.get(name)
        if vector is not None and fieldname in type(node).model_fields:
            setattr(node, fieldname, list(vector))
    return node


def check_vector(vector: Sequence[float], what: str) -> None:
    """Refuse NaN and infinity: a stored one poisons every search that meets it, a query one finds nothing.

    The C-speed ``sum`` is finite for almost every finite vector; only when it is not (a non-finite
    entry, or an overflow) are the entries checked one by one.
    """
    if math.isfinite(sum(vector)):
        return
    bad = next((i for i, x in enumerate(vector) if not math.isfinite(x)), None)
    if bad is not None:
        raise ValueError(f"{what} has a non-finite value ({vector[bad]}) at position {bad}")


JSON_INT_RANGE = (-(2**63), 2**63 - 1)
"""Qdrant stores integers as 64-bit signed; a larger Python int can't be a payload value."""


def check_payload_value(value: Any, where: str) -> None:
    """Refuse what a Qdrant payload can't hold, naming the key: only JSON values (finite numbers,
    64-bit integers, valid Unicode text, lists, objects with text keys, null) go in."""
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"{where} is not valid Unicode text ({exc.reason} at {exc.start})") from None
        return
    if isinstance(value, int):
        if not JSON_INT_RANGE[0] <= value <= JSON_INT_RANGE[1]:
            raise ValueError(f"{where} = {value} does not fit a 64-bit integer")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} = {value} is not a finite number")
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_payload_value(item, f"{where}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where} has a key {key!r} that is not text")
            check_payload_value(key, f"{where} key")
            check_payload_value(item, f"{where}.{key}")
        return
    raise ValueError(f"{where} has type {type(value).__name__}, which is not a JSON value")


def node_payload(parts: NodeParts) -> dict[str, Any]:
    """LlamaIndex's node payload layout, with images by reference and no vectors inside.

    LlamaIndex also writes ``doc_id`` and ``document_id``, copies of ``ref_doc_id`` that nothing
    here reads. They are left out: qdrant-edge-py 0.9 spends about 8 µs converting each string
    value of a payload, a tenth of a point's upsert cost.
    """
    node = parts.node
    exclude: dict[str, Any] = {"embedding": True, "text_embedding": True}
    if parts.has_reference:  # inline base64 only when there is nothing else to point at
        if isinstance(node, ImageNode):
            exclude["image"] = True
        else:
            exclude["image_resource"] = {"data": True}
    payload = dict(node.metadata)
    try:
        payload[NODE_CONTENT_KEY] = node.model_dump_json(exclude=exclude)
    except ValueError as exc:  # pydantic's PydanticSerializationError is a ValueError
        raise ValueError(f"node {node.node_id} cannot be serialised: {exc}") from None
    payload[NODE_TYPE_KEY] = node.class_name()
    payload[MODALITY_KEY] = parts.modality
    payload[REF_DOC_ID_KEY] = node.ref_doc_id or "None"
    return payload


def check_node(parts: NodeParts, dim: int, names: Sequence[str] = DENSE_VECTOR_NAMES) -> dict[str, Sequence[float]]:
    """A node's dense vectors, checked; a node without one, with a wrong-sized or non-finite one, with
    a vector the store has no place for (audio in a store made before audio), or with metadata a
    payload can't hold is refused by name before anything is written."""
    node = parts.node
    dense = dense_vectors(parts)
    if not dense.keys() <= set(names):
        missing = sorted(set(dense) - set(names))[0]
        raise ValueError(
            f"node {node.node_id}: this store has no {missing!r} vector (it holds {list(names)}: it was made "
            f"before {missing} support, or with dense_vectors leaving {missing} out); put {missing} in a new store"
        )
    if not dense:
        raise ValueError(
            f"node {node.node_id} has no embedding; embed it first (a node with pixels: embedding=image vector, "
            "text_embedding=text vector)"
        )
    for name, vec in dense.items():
        if len(vec) != dim:
            raise ValueError(f"node {node.node_id}: {name} vector has {len(vec)} dimensions, the store has {dim}")
        if not math.isfinite(sum(vec)):  # the C-speed check; ``check_vector`` finds the entry when it fails
            check_vector(vec, f"node {node.node_id}: {name} vector")
    metadata = node.metadata
    if metadata:
        clash = RESERVED_PAYLOAD_KEYS.intersection(metadata)
        if clash:
            raise ValueError(f"node {node.node_id}: metadata keys {sorted(clash)} are reserved by the store")
        for key, value in metadata.items():
            if not _plainly_fits(value):  # the full check names what does not fit
                check_payload_value(value, f"node {node.node_id}: metadata {key!r}")
    return dense


def _plainly_fits(value: object) -> bool:
    """The common payload values that certainly fit, told apart cheaply: ASCII text, a bool, a 64-bit
    int, a finite float. Anything else gets ``check_payload_value`` (which accepts much more)."""
    kind = value.__class__
    if kind is str:
        return value.isascii()  # type: ignore[attr-defined]
    if kind is float:
        return math.isfinite(value)  # type: ignore[arg-type]
    if kind is bool:
        return True
    return kind is int and JSON_INT_RANGE[0] <= value <= JSON_INT_RANGE[1]  # type: ignore[operator]


def point_multivector(node: BaseNode, dim: int, late: bool) -> Optional[Any]:
    """The node's multivector, checked, in a late-interaction collection; None in a single-vector one.
    A node of the other kind is refused by name: the two kinds can't share a collection."""
    matrix = node_multivector(node)
    if late and matrix is None:
        raise SchemaMismatchError(
            f"node {node.node_id} has no multivector (it was embedded by a single-vector model, or lost it in a "
            "copy), but the collection holds late-interaction multivectors; embed it with the collection's "
            "late-interaction model, or use another collection"
        )
    if not late and matrix is not None:
        raise SchemaMismatchError(
            f"node {node.node_id} carries a late-interaction multivector, but the collection holds single vectors "
            "per node (CLIP-style); use another collection for the late-interaction model"
        )
    return None if matrix is None else check_multivector(matrix, dim, f"node {node.node_id}")


def node_to_point(node: BaseNode, dim: int, encode: Optional[SparseEncoder], bm25_keys: Sequence[str],
                  names: Sequence[str] = DENSE_VECTOR_NAMES, late: bool = False) -> PointSpec:
    """One node -> one point, checked by ``check_node`` (so a bad node raises before anything is written).
    The multivector is read from the node as given: ``storable`` may build a new node object.
    ``encode`` None: the collection has no BM25 vector (a learned sparse model replaced it)."""
    stored = storable(node)
    return parts_to_point(read_node(stored) if stored is not node else None, node, dim, encode, bm25_keys, names, late)


def parts_to_point(parts: Optional[NodeParts], node: BaseNode, dim: int, encode: Optional[SparseEncoder],
                   bm25_keys: Sequence[str], names: Sequence[str] = DENSE_VECTOR_NAMES, late: bool = False) -> PointSpec:
    """``node_to_point`` for a node already read (``parts``, of a node in its stored form): the
    ingestion job reads each node once and hands the reading on."""
    multivector = point_multivector(node, dim, late)
    parts = parts if parts is not None else read_node(node)
    dense = check_node(parts, dim, names)
    indexed = bm25_text(parts, bm25_keys)
    sparse = encode(indexed) if indexed and encode is not None else None
    if sparse is not None and not len(sparse.indices):
        sparse = None
    payload = node_payload(parts)
    return PointSpec(point_id(node.node_id), dense, sparse, payload, node.node_id, multivector)


_NODE_CLASSES: dict[str, type[BaseNode]] = {cls.class_name(): cls for cls in (TextNode, ImageNode)}
"""Node types read back by validating their JSON in one step (pydantic-core parses and validates it
together, about 1.5x faster than LlamaIndex's ``json.loads`` + constructor). Their constructors only
translate the 0.14 ``*_resource`` keyword forms, which a ``model_dump_json`` of the type never holds,
so skipping them gives the same node. Other types go through LlamaIndex's own ``metadata_dict_to_node``."""

READ_BACK_KEYS = (NODE_CONTENT_KEY, NODE_TYPE_KEY)
"""The payload keys a node is rebuilt from; queries ask the engine for these alone."""


def payload_to_node(payload: Mapping[str, Any]) -> BaseNode:
    cls = _NODE_CLASSES.get(payload.get(NODE_TYPE_KEY))  # type: ignore[arg-type]
    content = payload.get(NODE_CONTENT_KEY)
    if cls is None or not isinstance(content, str):
        return metadata_dict_to_node(dict(payload))
    return cls.model_validate_json(content)


# ---------------------------------------------------------------- queries


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
    allowed = [modality, "text+image"] if modality in ("text", "image") else [modality]
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
