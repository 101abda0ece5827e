"""What a scorer is: a model that scores (query, document) pairs it declares it can read.

The reranker routes each candidate to the first scorer whose ``pairs`` contain the candidate's
(query modality, document modality), so adding a model family means adding a scorer, not an
``if`` in the reranker. Scorers receive decoded RGB images; loading and error isolation happen
once, in the reranker, for every scorer alike.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Collection, ContextManager, Protocol, Sequence, runtime_checkable

import numpy as np
import torch
from PIL import Image

from ...images import DecodeOptions
from ...onnx.choice import BackendReport
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
    """Scores one query against many documents, on the underlying model's own scale (higher = more relevant).

    These four members are all a scorer must have. What a scorer can do besides (take an instruction,
    score stored multivectors, read audio at a rate, report its backend) it declares as an
    ``abilities`` property (``DeclaresAbilities``); the reranker reads it through ``abilities_of``,
    never by probing attributes. A scorer that declares nothing has none of them.
    """

    name: str
    pairs: frozenset[PairModality]
    decode_options: DecodeOptions

    def score(self, query: LoadedParts, documents: Sequence[LoadedParts], batch_size: int) -> list[float]:
        """One score per document, in the documents' order."""
        ...

    # The scale of ``score`` (raw model output -> a relevance in [0, 1]) belongs beside it here.


@dataclass(frozen=True)
class ScorerAbilities:
    """What a scorer can do beyond ``score``, as it declares it (every field: None when it can't)."""

    instruction: str | None = None
    """The task instruction its chat template carries (VLM rerankers)."""
    multivector_dim: int | None = None
    """It scores a text query against stored late-interaction multivectors of this width without
    encoding the candidates again: it is a ``MultivectorScorer``."""
    sampling_rate: int | None = None
    """The audio sampling rate its processor takes (audio documents are decoded at it)."""
    frame_chooser: Callable[..., Any] | None = None
    """Which video frames its processor would sample (videos are decoded to those frames only)."""
    report: BackendReport | None = None
    """Which path its forward pass takes and why (``MultimodalReranker.describe``)."""


NO_ABILITIES = ScorerAbilities()


@runtime_checkable
class DeclaresAbilities(Protocol):
    """A scorer that declares abilities beyond the ``Scorer`` protocol."""

    @property
    def abilities(self) -> ScorerAbilities: ...


@runtime_checkable
class MultivectorScorer(Scorer, Protocol):
    """A scorer whose abilities give a ``multivector_dim``: it scores stored multivectors too."""

    def score_multivectors(self, query: LoadedParts, multivectors: Sequence[np.ndarray]) -> list[float]:
        """One score per multivector (rows of ``multivector_dim``), in their order."""
        ...


def abilities_of(scorer: Scorer) -> ScorerAbilities:
    """The one place a scorer's optional abilities are read: what it declares, else none."""
    return scorer.abilities if isinstance(scorer, DeclaresAbilities) else NO_ABILITIES


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
