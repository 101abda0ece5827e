"""The actor stage: one model per actor, embedding the node rows the read tasks decoded.

Nodes get exactly what ``MultimodalEmbedding.__call__`` gives them (the same plan: main vector by
modality, ``text_embedding`` from an image node's words), but from the pixels that came with the row.
With a ``StoreSpec`` the actor writes its nodes to the Qdrant server itself (upserts by the
deterministic node ids, so writing a batch again changes nothing); otherwise the embedded nodes go
back to the driver.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ..embedding import MultimodalEmbedding
from ..store import MultimodalQdrantStore
from ..store.plan import node_modality
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
                self.store.add([node for node, _ in embedded])
            out += [row("node", doc_id=r["doc_id"], action=r["action"], modality=node_modality(node),
                        node=b"" if self.store is not None else pickle.dumps(node)) for node, r in embedded]
        return to_batch(out)

    def embed_rows(self, rows: list[dict[str, Any]]) -> tuple[list[tuple[Any, dict[str, Any]]], list[dict[str, Any]]]:
        """(node with its vectors set, its row) for the good rows; failure rows for the others."""
        nodes = [pickle.loads(r["node"]) for r in rows]
        inputs, modalities, text_of_images = self.embedding._plan_nodes(nodes)
        for position, r in enumerate(rows):
            if r["height"]:
                pixels = np.frombuffer(r["pixels"], dtype=np.uint8).reshape(int(r["height"]), int(r["width"]), 3)
                inputs[position] = {"text": inputs[position]["text"], "image": pixels} \
                    if modalities[position] == "text+image" else pixels
        vectors: list[Optional[list[float]]] = [None] * len(nodes)
        failures: list[dict[str, Any]] = []
        for modality in ("text", "image", "text+image"):
            positions = [i for i, m in enumerate(modalities) if m == modality]
            if not positions:
                continue
            result = self.embedding.embed([inputs[i] for i in positions], modality, on_error="skip")
            for local, position in enumerate(positions):
                vectors[position] = result.embeddings[local]
            for failure in result.failures:
                node = nodes[positions[failure.position]]
                failures.append(row("failure", doc_id=rows[positions[failure.position]]["doc_id"],
                                    item=f"node {node.node_id} ({failure.item})",
                                    reason=str(getattr(failure.error, "reason", failure.error))))
        texts = [i for i in text_of_images if vectors[i] is not None]
        if texts:
            result = self.embedding.embed([text_of_images[i] for i in texts], "text")
            for position, vector in zip(texts, result.embeddings):
                nodes[position].text_embedding = vector
        embedded = []
        for node, vector, r in zip(nodes, vectors, rows):
            if vector is not None:
                node.embedding = vector
                embedded.append((node, r))
        return embedded, failures
