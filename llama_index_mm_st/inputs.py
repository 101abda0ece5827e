"""Resolve what callers pass into typed inputs, without decoding anything yet.

Text methods take strings as text; image methods take strings as image references (path, URL or
``data:`` URI). Nothing here guesses a modality from content. A wrong type is a ``TypeError`` that
lists what is accepted; a reference that cannot be read becomes an ``ImageLoadError`` when loaded.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, Union

import numpy as np
from llama_index.core.schema import BaseNode, ImageNode, MetadataMode
from PIL import Image

from .errors import ImageLoadError
from .fetch import FetchOptions, fetch_bytes, is_file_url, is_url, refuse_file_url
from .images import DecodeOptions, decode, prepare_pil
from .types import Modality

IMAGE_TYPES_HELP = (
    "a file path (str or Path), an http(s) URL (with allow_urls=True), a data: URI, bytes, BytesIO, a PIL image, "
    "a numpy array (HxW or HxWxC, uint8), or a LlamaIndex ImageNode/ImageDocument"
)
PAIR_HELP = 'a dict {"text": str, "image": <image>} or an ImageNode that has text'


@dataclass(frozen=True)
class ImageRef:
    """One image, not yet decoded. ``label`` names it in errors (path, URL or input position)."""

    label: str
    source: Union[str, Path, bytes, Image.Image, np.ndarray]

    def load(self, decode_options: DecodeOptions = DecodeOptions(), fetch: FetchOptions = FetchOptions()) -> Image.Image:
        """Fetch and decode to an upright RGB image; failures raise ``ImageLoadError`` naming the item."""
        source = self.source
        if isinstance(source, Image.Image):
            return prepare_pil(source, self.label, decode_options)
        if isinstance(source, np.ndarray):
            return prepare_pil(_array_to_pil(source, self.label), self.label, decode_options)
        if isinstance(source, bytes):
            if not source:
                raise ImageLoadError(self.label, "empty data (zero bytes)")
            return decode(BytesIO(source), self.label, decode_options)
        if isinstance(source, str) and is_file_url(source):
            raise refuse_file_url(self.label)
        if isinstance(source, str) and is_url(source):
            return decode(BytesIO(fetch_bytes(source, fetch)), self.label, decode_options)
        return decode(source, self.label, decode_options)


@dataclass(frozen=True)
class ResolvedInput:
    """An input reduced to its modality and parts."""

    modality: Modality
    text: str | None = None
    image: ImageRef | None = None


def _array_to_pil(array: np.ndarray, label: str) -> Image.Image:
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ImageLoadError(label, f"array of shape {array.shape} is not HxW or HxWxC with C in 1, 3, 4")
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and array.size and 0.0 <= array.min() and array.max() <= 1.0:
            array = (array * 255.0).round().astype(np.uint8)
        else:
            raise ImageLoadError(label, f"array dtype {array.dtype} is not uint8 (or float in [0, 1])")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return Image.fromarray(np.ascontiguousarray(array))


def _decode_data_uri(uri: str, label: str) -> bytes:
    header, _, payload = uri.partition(",")
    if not header.endswith(";base64"):
        raise ImageLoadError(label, "only base64 data: URIs are supported")
    return _b64(payload, label)


def _b64(payload: str | bytes, label: str) -> bytes:
    try:
        return base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise ImageLoadError(label, f"invalid base64 ({exc})") from None


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def image_ref(item: Any, position: int) -> ImageRef:
    """Resolve one image input. ``position`` labels anonymous inputs (bytes, arrays) in errors."""
    where = f"at position {position}"
    if isinstance(item, BaseNode):
        ref = node_image_ref(item)
        if ref is None:
            raise ImageLoadError(f"node {item.node_id} ({where})", "the node has no image, image_path or image_url")
        return ref
    if isinstance(item, Path):
        return ImageRef(str(item), item)
    if isinstance(item, str):
        if item.startswith("data:"):
            return ImageRef(f"data URI {where}", _decode_data_uri(item, f"data URI {where}"))
        return ImageRef(_short(item), item)
    if isinstance(item, (bytes, bytearray, memoryview)):
        return ImageRef(f"bytes {where}", bytes(item))
    if isinstance(item, BytesIO):
        return ImageRef(f"BytesIO {where}", item.getvalue())
    if isinstance(item, Image.Image):
        return ImageRef(f"PIL image {where}", item)
    if isinstance(item, np.ndarray):
        return ImageRef(f"array {where}", item)
    raise TypeError(f"image input {where} has type {type(item).__name__}; accepted: {IMAGE_TYPES_HELP}")


def is_image_node(node: BaseNode) -> bool:
    """An ``ImageNode``, or any node carrying an ``image_resource`` (``ImageDocument`` in LlamaIndex 0.14)."""
    return isinstance(node, ImageNode) or getattr(node, "image_resource", None) is not None


def node_field(node: BaseNode, name: str) -> Any:
    """A node's pydantic field value, or None when its class has no such field.

    ``getattr(node, name, None)`` costs a pydantic ``__getattr__`` miss (microseconds) for every
    absent field, a visible share of a bulk upsert at thousands of nodes per second.
    """
    return node.__dict__.get(name)


def image_reference_parts(node: BaseNode) -> tuple[object, object, object]:
    """(inline data, path, URL) of a node's image, without decoding anything; Nones when it has none."""
    if isinstance(node, ImageNode):
        return node.image, node.image_path, node.image_url
    resource = node_field(node, "image_resource")
    if resource is None:
        return None, None, None
    return resource.data, resource.path, resource.url


def node_image_ref(node: BaseNode) -> ImageRef | None:
    """The image of a node: inline base64 first (already in memory), then its path, then its URL.

    ``ImageNode`` keeps these as ``image``/``image_path``/``image_url``; ``ImageDocument`` and other
    0.14 nodes keep them in ``image_resource`` (``data`` is always base64 there).
    """
    label = f"node {node.node_id}"
    data, path, url = image_reference_parts(node)
    if data:
        return ImageRef(f"{label} (inline base64)", _b64(data, label))
    if path:
        return ImageRef(str(path), Path(path))
    if url:
        url = str(url)
        if url.startswith("data:"):
            return ImageRef(f"{label} (data URI)", _decode_data_uri(url, label))
        return ImageRef(_short(url), url)
    return None


def node_text(node: BaseNode) -> str:
    """The words of a node as embedding models should see them (LlamaIndex's EMBED metadata mode)."""
    return node.get_content(metadata_mode=MetadataMode.EMBED)


def resolve_text(item: Any, position: int) -> ResolvedInput:
    """A text input: a string, or a node's text."""
    if isinstance(item, str):
        return ResolvedInput("text", text=item)
    if isinstance(item, BaseNode) and not is_image_node(item):
        return ResolvedInput("text", text=node_text(item))
    raise TypeError(f"text input at position {position} has type {type(item).__name__}; accepted: str or a TextNode")


def resolve_pair(item: Any, position: int) -> ResolvedInput:
    """A text+image input: a dict with both keys, or an ImageNode with text and an image."""
    if isinstance(item, dict):
        unknown = set(item) - {"text", "image"}
        if unknown or "text" not in item or "image" not in item:
            raise TypeError(f"text+image input at position {position} must be {PAIR_HELP}; got keys {sorted(item)}")
        if not isinstance(item["text"], str):
            raise TypeError(f"text+image input at position {position}: 'text' must be a str")
        return ResolvedInput("text+image", text=item["text"], image=image_ref(item["image"], position))
    if isinstance(item, BaseNode) and is_image_node(item):
        ref = image_ref(item, position)
        return ResolvedInput("text+image", text=node_text(item), image=ref)
    raise TypeError(f"text+image input at position {position} has type {type(item).__name__}; accepted: {PAIR_HELP}")


def resolve_node(node: BaseNode, position: int) -> ResolvedInput:
    """A node by what it carries: an image node is an image (plus its text, if any); others are text."""
    if isinstance(node, BaseNode) and is_image_node(node):
        ref = image_ref(node, position)
        text = node_text(node) if node.get_content(metadata_mode=MetadataMode.NONE) else None
        return ResolvedInput("text+image" if text else "image", text=text, image=ref)
    if isinstance(node, BaseNode):
        return ResolvedInput("text", text=node_text(node))
    raise TypeError(f"item at position {position} has type {type(node).__name__}; expected a LlamaIndex node")
