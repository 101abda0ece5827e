"""Vectors our embedding made through LlamaIndex's text and image methods, remembered for a while, so the
store can tell them from the vectors it expects of a node with pixels (or media).

LlamaIndex's ``VectorStoreIndex`` embeds every node through ``embed_model.get_text_embedding_batch``, an
image node included: it sends the node's EMBED text (a caption, or the file name of a pure image) and puts
the text vector in the node's ``embedding``, where a node with pixels keeps its image vector. The store
would then keep a caption's (or a file name's) text vector as the image's, and text-to-image search would
not find the image. So ``MultimodalEmbedding``'s text methods remember the vectors they return (a hash of
the values, and the embedding that made them), and the store, given a node with pixels or media whose
``embedding`` is one of them, has that embedding embed the node the way ``embedding(nodes)`` does (its
pixels, and its words when it has any) before writing it (``reembed_text_embedded``).

``MultiModalVectorStoreIndex`` embeds an image node's pixels through ``get_image_embedding_batch`` and sets
no vector for its words, so a captioned image would lose its caption's vector (and with one store for
both halves of that index, its image write replaces the text write): those image vectors are remembered
too, and a node with words and pixels that comes with an image vector but no words' vector is embedded
whole. Nothing is remembered for vectors made the package's own way (``embedding(nodes)``, ``embed``).

A base-layer module: the embedding records, the store asks; neither imports the other.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import Any, List, Optional, Protocol, Sequence, Tuple

from llama_index.core.schema import BaseNode

from .inputs import NodeParts, read_node, storable

REMEMBERED = 65536
"""Text vectors remembered at most (the newest): LlamaIndex embeds a batch of up to 2,048 nodes
(``insert_batch_size``) right before it adds them to the store."""


class NodeEmbedder(Protocol):
    def embed_nodes(self, nodes: Sequence[NodeParts], *, on_error: str = "raise",
                    show_progress: bool = False) -> Tuple[List[BaseNode], List[Any]]:
        """Set each node's vectors by its modality (``MultimodalEmbedding.embed_nodes``)."""


_lock = threading.Lock()
_made_from_text: "OrderedDict[int, tuple[weakref.ref, str]]" = OrderedDict()
"""Hash of a vector's values -> (the embedding that made it, "text" or "image")."""


def _key(vector: Sequence[float]) -> int:
    return hash(tuple(vector))


def remember(vectors: Sequence[Sequence[float]], embedder: NodeEmbedder, made_from: str = "text") -> None:
    """These vectors were made from text (or ``made_from="image"``: from pixels alone) by ``embedder`` (held
    weakly: a vector outliving its embedding is not repaired)."""
    ref = weakref.ref(embedder)
    with _lock:
        for vector in vectors:
            key = _key(vector)
            _made_from_text[key] = (ref, made_from)
            _made_from_text.move_to_end(key)
        while len(_made_from_text) > REMEMBERED:
            _made_from_text.popitem(last=False)


def made_by(vector: Optional[Sequence[float]]) -> tuple[Optional[NodeEmbedder], Optional[str]]:
    """The embedding that made this vector and from what ("text" or "image"), if it is one remembered
    and the embedding is still alive; (None, None) otherwise."""
    if not vector:
        return None, None
    with _lock:
        found = _made_from_text.get(_key(vector))
    embedder = found[0]() if found is not None else None
    return (embedder, found[1]) if embedder is not None else (None, None)


def needs_embedding(node: BaseNode, made_from: Optional[str]) -> bool:
    """Whether a node's vectors are not what the store keeps for it: a node with pixels or media whose
    ``embedding`` was made from words, or a node with words and pixels with only an image vector."""
    if made_from is None:
        return False
    modality = read_node(node).modality
    if made_from == "text":
        return modality != "text"
    return modality == "text+image" and getattr(node, "text_embedding", None) is None


def reembed_text_embedded(nodes: Sequence[BaseNode]) -> List[BaseNode]:
    """``nodes``, where each node whose vectors are not what the store keeps for it (``needs_embedding``)
    is replaced by a copy embedded properly by the embedding that made its vector (the caller's nodes are
    not changed). The others are returned as they are; while text vectors are remembered, each node costs
    a hash of its vector."""
    out = list(nodes)
    if not _made_from_text:
        return out  # nothing was embedded through the text methods: the common case costs nothing
    todo: dict[int, List[int]] = {}
    embedders: dict[int, NodeEmbedder] = {}
    for position, node in enumerate(out):
        embedder, made_from = made_by(node.embedding)
        if embedder is not None and needs_embedding(node, made_from):
            todo.setdefault(id(embedder), []).append(position)
            embedders[id(embedder)] = embedder
    for key, positions in todo.items():
        copies = [storable(out[p]).model_copy(update={"embedding": None}) for p in positions]
        for copy in copies:
            if "text_embedding" in type(copy).model_fields:
                copy.text_embedding = None  # type: ignore[attr-defined]
        embedded, _ = embedders[key].embed_nodes([read_node(copy) for copy in copies], on_error="raise")
        for position, node in zip(positions, embedded):
            out[position] = node
    return out
