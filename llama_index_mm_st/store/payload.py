"""The payload codec, pure and without I/O: a LlamaIndex node <-> one point (named vectors and payload).

Every node is checked here before anything is written (vectors finite and of the store's size,
metadata a payload can hold), and read back here from what a query or a read returns. The query
side (a ``VectorStoreQuery`` -> ranked lists fused in the engine) is ``plan.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
from llama_index.core.schema import BaseNode, ImageNode, TextNode
from llama_index.core.vector_stores.utils import metadata_dict_to_node

from llama_index_mm_st.errors import SchemaMismatchError
from llama_index_mm_st.ids import point_id
from llama_index_mm_st.inputs import NodeParts, read_node, storable
from llama_index_mm_st.multivector import attach_multivector, check_multivector, node_multivector
from llama_index_mm_st.store.schema import (
    MODALITY_KEY,
    NODE_CONTENT_KEY,
    NODE_TYPE_KEY,
    REF_DOC_ID_KEY,
    RESERVED_PAYLOAD_KEYS,
)
from llama_index_mm_st.types import DENSE_VECTOR_NAMES, SparseVector

SparseEncoder = Callable[[str], SparseVector]
"""Text -> its BM25 sparse vector (``store.bm25``)."""


@dataclass(frozen=True)
class PointSpec:
    """One point to upsert: id, named dense vectors, the optional BM25 vector, payload. ``node_id``
    names the node in errors (the point id is derived from it)."""

    id: str
    dense: Mapping[str, Sequence[float]]
    sparse: Optional[SparseVector]
    payload: dict[str, Any]
    node_id: str = ""
    multivector: Optional[Any] = None
    """A late-interaction collection's (tokens, dim) float32 matrix, scored by MaxSim."""
    learned_sparse: Optional[SparseVector] = None
    """The learned sparse model's vector of the node's words (``StoreSchema.learned_sparse``)."""


def bm25_text(parts: NodeParts, metadata_keys: Sequence[str]) -> str:
    """The words BM25 indexes: the node's words plus caption-like metadata (alt text, OCR) when present."""
    words = parts.words
    metadata = parts.node.metadata
    extra = [value for key in metadata_keys if isinstance(value := metadata.get(key), str)]
    if not extra:  # the common case: the node's own words only
        return words if words and not words.isspace() else ""
    texts = [words]
    for value in extra:
        if value not in texts:
            texts.append(value)
    return "\n".join(t for t in texts if t and t.strip())


def dense_vectors(parts: NodeParts) -> dict[str, Sequence[float]]:
    """The node's named dense vectors, read from the fields ``NodeParts.vector_fields`` names (the one
    rule: a node with pixels keeps its image vector in ``embedding`` and its words' in ``text_embedding``)."""
    fields = parts.node.__dict__  # ``node_field``: pydantic fields without the slow attribute fallback
    return {name: vec for name, fieldname in parts.vector_fields.items() if (vec := fields.get(fieldname)) is not None}


def with_vectors(node: BaseNode, vectors: Mapping[str, Sequence[float]]) -> BaseNode:
    """A node read back with its stored vectors in the fields ``NodeParts.vector_fields`` names, so
    ``other_store.add(store.get_nodes())`` moves a store the way LlamaIndex stores move nodes."""
    for name, fieldname in read_node(node).vector_fields.items():
        vector = vectors.get(name)
        if vector is not None and fieldname in type(node).model_fields:
            setattr(node, fieldname, list(vector))
    return node


def check_vector(vector: Sequence[float], what: str) -> None:
    """Refuse NaN and infinity: a stored one poisons every search that meets it, a query one finds nothing.

    The C-speed ``sum`` is finite for almost every finite vector; only when it is not (a non-finite
    entry, or an overflow) are the entries checked one by one.
    """
    if math.isfinite(sum(vector)):
        return
    bad = next((i for i, x in enumerate(vector) if not math.isfinite(x)), None)
    if bad is not None:
        raise ValueError(f"{what} has a non-finite value ({vector[bad]}) at position {bad}")


JSON_INT_RANGE = (-(2**63), 2**63 - 1)
"""Qdrant stores integers as 64-bit signed; a larger Python int can't be a payload value."""


def check_payload_value(value: Any, where: str) -> None:
    """Refuse what a Qdrant payload can't hold, naming the key: only JSON values (finite numbers,
    64-bit integers, valid Unicode text, lists, objects with text keys, null) go in."""
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"{where} is not valid Unicode text ({exc.reason} at {exc.start})") from None
        return
    if isinstance(value, int):
        if not JSON_INT_RANGE[0] <= value <= JSON_INT_RANGE[1]:
            raise ValueError(f"{where} = {value} does not fit a 64-bit integer")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} = {value} is not a finite number")
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_payload_value(item, f"{where}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where} has a key {key!r} that is not text")
            check_payload_value(key, f"{where} key")
            check_payload_value(item, f"{where}.{key}")
        return
    raise ValueError(f"{where} has type {type(value).__name__}, which is not a JSON value")


def node_payload(parts: NodeParts) -> dict[str, Any]:
    """LlamaIndex's node payload layout, with images by reference and no vectors inside.

    LlamaIndex also writes ``doc_id`` and ``document_id``, copies of ``ref_doc_id`` that nothing
    here reads. They are left out: qdrant-edge-py 0.9 spends about 8 µs converting each string
    value of a payload, a tenth of a point's upsert cost.
    """
    node = parts.node
    exclude: dict[str, Any] = {"embedding": True, "text_embedding": True}
    if parts.has_reference:  # inline base64 only when there is nothing else to point at
        if isinstance(node, ImageNode):
            exclude["image"] = True
        else:
            exclude["image_resource"] = {"data": True}
    payload = dict(node.metadata)
    try:
        payload[NODE_CONTENT_KEY] = node.model_dump_json(exclude=exclude)
    except ValueError as exc:  # pydantic's PydanticSerializationError is a ValueError
        raise ValueError(f"node {node.node_id} cannot be serialised: {exc}") from None
    payload[NODE_TYPE_KEY] = node.class_name()
    payload[MODALITY_KEY] = parts.modality
    payload[REF_DOC_ID_KEY] = node.ref_doc_id or "None"
    return payload


def check_node(parts: NodeParts, dim: int, names: Sequence[str] = DENSE_VECTOR_NAMES) -> dict[str, Sequence[float]]:
    """A node's dense vectors, checked; a node without one, with a wrong-sized or non-finite one, with
    a vector the store has no place for (audio in a store made before audio), or with metadata a
    payload can't hold is refused by name before anything is written."""
    node = parts.node
    dense = dense_vectors(parts)
    if not dense.keys() <= set(names):
        missing = sorted(set(dense) - set(names))[0]
        raise ValueError(
            f"node {node.node_id}: this store has no {missing!r} vector (it holds {list(names)}: it was made "
            f"before {missing} support, or with dense_vectors leaving {missing} out); put {missing} in a new store"
        )
    if not dense:
        raise ValueError(
            f"node {node.node_id} has no embedding; embed it first (a node with pixels: embedding=image vector, "
            "text_embedding=text vector)"
        )
    for name, vec in dense.items():
        if len(vec) != dim:
            raise ValueError(f"node {node.node_id}: {name} vector has {len(vec)} dimensions, the store has {dim}")
        if not math.isfinite(sum(vec)):  # the C-speed check; ``check_vector`` finds the entry when it fails
            check_vector(vec, f"node {node.node_id}: {name} vector")
    metadata = node.metadata
    if metadata:
        clash = RESERVED_PAYLOAD_KEYS.intersection(metadata)
        if clash:
            raise ValueError(f"node {node.node_id}: metadata keys {sorted(clash)} are reserved by the store")
        for key, value in metadata.items():
            if not _plainly_fits(value):  # the full check names what does not fit
                check_payload_value(value, f"node {node.node_id}: metadata {key!r}")
    return dense


def _plainly_fits(value: object) -> bool:
    """The common payload values that certainly fit, told apart cheaply: ASCII text, a bool, a 64-bit
    int, a finite float. Anything else gets ``check_payload_value`` (which accepts much more)."""
    if type(value) is str:
        return value.isascii()
    if type(value) is float:
        return math.isfinite(value)
    if type(value) is bool:
        return True
    return type(value) is int and JSON_INT_RANGE[0] <= value <= JSON_INT_RANGE[1]


def point_multivector(node: BaseNode, dim: int, late: bool) -> Optional[Any]:
    """The node's multivector, checked, in a late-interaction collection; None in a single-vector one.
    A node of the other kind is refused by name: the two kinds can't share a collection."""
    matrix = node_multivector(node)
    if late and matrix is None:
        raise SchemaMismatchError(
            f"node {node.node_id} has no multivector (it was embedded by a single-vector model, or lost it in a "
            "copy), but the collection holds late-interaction multivectors; embed it with the collection's "
            "late-interaction model, or use another collection"
        )
    if not late and matrix is not None:
        raise SchemaMismatchError(
            f"node {node.node_id} carries a late-interaction multivector, but the collection holds single vectors "
            "per node (CLIP-style); use another collection for the late-interaction model"
        )
    return None if matrix is None else check_multivector(matrix, dim, f"node {node.node_id}")


def node_to_point(node: BaseNode, dim: int, encode: Optional[SparseEncoder], bm25_keys: Sequence[str],
                  names: Sequence[str] = DENSE_VECTOR_NAMES, late: bool = False) -> PointSpec:
    """One node -> one point, checked by ``check_node`` (so a bad node raises before anything is written).
    The multivector is read from the node as given: ``storable`` may build a new node object.
    ``encode`` None: the collection has no BM25 vector (a learned sparse model replaced it)."""
    stored = storable(node)
    return parts_to_point(read_node(stored) if stored is not node else None, node, dim, encode, bm25_keys, names, late)


def parts_to_point(parts: Optional[NodeParts], node: BaseNode, dim: int, encode: Optional[SparseEncoder],
                   bm25_keys: Sequence[str], names: Sequence[str] = DENSE_VECTOR_NAMES, late: bool = False) -> PointSpec:
    """``node_to_point`` for a node already read (``parts``, of a node in its stored form): the
    ingestion job reads each node once and hands the reading on."""
    multivector = point_multivector(node, dim, late)
    parts = parts if parts is not None else read_node(node)
    dense = check_node(parts, dim, names)
    indexed = bm25_text(parts, bm25_keys)
    sparse = encode(indexed) if indexed and encode is not None else None
    if sparse is not None and not len(sparse.indices):
        sparse = None
    payload = node_payload(parts)
    return PointSpec(point_id(node.node_id), dense, sparse, payload, node.node_id, multivector)


_NODE_CLASSES: dict[str, type[BaseNode]] = {cls.class_name(): cls for cls in (TextNode, ImageNode)}
"""Node types read back by validating their JSON in one step (pydantic-core parses and validates it
together, about 1.5x faster than LlamaIndex's ``json.loads`` + constructor). Their constructors only
translate the 0.14 ``*_resource`` keyword forms, which a ``model_dump_json`` of the type never holds,
so skipping them gives the same node. Other types go through LlamaIndex's own ``metadata_dict_to_node``."""

READ_BACK_KEYS = (NODE_CONTENT_KEY, NODE_TYPE_KEY)
"""The payload keys a node is rebuilt from; queries ask the engine for these alone."""


def payload_to_node(payload: Mapping[str, Any]) -> BaseNode:
    """The node a point's payload holds (``node_payload``'s layout, or LlamaIndex's own)."""
    node_type = payload.get(NODE_TYPE_KEY)
    cls = _NODE_CLASSES.get(node_type) if isinstance(node_type, str) else None
    content = payload.get(NODE_CONTENT_KEY)
    if cls is None or not isinstance(content, str):
        return metadata_dict_to_node(dict(payload))
    return cls.model_validate_json(content)


def node_of(found: Any) -> BaseNode:
    """A node as a read or a query returned it (a ``backends.Hit``), with the vectors it came back with."""
    node = with_vectors(payload_to_node(found.payload), found.dense)
    if found.multivector is not None:
        attach_multivector(node, np.asarray(found.multivector, dtype=np.float32))
    return node
