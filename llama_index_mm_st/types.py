"""Types shared by every component: the modality names, input aliases, a sparse vector, and the result of
an embedding batch (the in-process embedding and the remote one return the same ``EmbeddingResult``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Literal, Optional, Sequence, get_args

from .errors import ItemFailure

Modality = Literal["text", "image", "text+image", "audio", "video"]
"""What an item carries. The store names its dense vectors after the single ones (not "text+image")."""

MODALITIES: tuple[Modality, ...] = get_args(Modality)
"""Every modality, in this order wherever they are listed (summaries, counts)."""
MediaKind = Literal["audio", "video"]
DenseVectorName = Literal["text", "image", "audio", "video"]
DENSE_VECTOR_NAMES: tuple[DenseVectorName, ...] = get_args(DenseVectorName)

OnError = Literal["raise", "skip"]
"""What a batch does with an item that can't be read. ``"raise"`` is the default of the Python API
(a caller's one image should fail loudly); the CLI and reader, which walk whole folders, skip and report."""
OnUnsupported = Literal["raise", "keep"]
"""What the reranker does with a node no scorer reads: ``"keep"`` leaves it at its retrieval rank."""

Role = Literal["query", "document"]
"""Which side of retrieval an input is on; it selects the model's prompt."""

Precision = Literal["auto", "fp32", "bf16", "fp16", "int8"]
"""``"int8"`` is ONNX Runtime's dynamic quantization (opt-in, lossy: see the README's agreement table);
the others are torch dtypes, and fp32 on ONNX Runtime."""

Backend = Literal["auto", "torch", "onnx"]
"""What runs the forward pass: torch, ONNX Runtime, or ``"auto"``: the fastest exact path measured on
this CPU (torch on a GPU). See ``onnx/choice.py``."""

Embedding = list[float]


@dataclass(frozen=True)
class SparseVector:
    """Sparse term weights, e.g. BM25: parallel ``indices`` and ``values``."""

    indices: Sequence[int] = field(default_factory=tuple)
    values: Sequence[float] = field(default_factory=tuple)


@dataclass
class EmbeddingResult:
    """``embeddings[i]`` belongs to input ``i``; it is ``None`` exactly for the items in ``failures``."""

    embeddings: List[Optional[Embedding]]
    failures: List[ItemFailure]

    @property
    def ok(self) -> bool:
        return not self.failures
