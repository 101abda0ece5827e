"""The collection schema: which vectors a point carries, which payload keys are ours, which index
type a metadata value gets. Both backends create and validate collections from this one record,
so an Edge shard and a server collection are laid out the same way.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass
from typing import Any, Collection, Literal, Mapping, Optional

from llama_index_mm_st.errors import SchemaMismatchError
from llama_index_mm_st.types import DENSE_VECTOR_NAMES

SPARSE_VECTOR_NAME = "bm25"
LEARNED_SPARSE_NAME = "learned"
"""The named sparse vector of a learned sparse model (a sentence-transformers ``SparseEncoder``,
e.g. SPLADE), beside BM25 or instead of it: its weights are final, so the engine adds no IDF."""
LEGACY_DENSE_VECTOR_NAMES = ("text", "image")
"""The dense vectors of a store created before audio and video: such a store keeps opening with them."""
MULTIVECTOR_NAME = "late"
"""The named multivector of a late-interaction collection (one vector per token/patch, MaxSim)."""

# Payload keys written by the store. The node layout follows LlamaIndex's ``node_to_metadata_dict``
# so ``metadata_dict_to_node`` reads our points back; ``modality`` is ours.
MODALITY_KEY = "modality"
NODE_CONTENT_KEY = "_node_content"
NODE_TYPE_KEY = "_node_type"
REF_DOC_ID_KEY = "ref_doc_id"
DOC_ID_KEY = "doc_id"
DOCUMENT_ID_KEY = "document_id"
RESERVED_PAYLOAD_KEYS = frozenset(
    {MODALITY_KEY, NODE_CONTENT_KEY, NODE_TYPE_KEY, REF_DOC_ID_KEY, DOC_ID_KEY, DOCUMENT_ID_KEY}
)
KEYWORD_INDEXED_KEYS = (MODALITY_KEY, REF_DOC_ID_KEY)

Quantization = Literal["int8", "binary"]
QUANTIZATIONS: tuple[Quantization, ...] = ("int8", "binary")
VectorDatatype = Literal["float32", "float16"]
STORAGE_OPTIONS = ("quantization", "on_disk", "vector_datatype", "wal", "multivector_datatype", "multivector_quantization")
"""How the vectors are kept: recorded with the collection, so a reopened store knows them."""

IndexKind = Literal["keyword", "integer", "float", "bool", "datetime", "text", "uuid"]
INDEX_KINDS: tuple[IndexKind, ...] = ("keyword", "integer", "float", "bool", "datetime", "text", "uuid")


@dataclass(frozen=True)
class StoreSchema:
    """What a collection holds: one cosine dense vector per modality, one BM25 sparse vector with IDF,
    and optionally a learned sparse vector (``sparse_model``) beside BM25 or instead of it.

    ``bm25_language`` is part of the schema because another language tokenises and stems
    differently, so stored sparse vectors would no longer match query vectors.

    The storage options say how the dense vectors are kept: ``quantization`` (a compressed copy in
    RAM that searches run on, rescored by the originals), ``on_disk`` (the originals memory-mapped
    from disk instead of held in RAM) and ``vector_datatype`` (float16 halves the originals).
    """

    dim: int
    dense: tuple[str, ...] = DENSE_VECTOR_NAMES
    sparse: Optional[str] = SPARSE_VECTOR_NAME  # None: a learned sparse model replaced BM25
    distance: str = "cosine"
    idf: bool = True
    bm25_language: Optional[str] = "english"
    quantization: Optional[str] = None  # one of QUANTIZATIONS for our collections; a server may report others
    on_disk: bool = False
    vector_datatype: str = "float32"
    wal: bool = True  # Edge: a shard created without its write-ahead log can never turn it on
    multivector: Optional[str] = None  # MULTIVECTOR_NAME in a late-interaction collection, else None
    multivector_datatype: str = "float32"
    multivector_quantization: Optional[str] = None
    learned_sparse: Optional[str] = None  # LEARNED_SPARSE_NAME when a learned sparse model fills a vector
    sparse_model: Optional[str] = None  # the SparseEncoder (hub id or folder) that fills it
    hnsw_ef: Optional[int] = None  # the search width ``target_recall`` chose, measured on this collection
    target_recall: Optional[float] = None  # the target that width was measured for
    exact_search: bool = False  # tuning found no width reaching the target, and exact search no slower

    @property
    def sparse_vectors(self) -> tuple[str, ...]:
        """The named sparse vectors points carry: BM25 unless a learned model replaced it, then the learned one."""
        return tuple(name for name in (self.sparse, self.learned_sparse) if name)

    @property
    def late_interaction(self) -> bool:
        """Whether points carry a multivector scored by MaxSim (a ColPali-family collection)."""
        return self.multivector is not None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["dense"] = list(self.dense)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "StoreSchema":
        return cls(
            dim=int(data["dim"]),
            dense=tuple(data.get("dense", LEGACY_DENSE_VECTOR_NAMES)),
            sparse=None if data.get("sparse", SPARSE_VECTOR_NAME) is None else str(data.get("sparse", SPARSE_VECTOR_NAME)),
            distance=str(data.get("distance", "cosine")).lower(),
            idf=bool(data.get("idf", True)),
            bm25_language=data.get("bm25_language"),
            # A record written before the storage options existed describes full float32 vectors in RAM.
            quantization=data.get("quantization"),
            on_disk=bool(data.get("on_disk", False)),
            vector_datatype=data.get("vector_datatype", "float32"),
            wal=bool(data.get("wal", True)),
            multivector=data.get("multivector"),
            multivector_datatype=data.get("multivector_datatype", "float32"),
            multivector_quantization=data.get("multivector_quantization"),
            # A record from before learned sparse vectors and recall tuning has BM25 alone and no tuned width.
            learned_sparse=data.get("learned_sparse"),
            sparse_model=data.get("sparse_model"),
            hnsw_ef=None if data.get("hnsw_ef") is None else int(data["hnsw_ef"]),
            target_recall=None if data.get("target_recall") is None else float(data["target_recall"]),
            exact_search=bool(data.get("exact_search", False)),
        )


def check_schema(where: str, existing: StoreSchema, wanted: StoreSchema, dim_given: bool,
                 options_given: Collection[str] = STORAGE_OPTIONS) -> None:
    """Raise ``SchemaMismatchError`` listing every difference; silence would corrupt the store.

    ``dim_given`` is False when the caller let the dimension come from the collection; likewise only
    the storage options in ``options_given`` are compared (the others are taken from the collection).
    A language of ``None`` on the existing side means the backend could not record it (an older collection).
    """
    problems = []
    if dim_given and existing.dim != wanted.dim:
        problems.append(f"dimension {existing.dim} != requested {wanted.dim}")
    if set(existing.dense) != set(wanted.dense):
        problems.append(f"dense vectors {sorted(existing.dense)} != {sorted(wanted.dense)}")
    if existing.multivector != wanted.multivector:
        problems.append(kind_mismatch(existing.late_interaction, wanted.late_interaction))
    if existing.sparse != wanted.sparse:
        problems.append(f"sparse vector {existing.sparse!r} != {wanted.sparse!r}"
                        + (" (a learned sparse model replaced BM25 here)" if existing.sparse is None else ""))
    if existing.learned_sparse != wanted.learned_sparse:
        problems.append("the collection has no learned sparse vector (it was made without sparse_model=)"
                        if existing.learned_sparse is None else
                        f"the collection has a learned sparse vector ({existing.sparse_model!r}) that was not requested")
    elif existing.sparse_model is not None and existing.sparse_model != wanted.sparse_model:
        problems.append(f"sparse model {existing.sparse_model!r} != requested {wanted.sparse_model!r} (its vectors "
                        "would not match another model's queries)")
    if existing.distance != wanted.distance:
        problems.append(f"distance {existing.distance!r} != {wanted.distance!r}")
    if existing.sparse is not None and existing.idf != wanted.idf:
        problems.append("sparse vector has no IDF modifier")
    if existing.bm25_language is not None and existing.bm25_language != wanted.bm25_language:
        problems.append(f"bm25 language {existing.bm25_language!r} != {wanted.bm25_language!r}")
    for option in STORAGE_OPTIONS:
        have, want = getattr(existing, option), getattr(wanted, option)
        if option in options_given and have != want:
            problems.append(f"{option} {have!r} != requested {want!r}")
    if problems:
        raise SchemaMismatchError(f"{where} does not match the requested schema: " + "; ".join(problems))


def _kind(late: bool) -> str:
    return "late-interaction multivectors (one vector per token or patch, MaxSim)" if late else "single vectors per node (CLIP-style)"


def kind_mismatch(collection_late: bool, given_late: bool, given: str = "were requested") -> str:
    """Why single vectors and multivectors can't meet: each is ranked on its own scale, and a
    point without a multivector could never be found by a MaxSim query."""
    return (f"the collection holds {_kind(collection_late)} but {_kind(given_late)} {given}; one collection can't "
            "mix them (use another collection, or the model the collection was built with)")


def infer_index_kind(value: Any) -> Optional[IndexKind]:
    """The payload index type for a metadata value, or None when it gets none (None, dicts, empty lists).

    All numbers get a float index: an integer index silently drops float values (measured on Edge:
    ``x > 2`` misses ``x = 2.5``), and the filter planner turns numeric equality into ranges,
    which a float index serves.
    """
    if isinstance(value, list):
        kinds = {infer_index_kind(v) for v in value if v is not None}
        return kinds.pop() if len(kinds) == 1 else None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "float"
    if isinstance(value, str):
        return "keyword"
    if isinstance(value, (_dt.datetime, _dt.date)):
        return "datetime"
    return None
