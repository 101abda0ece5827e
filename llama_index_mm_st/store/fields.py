"""``StoreFields``: the settings of a ``MultimodalQdrantStore``, one pydantic field each with its description.

Apart from the methods so the fields read as one list, and ``docs.document_parameters`` turns their
descriptions into the store's ``help()``. They are the store's settings: its ``Collection`` reads
them live (a field set after construction applies to the next call), and never writes one.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from llama_index.core.bridge.pydantic import Field
from llama_index.core.vector_stores.types import BasePydanticVectorStore

from llama_index_mm_st.defaults import DEFAULT_RRF_K
from llama_index_mm_st.store.late import DEFAULT_PREFETCH_LIMIT
from llama_index_mm_st.store.schema import IndexKind, Quantization, VectorDatatype
from llama_index_mm_st.store.settings import DEFAULT_HNSW_EF
from llama_index_mm_st.store.stages import Fusion
from llama_index_mm_st.types import Modality


class StoreFields(BasePydanticVectorStore):
    """The store's pydantic fields (``MultimodalQdrantStore`` documents them)."""

    stores_text: bool = True

    collection_name: str = Field(default="mmst", description="Collection (Edge: sub-directory of path).")
    path: Optional[str] = Field(default=None, description="Edge store directory; None = temporary.")
    url: Optional[str] = Field(default=None, description="Qdrant server URL.")
    dim: Optional[int] = Field(default=None, description="Vector size; None = from the first insert.")
    hybrid: bool = Field(default=False, description="Add the BM25 branch to every query with text.")
    modality: Optional[Modality] = Field(default=None, description="Only return nodes with this modality.")
    rrf_k: int = Field(default=DEFAULT_RRF_K, gt=0, description="RRF k (pinned: local mode defaults to 2).")
    rrf_weights: Dict[str, float] = Field(
        default_factory=dict, description='Per-branch RRF weight, e.g. {"image": 2.0, "bm25": 0.5}.'
    )
    bm25_language: str = Field(default="english", description="qdrant_edge.Bm25 stemmer/stopwords language.")
    bm25_metadata_keys: List[str] = Field(
        default_factory=lambda: ["caption", "alt_text", "extracted_text"],
        description="Metadata keys whose text BM25 indexes besides the node text.",
    )
    payload_indexes: Dict[str, IndexKind] = Field(
        default_factory=dict, description="Metadata keys to index up front, key -> kind."
    )
    auto_index: bool = Field(default=True, description="Index new metadata keys on insert.")
    payload_hnsw: bool = Field(
        default=False,
        description="Build per-value HNSW links for metadata indexes: faster very selective filters, "
        "at the cost of a much slower optimize() (see docs/store.md).",
    )
    batch_size: int = Field(default=512, gt=0, description="Points per upsert request.")
    show_progress: Optional[bool] = Field(default=None, description="None = a bar for multi-batch adds on a TTY.")
    shard_number: Optional[int] = Field(default=None, description="Server/cluster: shards of a new collection.")
    replication_factor: Optional[int] = Field(default=None, description="Server/cluster: copies of each shard.")
    write_consistency_factor: Optional[int] = Field(default=None, description="Server/cluster: replicas that confirm a write.")
    quantization: Optional[Quantization] = Field(
        default=None, description='"int8" (4x smaller search copy) or "binary" (32x); kept in RAM, rescored '
        "by the originals. Recorded with the collection; left out, a reopen takes the collection's.",
    )
    on_disk: bool = Field(default=False, description="Keep the original vectors on disk (memory-mapped), not in RAM.")
    vector_datatype: VectorDatatype = Field(default="float32", description='"float16" halves the original vectors.')
    rescore: bool = Field(default=True, description="Re-rank what quantized vectors found by the original vectors.")
    oversampling: Optional[float] = Field(
        default=None, ge=1.0, description="Candidates per result drawn by quantized vectors; None = per-kind default.",
    )
    hnsw_ef: Optional[int] = Field(
        default=DEFAULT_HNSW_EF, gt=0,
        description="Graph search width per dense branch; wider = more recall, a little slower (see docs/store.md). "
        "None leaves the engine's own width.",
    )
    query_batch_size: int = Field(default=64, gt=0, description="Most concurrent aquery calls run as one engine batch.")
    wal: bool = Field(
        default=True, description="Edge: keep a write-ahead log. False builds a store without one, for good (the "
        "engine can't add it later): only flush() makes writes durable (see docs/store.md). Recorded in the schema.",
    )
    dense_vectors: Optional[List[str]] = Field(
        default=None, description="The modalities a new collection gets a dense vector for, among text, image, audio "
        "and video (text always). None: all four, or an existing collection's own. Each named vector keeps a slot "
        "for every point, held or not, so a text and image index without audio and video needs half the vector "
        "memory and disk (see docs/store.md). Recorded in the schema; a node of a left-out modality is refused.",
    )
    late_interaction: Optional[bool] = Field(
        default=None, description="Hold late-interaction multivectors (ColPali-family models, MaxSim). None: as the "
        "collection was built, else as the first nodes added (a late-interaction embedding's nodes carry one); "
        "with dim= the collection is made at once, so say True there.",
    )
    prefetch_limit: int = Field(
        default=DEFAULT_PREFETCH_LIMIT, gt=0,
        description="Late interaction: candidates each pooled dense branch hands to exact MaxSim rescoring.",
    )
    multivector_datatype: VectorDatatype = Field(
        default="float32", description='Late interaction: "float16" halves the stored multivectors.'
    )
    return_multivectors: bool = Field(
        default=True, description="Late interaction: query results carry their stored multivector (read by a "
        "MaxSim reranker built from the same model, instead of encoding the pages again).",
    )
    multivector_quantization: Optional[Quantization] = Field(
        default=None, description='Late interaction: "int8" or "binary" compressed multivectors in RAM; MaxSim '
        "on them picks oversampling x the limit, exact MaxSim over the originals ranks those.",
    )
    fusion: Fusion = Field(
        default="rrf", description='How the ranked lists are fused: "rrf" (by rank; rrf_k, rrf_weights) or "dbsf" '
        "(each list's scores normalised by its mean and 3 standard deviations, then summed; no weights).",
    )
    mmr_candidates: Optional[int] = Field(
        default=None, gt=0, description="MMR (mode MMR, or mmr_threshold=): fused hits it chooses from; None: 5 x "
        "the hits returned.",
    )
    max_per_document: Optional[int] = Field(
        default=None, gt=0, description="At most this many hits per document (ref_doc_id, or document_key), the "
        "rest filled from further down the ranking; None: no cap.",
    )
    document_key: Optional[str] = Field(
        default=None, description="max_per_document: the metadata key naming a hit's document (e.g. file_path, so "
        "a PDF's pages are one document); None or absent on a node: its ref_doc_id, else the node itself.",
    )
    sparse_model: Optional[str] = Field(
        default=None, description="A sentence-transformers SparseEncoder (hub id or folder; SPLADE or an "
        "inference-free model) whose vectors of the node words sit beside BM25 (or replace it: bm25=False) and are "
        "fused like the other lists. Recorded in the schema: a reopen without it loads the collection's.",
    )
    bm25: bool = Field(
        default=True, description="Keep the BM25 vector; False (with sparse_model=) makes the learned one the only "
        "sparse vector. Recorded in the schema.",
    )
    sparse_model_kwargs: Dict[str, Any] = Field(
        default_factory=dict, description="Passed to SparseEncoder(...) (device, trust_remote_code, ...).",
    )
    target_recall: Optional[float] = Field(
        default=None, gt=0.0, le=1.0, description="Choose hnsw_ef to reach this recall@10 on this store (e.g. 0.95): "
        "measured against exact search by optimize() (and at open when the recorded target differs), recorded "
        "in the schema (see docs/store.md: recall against p50).",
    )
