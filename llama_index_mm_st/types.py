"""Types shared by every component: the modality names, input aliases and a sparse vector."""

from __future__ import annotations

from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Literal, Mapping, Sequence, Union

import numpy as np
from PIL import Image

Modality = Literal["text", "image", "text+image"]
"""What an item carries. The store names its dense vectors after the first two."""

MODALITIES: tuple[Modality, ...] = ("text", "image", "text+image")
DENSE_VECTOR_NAMES: tuple[Literal["text", "image"], ...] = ("text", "image")

Role = Literal["query", "document"]
"""Which side of retrieval an input is on; it selects the model's prompt."""

Precision = Literal["auto", "fp32", "bf16", "fp16"]

ImageSource = Union[str, Path, bytes, bytearray, BytesIO, Image.Image, np.ndarray]
"""Anything that names or holds one image: path, URL, data URI, bytes, file object, PIL image, array."""

TextImagePair = Mapping[str, object]
"""``{"text": str, "image": ImageSource}`` for models that fuse both."""

Embedding = list[float]


@dataclass(frozen=True)
class SparseVector:
    """Sparse term weights, e.g. BM25: parallel ``indices`` and ``values``."""

    indices: Sequence[int] = field(default_factory=tuple)
    values: Sequence[float] = field(default_factory=tuple)
