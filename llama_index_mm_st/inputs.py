"""What an input carries, read once: words, an image reference, or both.

Two values answer that question for every component:

- ``Parts``: text and/or a not-yet-decoded ``ImageRef``; its ``modality`` follows from which are set.
  The embedding encodes ``Parts``, the reranker routes them to a scorer.
- ``NodeParts``: the same read of a LlamaIndex node (``read_node``), plus what only nodes have: their
  own words apart from metadata (BM25, the modality tag) and their id. The store's planner turns it
  into a point, the embedding into ``Parts``, the reranker into a scorer's side, the CLI prints it.

Text methods take strings as text; image methods take strings as image references (path, URL or
``data:`` URI). Nothing here guesses a modality from content, decodes pixels or fetches anything: a
wrong type is a ``TypeError`` that lists what is accepted; a reference that cannot be read becomes an
``ImageLoadError`` naming the item when it is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from io import BytesIO
from pathlib import Path
from typing import Any, Literal, Optional, Union

import numpy as np
from llama_index.core.schema import BaseNode, Document, ImageNode, MetadataMode, NodeRelationship, QueryBundle
from PIL import Image

from .errors import ImageLoadError
from .inline import decode_base64, short_label
from .fetch import FetchOptions, fetch_bytes, url_of
from .images import DecodeOptions, decode, prepare_pil
from .media_refs import (
    FRAME_TIME_KEY, MediaRef, VideoFrame, media_input, media_resource_of, node_media_ref, read_frame_pixels,
    to_media_node,
)
from .types import MediaKind, Modality

IMAGE_TYPES_HELP = (
    "a file path (str or Path), an http(s) URL (with allow_urls=True), a data: URI, bytes, BytesIO, a PIL image, "
    "a numpy array (HxW or HxWxC, uint8), or a LlamaIndex ImageNode/ImageDocument"
)
PAIR_HELP = 'a dict {"text": str, "image": <image>} or an ImageNode that has text'
"""Longest item label in an error message; longer URLs and strings are shortened."""


@dataclass(frozen=True)
class Base64Data:
    """Inline base64 image data, decoded only when the image is loaded (so a bad payload fails one item)."""

    payload: Union[str, bytes]


ImageSourceValue = Union[str, Path, bytes, Base64Data, Image.Image, np.ndarray, VideoFrame]


@dataclass(frozen=True)
class ImageRef:
    """One image, not yet decoded. ``label`` names it in errors (path, URL or input position)."""

    label: str
    source: ImageSourceValue = field(compare=False)

    def load(self, decode_options: DecodeOptions = DecodeOptions(), fetch: FetchOptions = FetchOptions()) -> Image.Image:
        """Fetch and decode to an upright RGB image; failures raise ``ImageLoadError`` naming the item."""
        source = self.source
        if isinstance(source, VideoFrame):
            return prepare_pil(Image.fromarray(read_frame_pixels(source, self.label, fetch)), self.label, decode_options)
        if isinstance(source, Image.Image):
            return prepare_pil(source, self.label, decode_options)
        if isinstance(source, np.ndarray):
            return prepare_pil(_array_to_pil(source, self.label), self.label, decode_options)
        if isinstance(source, Base64Data):
            source = decode_base64(source.payload, self.label, ImageLoadError)
        if isinstance(source, bytes):
            if not source:
                raise ImageLoadError(self.label, "empty data (zero bytes)")
            return decode(BytesIO(source), self.label, decode_options)
        url = url_of(source, self.label)
        if url is not None:
            return decode(BytesIO(fetch_bytes(url, fetch)), self.label, decode_options)
        return decode(source, self.label, decode_options)


@dataclass(frozen=True)
class Parts:
    """What one input carries: text, an image reference, or both (a fused text+image input)."""

    text: str | None = None
    image: ImageRef | None = None
    media: MediaRef | None = None
    """An audio or video item (then ``text`` and ``image`` are None: each is embedded on its own)."""

    @property
    def modality(self) -> Modality:
        if self.media is not None:
            return self.media.kind
        if self.image is None:
            return "text"
        return "image" if self.text is None else "text+image"

    def view(self, modality: Modality) -> Parts:
        """These parts reduced to ``modality``: the text alone, the image alone, or both."""
        if modality == "text":
            return Parts(text=self.text)
        if modality == "image":
            return Parts(image=self.image)
        return self


@dataclass(frozen=True)
class NodeParts:
    """One reading of a LlamaIndex node.

    ``words`` is the node's own text (no metadata), ``image`` its pixels' reference (inline base64
    first, then path, then URL; None when it has none). A node with pixels is an image, or text+image
    when it also has words; any other node is text. ``embed_text`` is what an embedding model reads:
    the words with the metadata LlamaIndex's EMBED mode keeps (computed on first use only, because
    the store never needs it).
    """

    node: BaseNode = field(repr=False, compare=False)
    words: str
    image: ImageRef | None
    has_reference: bool = False
    """The image has a path or URL (so a stored copy need not keep inline pixels)."""
    media: MediaRef | None = None
    """The node's audio or video (a node with pixels is an image first: a video frame is an image)."""

    @property
    def node_id(self) -> str:
        return self.node.node_id

    @property
    def has_pixels(self) -> bool:
        return self.image is not None

    @property
    def has_media(self) -> bool:
        """The node is an audio or video item (its ``embedding`` is the media vector)."""
        return self.image is None and self.media is not None

    @property
    def modality(self) -> Modality:
        if self.image is None:
            return self.media.kind if self.media is not None else "text"
        return "text+image" if self.words.strip() else "image"

    @cached_property
    def embed_text(self) -> str:
        return self.node.get_content(metadata_mode=MetadataMode.EMBED)

    def parts(self, fuse: bool = False) -> Parts:
        """What a model reads: the embed text, the image, or (``fuse``, and the node has words) both."""
        if self.has_media:
            return Parts(media=self.media)
        if self.image is None:
            return Parts(text=self.embed_text)
        if fuse and self.modality == "text+image":
            return Parts(text=self.embed_text, image=self.image)
        return Parts(image=self.image)

    @property
    def vector_fields(self) -> dict[str, "EmbeddingField"]:
        """Which node field holds the vector of each named dense vector: the one rule the embedding
        writes by and the store reads (and writes back) by. A node with pixels keeps its image vector
        in ``embedding`` and, when it has words, their vector in ``text_embedding``; an audio or video
        node keeps its media vector in ``embedding``; any other node its text vector."""
        if self.has_media:
            return _MEDIA_FIELDS[self.media.kind]  # type: ignore[union-attr]
        return _PIXEL_FIELDS if self.has_pixels else _TEXT_FIELDS

    def field_inputs(self, fuse: bool = False, late: bool = False) -> dict["EmbeddingField", Parts]:
        """What each of the node's vector fields is embedded from: the rule the in-process and the remote
        embedding both set nodes by. ``embedding``: ``parts(fuse)``; ``text_embedding``: the embed text
        of a node with pixels and words (its field in ``vector_fields``), except for a late-interaction
        model (``late``), which reads a page by its pixels and leaves its words to BM25."""
        found: dict[EmbeddingField, Parts] = {"embedding": self.parts(fuse)}
        text = self.text_parts()
        if not late and text is not None and "text_embedding" in self.vector_fields.values():
            found["text_embedding"] = text
        return found

    def text_parts(self) -> Parts | None:
        """The embed text of a node with pixels and words, which the store keeps as its text vector.
        A media node's words (a transcript) go to BM25 only: LlamaIndex's ``Document`` has no field for
        a second vector."""
        return Parts(text=self.embed_text) if self.modality == "text+image" else None


EmbeddingField = Literal["embedding", "text_embedding"]
"""The node fields vectors live in (``BaseNode.embedding``; ``ImageNode.text_embedding``)."""
_PIXEL_FIELDS: dict[str, EmbeddingField] = {"image": "embedding", "text": "text_embedding"}
_TEXT_FIELDS: dict[str, EmbeddingField] = {"text": "embedding"}
_MEDIA_FIELDS: dict[str, dict[str, EmbeddingField]] = {"audio": {"audio": "embedding"}, "video": {"video": "embedding"}}


def node_field(node: BaseNode, name: str) -> Any:
    """A node's pydantic field value, or None when its class has no such field.

    Why ``__dict__`` and not ``getattr(node, name, None)``: on a class without the field, the
    getattr goes through pydantic's ``__getattr__`` miss: 4.1 µs against 0.1 µs here (``timeit`` of
    ``image_resource`` on a ``TextNode``, AMD EPYC, 2026-11-25), paid several times per node in a
    bulk upsert of thousands of nodes per second.
    """
    return node.__dict__.get(name)


def image_reference_parts(node: BaseNode) -> tuple[object, object, object]:
    """(inline data, path, URL) of a node's image, without decoding anything; Nones when it has none.

    ``ImageNode`` keeps these as ``image``/``image_path``/``image_url``; ``ImageDocument`` and other
    0.14 nodes keep them in ``image_resource`` (``data`` is always base64 there).
    """
    if isinstance(node, ImageNode):
        return node.image, node.image_path, node.image_url
    resource = node_field(node, "image_resource")
    if resource is None:
        return None, None, None
    return resource.data, resource.path, resource.url


def node_image_ref(node: BaseNode) -> ImageRef | None:
    """The image of a node, not decoded: inline base64 first (already in memory), then path, then URL."""
    return _image_ref_of(node, *image_reference_parts(node))


def _image_ref_of(node: BaseNode, data: object, path: object, url: object) -> ImageRef | None:
    if not (data or path or url):
        return None
    label = f"node {node.node_id}"
    frame_time = node.metadata.get(FRAME_TIME_KEY)
    if not data and isinstance(frame_time, (int, float)) and not isinstance(frame_time, bool):
        # A sampled video frame: the image is the frame of the video at that time (``video_frames``).
        where = str(path or url)
        return ImageRef(f"{short_label(where)} at {float(frame_time):.2f}s", VideoFrame(where, float(frame_time)))
    if data:
        return ImageRef(f"{label} (inline base64)", Base64Data(data))  # type: ignore[arg-type]
    if path:
        return ImageRef(str(path), Path(path))  # type: ignore[arg-type]
    url = str(url)
    if url.startswith("data:"):
        return ImageRef(f"{label} (data URI)", _data_uri_payload(url, label))
    return ImageRef(short_label(url), url)


def to_image_node(node: BaseNode, relationships: Any = None) -> ImageNode:
    """The ``ImageNode`` equivalent of a node that keeps its image in ``image_resource`` (an
    ``ImageDocument`` in LlamaIndex 0.14): LlamaIndex reads unknown node types back as ``TextNode``
    and would lose the image. Id, words, vectors, metadata and its exclusions carry over."""
    resource = node_field(node, "image_resource")
    data, path, url = (resource.data, resource.path, resource.url) if resource is not None else (None, None, None)
    return ImageNode(
        id_=node.id_, text=node.get_content(metadata_mode=MetadataMode.NONE), embedding=node.embedding,
        text_embedding=node_field(node, "text_embedding"),
        image=data.decode() if isinstance(data, bytes) else data,
        image_path=str(path) if path else None,
        image_url=str(url) if url else None,
        image_mimetype=resource.mimetype if resource is not None else None,
        metadata=dict(node.metadata),
        excluded_embed_metadata_keys=list(node.excluded_embed_metadata_keys),
        excluded_llm_metadata_keys=list(node.excluded_llm_metadata_keys),
        relationships=dict(node.relationships) if relationships is None else relationships,
        metadata_template=node.metadata_template, metadata_separator=node.metadata_separator,
    )


def storable(node: BaseNode) -> BaseNode:
    """The node as the store keeps it. An ``ImageDocument`` (or any 0.14 node holding an
    ``image_resource``) becomes the equivalent ``ImageNode``: LlamaIndex reads unknown node types back
    as ``TextNode`` and loses the image. A document stored as itself is its own source document."""
    is_document = isinstance(node, Document)
    has_media = media_resource_of(node) is not None
    keeps_type = (isinstance(node, ImageNode) or node_field(node, "image_resource") is None) and not has_media
    if keeps_type and not is_document:
        return node  # the common case: a TextNode or ImageNode, stored as it is
    relationships = dict(node.relationships)
    if is_document and NodeRelationship.SOURCE not in relationships:
        relationships[NodeRelationship.SOURCE] = node.as_related_node_info()
    if keeps_type:
        if relationships == node.relationships:
            return node
        return node.model_copy(update={"relationships": relationships})
    if has_media and node_field(node, "image_resource") is None:
        return to_media_node(node, relationships)
    return to_image_node(node, relationships)


def read_node(node: BaseNode) -> NodeParts:
    """Read a node once: its words and its image reference. Raises ``TypeError`` for a non-node."""
    if not isinstance(node, BaseNode):
        raise TypeError(f"expected a LlamaIndex node, got {type(node).__name__}")
    data, path, url = image_reference_parts(node)
    words = node.get_content(metadata_mode=MetadataMode.NONE)
    image = _image_ref_of(node, data, path, url)
    media = node_media_ref(node) if image is None else None
    return NodeParts(node, words, image, bool(path or url) or media is not None, media)


# ---------------------------------------------------------------- caller inputs -> Parts


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
            return ImageRef(f"data URI {where}", _data_uri_payload(item, f"data URI {where}"))
        return ImageRef(short_label(item), item)
    if isinstance(item, (bytes, bytearray, memoryview)):
        return ImageRef(f"bytes {where}", bytes(item))
    if isinstance(item, BytesIO):
        return ImageRef(f"BytesIO {where}", item.getvalue())
    if isinstance(item, Image.Image):
        return ImageRef(f"PIL image {where}", item)
    if isinstance(item, np.ndarray):
        return ImageRef(f"array {where}", item)
    raise TypeError(f"image input {where} has type {type(item).__name__}; accepted: {IMAGE_TYPES_HELP}")


def audio_input(item: Any, position: int) -> Parts:
    """An audio input: a path, URL, bytes, ``{"array": waveform, "sampling_rate": hz}`` or a node."""
    return Parts(media=media_input("audio", item, position))


def video_input(item: Any, position: int) -> Parts:
    """A video input: a path, URL, bytes, ``{"array": frames, "fps": rate}`` or a node."""
    return Parts(media=media_input("video", item, position))


def text_input(item: Any, position: int) -> Parts:
    """A text input: a string, or the embed text of a node without pixels."""
    if isinstance(item, str):
        return Parts(text=item)
    if isinstance(item, BaseNode):
        parts = read_node(item)
        if not parts.has_pixels and not parts.has_media:
            return Parts(text=parts.embed_text)
    raise TypeError(f"text input at position {position} has type {type(item).__name__}; accepted: str or a TextNode")


def image_input(item: Any, position: int) -> Parts:
    """An image input (any of ``IMAGE_TYPES_HELP``)."""
    return Parts(image=image_ref(item, position))


def pair_input(item: Any, position: int) -> Parts:
    """A text+image input: a dict with both keys, or a node with words and pixels."""
    if isinstance(item, dict):
        unknown = set(item) - {"text", "image"}
        if unknown or "text" not in item or "image" not in item:
            raise TypeError(f"text+image input at position {position} must be {PAIR_HELP}; got keys {sorted(item)}")
        if not isinstance(item["text"], str):
            raise TypeError(f"text+image input at position {position}: 'text' must be a str")
        return Parts(text=item["text"], image=image_ref(item["image"], position))
    if isinstance(item, BaseNode):
        parts = read_node(item)
        if parts.modality == "text+image":
            return Parts(text=parts.embed_text, image=parts.image)
        if parts.has_pixels:  # the node rule (``NodeParts.modality``): pixels without words are an image
            raise TypeError(f"text+image input at position {position}: node {item.node_id} has no words, so it "
                            "is an image; embed it with modality 'image'")
    raise TypeError(f"text+image input at position {position} has type {type(item).__name__}; accepted: {PAIR_HELP}")


INPUT_READERS = {
    "text": text_input,
    "image": image_input,
    "text+image": pair_input,
    "audio": audio_input,
    "video": video_input,
}
"""How a caller's input of each modality is read into ``Parts`` (by the in-process and the remote embedding)."""


# ---------------------------------------------------------------- helpers


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


def _data_uri_payload(uri: str, label: str) -> Base64Data:
    header, _, payload = uri.partition(",")
    if not header.endswith(";base64"):
        raise ImageLoadError(label, "only base64 data: URIs are supported")
    return Base64Data(payload)


# ---------------------------------------------------------------- queries

QueryModality = Literal["text", "image", "audio", "video"]
"""Which kind of vector drives a query's dense search (the store ranks by it, ``plan.dense_restriction``)."""
QUERY_MODALITIES: tuple[QueryModality, ...] = ("text", "image", "audio", "video")
DATA_URI_MODALITIES: dict[str, QueryModality] = {"data:image/": "image", "data:audio/": "audio", "data:video/": "video"}
"""A ``data:`` URI says what it holds by its media type: such a query string is that example, never words."""


def data_uri_modality(text: Any) -> Optional[QueryModality]:
    """"image", "audio" or "video" for a ``data:`` URI of that media type, else None (plain text)."""
    if not isinstance(text, str) or not text.startswith("data:"):
        return None
    return next((kind for prefix, kind in DATA_URI_MODALITIES.items() if text.startswith(prefix)), None)


@dataclass
class MediaQueryBundle(QueryBundle):
    """A query by an audio or video example (``media``: path, URL, bytes or array), with optional words
    for BM25 and the rerankers. LlamaIndex's ``QueryBundle`` has a field for an image only."""

    media: Any = field(default=None, repr=False)
    media_kind: MediaKind = "audio"


@dataclass(frozen=True)
class QueryParts:
    """One reading of a query, shared by the pipeline, the store's planner and the reranker: its words
    (BM25 and the rerankers) and the example that drives the dense search (an image, audio or video),
    when it has one. ``modality`` is the dense search's: the example's kind, else "text"."""

    text: Optional[str]
    example: Optional[Any] = None
    example_kind: Optional[QueryModality] = None

    @property
    def modality(self) -> QueryModality:
        return self.example_kind or "text"

    def image_parts(self, label: str = "query image") -> Parts:
        """The reranker's side: the words and, for an image example, the image (not yet decoded)."""
        image = None
        if self.example_kind == "image":
            ref = image_ref(self.example, 0)
            image = ImageRef(f"{label} {ref.label}", ref.source)
        return Parts(text=self.text, image=image)


def read_query(query: Union[QueryBundle, str]) -> QueryParts:
    """Read a query once. The example is, in this order: a ``MediaQueryBundle``'s media, the bundle's
    ``image_path``, a ``data:`` image URI among its ``custom_embedding_strs``, or the query string
    itself when it is a ``data:`` URI (what an HTTP client sends). Words that are a ``data:`` URI are
    never read as text."""
    if isinstance(query, str):
        query = QueryBundle(query_str=query)
    words = query.query_str if query.query_str and query.query_str.strip() else None
    own_kind = data_uri_modality(words)
    text = None if own_kind is not None else words
    if isinstance(query, MediaQueryBundle):
        return QueryParts(text, query.media, query.media_kind)
    if query.image_path:
        return QueryParts(text, query.image_path, "image")
    for custom in query.custom_embedding_strs or ():
        if data_uri_modality(custom) == "image":
            return QueryParts(text, custom, "image")
    if own_kind is not None:
        return QueryParts(None, words, own_kind)
    return QueryParts(text)
