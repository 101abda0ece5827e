"""LlamaIndex nodes over HTTP: the one wire form of a node, its vectors and its multivector.

``RemoteMultimodalStore`` sends nodes to ``mmst serve`` and reads them back in this form, and the
server reads and writes it, so both ends share one rule. A node travels as its class name and its
JSON without vectors (what a LlamaIndex vector store keeps as ``_node_content``, rebuilt by LlamaIndex's
own ``metadata_dict_to_node``), and each vector as base64 little-endian float32 (exact for what a
Qdrant collection stores, and a quarter of the bytes of JSON numbers). A late-interaction multivector
(``multivector.node_multivector``) travels beside the node, since it lives in the node's private state.
Base layer: imports only LlamaIndex's schema and numpy, so a client without torch or Qdrant uses it.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
from llama_index.core.schema import BaseNode, ImageNode
from llama_index.core.vector_stores.utils import metadata_dict_to_node

from .inputs import storable
from .multivector import attach_multivector, node_multivector

VECTOR_FIELDS = ("embedding", "text_embedding")
"""Node fields that hold vectors (``inputs.NodeParts.vector_fields``); they travel beside the node's JSON."""


def encode_vector(vector: Union[Sequence[float], np.ndarray]) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def decode_vector(value: Any, what: str) -> list[float]:
    """A vector from its base64 float32 form (or a JSON list of numbers); ``ValueError`` naming ``what``."""
    if isinstance(value, list):
        try:
            return [float(x) for x in value]
        except (TypeError, ValueError):
            raise ValueError(f"{what}: a vector is a list of numbers") from None
    if not isinstance(value, str):
        raise ValueError(f"{what}: a vector is base64 float32 or a list of numbers, got {type(value).__name__}")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what}: not valid base64") from None
    if len(raw) % 4:
        raise ValueError(f"{what}: {len(raw)} bytes is not a whole number of float32 values")
    return np.frombuffer(raw, dtype="<f4").astype(float).tolist()


def node_to_wire(node: BaseNode) -> dict[str, Any]:
    """A node (in the form a store keeps it: ``inputs.storable``) with its vectors beside it."""
    multivector = node_multivector(node)
    stored = storable(node)
    item: dict[str, Any] = {
        "type": stored.class_name(),
        "content": stored.model_dump_json(exclude={name: True for name in VECTOR_FIELDS}),
    }
    for name in VECTOR_FIELDS:
        vector = stored.__dict__.get(name)
        if vector is not None:
            item[name] = encode_vector(vector)
    if multivector is not None:
        item["multivector"] = {"rows": int(multivector.shape[0]), "data": encode_vector(multivector.reshape(-1))}
    return item


def node_from_wire(item: Mapping[str, Any], what: str) -> BaseNode:
    """The node ``node_to_wire`` sent; ``ValueError`` naming ``what`` (``nodes[3]``) when it is not one."""
    if not isinstance(item, Mapping) or not isinstance(item.get("content"), str):
        raise ValueError(f"{what}: a node is {{\"type\", \"content\" (the node's JSON), \"embedding\"...}}")
    try:
        node = metadata_dict_to_node({"_node_content": item["content"], "_node_type": item.get("type")})
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise ValueError(f"{what}: not a LlamaIndex node ({_first_line(exc)})") from None
    for name in VECTOR_FIELDS:
        value = item.get(name)
        if value is not None:
            if name not in type(node).model_fields:
                raise ValueError(f"{what}: a {type(node).__name__} has no {name}")
            setattr(node, name, decode_vector(value, f"{what}.{name}"))
    multivector = item.get("multivector")
    if multivector is not None:
        attach_multivector(node, _matrix(multivector, f"{what}.multivector"))
    return node


def _matrix(value: Any, what: str) -> np.ndarray:
    if not isinstance(value, Mapping) or not isinstance(value.get("rows"), int) or value["rows"] < 1:
        raise ValueError(f"{what}: a multivector is {{\"rows\": n, \"data\": base64 float32}}")
    flat = np.asarray(decode_vector(value.get("data"), what), dtype=np.float32)
    if flat.size % value["rows"]:
        raise ValueError(f"{what}: {flat.size} values do not make {value['rows']} rows")
    return flat.reshape(value["rows"], -1)


def is_image_node(node: BaseNode) -> bool:
    return isinstance(node, ImageNode)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def optional_vector(value: Optional[Any], what: str) -> Optional[list[float]]:
    return None if value is None else decode_vector(value, what)
