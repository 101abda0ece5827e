"""Model-family quirks as data, keyed by the checkpoint's ``config.model_type``.

A quirk is something the checkpoint's own files don't tell sentence-transformers and that changes
results. Adding a family means adding a row, not an ``if "siglip" in name`` check.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
from typing import Any, Callable, Literal, Mapping, Optional, Sequence

from sentence_transformers import SentenceTransformer

from ..media_refs import processor_frame_chooser, processor_sampling_rate
from ..multivector import LATE_INTERACTION_ARCHITECTURES


@dataclass(frozen=True)
class ModelProfile:
    """How to drive one model family.

    ``fixed_text_length``: pad text to the text tower's ``max_position_embeddings``. SigLIP and
    SigLIP-2 pool the *last* position and were trained on text padded to that length, so padding to
    the longest item in a batch (the sentence-transformers default) makes an embedding depend on its
    batch neighbours (cosine 0.79 seen on a tiny SigLIP).

    ``draft_decode``: the processor resizes to a fixed target, so JPEGs may be decoded at a reduced
    DCT scale no smaller than it. VLM processors keep a pixel budget instead, so they get full decodes.
    """

    fixed_text_length: bool = False
    draft_decode: bool = False


DEFAULT_PROFILE = ModelProfile()

PROFILES: Mapping[str, ModelProfile] = {
    "clip": ModelProfile(draft_decode=True),
    "chinese_clip": ModelProfile(draft_decode=True),
    "siglip": ModelProfile(fixed_text_length=True, draft_decode=True),
    "siglip2": ModelProfile(fixed_text_length=True, draft_decode=True),
}


ModelKind = Literal["single_vector", "late_interaction"]
"""How a checkpoint embeds: one vector per input, or one vector per token/patch scored by MaxSim."""

KIND_BY_ARCHITECTURE: Mapping[str, ModelKind] = {name: "late_interaction" for name in LATE_INTERACTION_ARCHITECTURES}
"""Checkpoints that are not single-vector embedders, by their ``config.json`` architecture (as the
reranker chooses its scorers): a new late-interaction family is one row."""


def checkpoint_kind(name_or_path: str) -> ModelKind:
    """The kind of a checkpoint, read from its ``config.json`` (a local directory, or the hub/cache).
    A checkpoint without one (a custom Sentence Transformers model) is single-vector."""
    from sentence_transformers.util import load_file_path

    path: Optional[str] = load_file_path(name_or_path, "config.json")
    if path is None:
        return "single_vector"
    with open(path, encoding="utf-8") as handle:
        architectures = json.load(handle).get("architectures") or []
    for architecture in architectures:
        if architecture in KIND_BY_ARCHITECTURE:
            return KIND_BY_ARCHITECTURE[architecture]
    return "single_vector"


def backbone_config(model: SentenceTransformer) -> Any:
    """The Hugging Face config of the model's first module, or None for custom modules."""
    first = model[0] if len(model) else None
    return getattr(first, "config", None)


def profile_for(model: SentenceTransformer) -> ModelProfile:
    """The profile of a loaded model (the default for unknown families)."""
    config = backbone_config(model)
    return PROFILES.get(getattr(config, "model_type", ""), DEFAULT_PROFILE)


def text_window(model: SentenceTransformer) -> int | None:
    """Tokens the text tower has positions for (its config's ``max_position_embeddings``), if known."""
    config = backbone_config(model)
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    positions = getattr(text_config, "max_position_embeddings", None)
    return int(positions) if isinstance(positions, int) and positions > 0 else None


def declared_text_limit(model: SentenceTransformer) -> int | None:
    """The limit the tokenizer declares (``model_max_length``); None when it has no tokenizer."""
    tokenizer = getattr(model[0], "tokenizer", None) if len(model) else None
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if isinstance(limit, (int, float)) else None


def text_processing_kwargs(model: SentenceTransformer, profile: ModelProfile) -> dict[str, Any]:
    """Per-call processor kwargs for text (empty when nothing needs changing).

    Texts longer than the model's window are truncated to it, never an error. A tokenizer saved
    without a limit declares ``int(1e30)``, and sentence-transformers then hands the model more
    positions than it has (an IndexError deep in the embedding layer): the window then comes from
    the text tower's config instead.
    """
    window = text_window(model)
    if profile.fixed_text_length and window is not None:
        return {"padding": "max_length", "max_length": window, "truncation": True}
    declared = declared_text_limit(model)
    if window is not None and (declared is None or declared > window):
        return {"max_length": window, "truncation": True}
    return {}


def image_target_size(model: SentenceTransformer) -> tuple[int, int] | None:
    """The (width, height) the image processor resizes to, when it has a fixed one."""
    processor = getattr(model[0], "processor", None) if len(model) else None
    image_processor = getattr(processor, "image_processor", processor)
    size = getattr(image_processor, "size", None)
    if size is None:
        return None
    size = dict(size) if not isinstance(size, int) else {"shortest_edge": size}
    if size.get("shortest_edge"):
        edge = int(size["shortest_edge"])
        return edge, edge
    if size.get("height") and size.get("width"):
        return int(size["width"]), int(size["height"])
    return None


def _processor(model: SentenceTransformer) -> Any:
    return getattr(model[0], "processor", None) if len(model) else None


def audio_sampling_rate(model: SentenceTransformer) -> int | None:
    """The rate (Hz) the model's feature extractor expects audio at (CLAP: 48 kHz), if it takes audio."""
    return processor_sampling_rate(_processor(model))


def video_frame_chooser(model: SentenceTransformer) -> Callable[[Any], Sequence[int]] | None:
    """The frames the model's video processor would sample (``media_refs.processor_frame_chooser``)."""
    return processor_frame_chooser(_processor(model))
