"""llama-index-mm-st: multimodal retrieval for LlamaIndex.

Public API: the four components, their remote clients (a model server's), the pipeline helper and its evaluation on a qrels
file, their result and config types, the
late-interaction carrier (a node's multivector, a query vector that carries one), evidence (where a
hit matched: ``Region``, ``Span``, ``Passage``, the ``EvidenceLocator`` postprocessor), and the errors. Components are imported on first use, so ``from llama_index_mm_st import
MultimodalQdrantStore`` does not load torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    CaptionFileError,
    DiskFullError,
    EncodeError,
    ImageLoadError,
    ItemError,
    ItemFailure,
    MediaLoadError,
    MissingDependencyError,
    MMSTError,
    ModelUnavailableError,
    RemoteServerError,
    SchemaMismatchError,
    SkippedItemsWarning,
    StoreLockedError,
    UnfinishedStoreError,
    UnscoredNodesWarning,
    UnsupportedFilterError,
    UnsupportedIndexError,
    UnsupportedModalityError,
)
from .types import Backend, Modality

if TYPE_CHECKING:
    from .embedding import MultimodalEmbedding
    from .evidence import EvidenceLocator, Passage, Region, Span, find_evidence, node_evidence
    from .evaluation import evaluate, load_qrels
    from .multivector import PooledVector, attach_multivector, node_multivector
    from .pipeline import MultimodalRetriever, build_pipeline
    from .readers import ImageReader, MediaReader, ReadReport, VideoFrameSampler
    from .remote import RemoteMultimodalEmbedding, RemoteMultimodalStore, RemoteReranker
    from .rerank import MultimodalReranker, RerankedNode
    from .store import MultimodalQdrantStore
    from .types import EmbeddingResult

__version__ = "0.1.0"

_LAZY = {
    "EmbeddingResult": ".types",
    "MultimodalEmbedding": ".embedding",
    "ImageReader": ".readers",
    "MediaReader": ".readers",
    "VideoFrameSampler": ".readers",
    "ReadReport": ".readers",
    "MultimodalQdrantStore": ".store",
    "MultimodalReranker": ".rerank",
    "RerankedNode": ".rerank",
    "RemoteMultimodalEmbedding": ".remote",
    "RemoteMultimodalStore": ".remote",
    "RemoteReranker": ".remote",
    "MultimodalRetriever": ".pipeline",
    "build_pipeline": ".pipeline",
    "evaluate": ".evaluation",
    "load_qrels": ".evaluation",
    "PooledVector": ".multivector",
    "attach_multivector": ".multivector",
    "node_multivector": ".multivector",
    "EvidenceLocator": ".evidence",
    "Passage": ".evidence",
    "Region": ".evidence",
    "Span": ".evidence",
    "find_evidence": ".evidence",
    "node_evidence": ".evidence",
}

__all__ = sorted(
    [
        *_LAZY,
        "Backend",
        "CaptionFileError",
        "DiskFullError",
        "EncodeError",
        "ImageLoadError",
        "ItemError",
        "ItemFailure",
        "MMSTError",
        "ModelUnavailableError",
        "MediaLoadError",
        "MissingDependencyError",
        "Modality",
        "RemoteServerError",
        "SchemaMismatchError",
        "SkippedItemsWarning",
        "StoreLockedError",
        "UnfinishedStoreError",
        "UnscoredNodesWarning",
        "UnsupportedFilterError",
        "UnsupportedIndexError",
        "UnsupportedModalityError",
        "__version__",
    ]
)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
