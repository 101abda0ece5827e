"""Model-family quirks as data, keyed by the checkpoint's ``config.model_type``.

A quirk is something the checkpoint's own files don't tell sentence-transformers and that changes
results. Adding a family means adding a row, not an ``if "siglip" in name`` check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from sentence_transformers import SentenceTransformer


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


def backbone_config(model: SentenceTransformer) -> Any:
    """The Hugging Face config of the model's first module, or None for custom modules."""
    first = model[0] if len(model) else None
    return getattr(first, "config", None)


def profile_for(model: SentenceTransformer) -> ModelProfile:
    """The profile of a loaded model (the default for unknown families)."""
    config = backbone_config(model)
    return PROFILES.get(getattr(config, "model_type", ""), DEFAULT_PROFILE)


def text_processing_kwargs(model: SentenceTransformer, profile: ModelProfile) -> dict[str, Any]:
    """Per-call processor kwargs for text under this profile (empty when nothing needs changing)."""
    if not profile.fixed_text_length:
        return {}
    config = backbone_config(model)
    text_config = getattr(config, "text_config", config)
    length = int(getattr(text_config, "max_position_embeddings"))
    return {"padding": "max_length", "max_length": length, "truncation": True}


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
