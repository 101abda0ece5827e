"""The actor stage: one model per actor, embedding the node rows the read tasks decoded.

Nodes get exactly what ``MultimodalEmbedding.__call__`` gives them (the same plan: main vector by
modality, ``text_embedding`` from an image node's words), but from the pixels that came with the row.
With a ``StoreSpec`` the actor writes its nodes to the Qdrant server itself (upserts by the
deterministic node ids, so writing a batch again changes nothing); otherwise the embedded nodes go
back to the driver.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, replace
from typing import Any, Optional

import numpy as np

from ..embedding import MultimodalEmbedding
from ..inputs import ImageRef, read_node
from ..multivector import attach_multivector, node_multivector
from ..store import MultimodalQdrantStore
from .read import row, rows_of, to_batch


@dataclass(frozen=True)
class StoreSpec:
    """How an actor opens the server store for itself. The key travels in Ray's object store, never in logs."""

    collection: str
    url: str
    api_key: Optional[str] = None

    def open(self) -> MultimodalQdrantStore:
        return MultimodalQdrantStore(self.collection, url=self.url, api_key=self.api_key)

    def __repr__(self) -> str:
        return f"StoreSpec(collection={self.collection!r}, url={self.url!r})"


def pack_node(node: Any) -> bytes:
    """An embedded node for the driver: pickled with its late-interaction multivector beside it
    (pickling a LlamaIndex node drops the private state that carries it)."""
    return pickle.dumps((node, node_multivector(node)))


def unpack_node(data: bytes) -> Any:
    node, multivector = pickle.loads(data)
    if multivector is not None:
        attach_multivector(node, multivector)
    return node


class EmbedWorker:
    """A Ray Data actor: ``MultimodalEmbedding`` arrives pickled (its configuration) and loads here, once."""

    def __init__(self, embedding: MultimodalEmbedding, store: Optional[StoreSpec] = None,
                 torch_threads: Optional[int] = None) -> None:
        if torch_threads:
            import torch

            torch.set_num_threads(torch_threads)
        self.embedding = embedding
        self.store = store.open() if store is not None else None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = list(rows_of(batch))
        node_rows = [r for r in rows if r["kind"] == "node"]
        out = [r for r in rows if r["kind"] != "node"]
        if node_rows:
            embedded, failures = self.embed_rows(node_rows)
            out += failures
            if self.store is not None and embedded:
                self.store.add([node for node, _, _ in embedded])
            out += [row("node", doc_id=r["doc_id"], action=r["action"], modality=modality,
                        node=b"" if self.store is not None else pack_node(node)) for node, modality, r in embedded]
        return to_batch(out)

    def embed_rows(self, rows: list[dict[str, Any]]) -> tuple[list[tuple[Any, str, dict[str, Any]]], list[dict[str, Any]]]:
        """(node with its vectors set, its modality, its row) for the good rows; failure rows for the
        others. The embedding's own node rule runs, on the pixels the read task decoded."""
        parts = []
        for r in rows:
            read = read_node(pickle.loads(r["node"]))
            if r["height"] and read.image is not None:
                pixels = np.frombuffer(r["pixels"], dtype=np.uint8).reshape(int(r["height"]), int(r["width"]), 3)
                read = replace(read, image=ImageRef(read.image.label, pixels))
            parts.append(read)
        kept, failed = self.embedding.embed_nodes(parts, on_error="skip")
        by_id = {id(part.node): (part.modality, r) for part, r in zip(parts, rows)}
        failures = [row("failure", doc_id=rows[f.position]["doc_id"], item=f.item,
                        reason=str(getattr(f.error, "reason", f.error))) for f in failed]
        return [(node, *by_id[id(node)]) for node in kept], failures
