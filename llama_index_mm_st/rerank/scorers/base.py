"""What a scorer is: a model that scores (query, document) pairs it declares it can read.

The reranker routes each candidate to the first scorer whose ``pairs`` contain the candidate's
(query modality, document modality), so adding a model family means adding a scorer, not an
``if`` in the reranker. Scorers receive decoded RGB images; loading and error isolation happen
once, in the reranker, for every scorer alike.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Collection, ContextManager, Protocol, Sequence, runtime_checkable

import torch
from PIL import Image

from ...images import DecodeOptions
from ...runtime import torch_dtype
from ...types import Modality, Precision

PairModality = tuple[Modality, Modality]
"""(query modality, document modality)."""


@dataclass(frozen=True)
class LoadedParts:
    """One side of a pair, ready for a model: text, a decoded image, or both."""

    text: str | None = None
    image: Image.Image | None = None
    media: dict | None = None
    """Decoded audio or video as sentence-transformers takes it (``{"array", "sampling_rate"}`` or
    ``{"array", "video_metadata"}``); then text and image are None."""
    media_kind: Modality | None = None

    def __post_init__(self) -> None:
        if self.text is None and self.image is None and self.media is None:
            raise ValueError("LoadedParts needs text, an image, both, or media")

    @property
    def modality(self) -> Modality:
        if self.media is not None and self.media_kind is not None:
            return self.media_kind
        if self.text is not None and self.image is not None:
            return "text+image"
        return "image" if self.image is not None else "text"


@runtime_checkable
class Scorer(Protocol):
    """Scores one query against many documents, on the underlying model's own scale (higher = more relevant)."""

    name: str
    pairs: frozenset[PairModality]
    decode_options: DecodeOptions

    def score(self, query: LoadedParts, documents: Sequence[LoadedParts], batch_size: int) -> list[float]:
        """One score per document, in the documents' order."""
        ...


def score_head_name(model: torch.nn.Module) -> str | None:
    """Name of the last plain ``nn.Linear`` in module order: the layer that produces the score
    (a classifier, an ITM head, an LM head). Kept in fp32 so scores aren't rounded to bf16 steps."""
    names = [name for name, module in model.named_modules() if type(module) is torch.nn.Linear]
    return names[-1] if names else None


def store_linear_weights(model: torch.nn.Module, precision: Precision, keep: Collection[str] = ()) -> None:
    """Keep the weights of plain ``nn.Linear`` layers in the compute precision, for models we loaded.

    Autocast would round those weights to bf16/fp16 on every forward pass anyway, so the numbers
    are the same; storing them rounded saves the copy (a third of a BERT-base forward on a 2-core
    CPU, by profile). Only for models the reranker loaded itself: a caller's object is never converted.
    """
    if precision == "fp32":
        return
    dtype = torch_dtype(precision)
    for name, module in model.named_modules():
        if type(module) is torch.nn.Linear and name not in keep:
            module.to(dtype)


def compute_context(device: torch.device, precision: Precision) -> ContextManager[object]:
    """Autocast for bf16/fp16, nothing for fp32.

    Autocast rather than casting weights: matmuls run in the low precision while layer norms,
    softmax and the score stay in fp32 (a full bf16 cast measured Spearman 0.97 against fp32 on a
    BERT-base cross-encoder, autocast 0.995, at the same speed), and a caller's ready model object
    is used as is, never converted behind its back.
    """
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch_dtype(precision))
