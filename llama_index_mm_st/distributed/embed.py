"""The actor stage: one model per actor, embedding the nodes the read tasks read and decoded.

Nodes get exactly what the in-process job gives them (``MultimodalEmbedding.embed_nodes``: the
embedding's own node rule), from the pixels that came with the row. With a ``StoreSpec`` the actor
writes its nodes to the Qdrant server itself (upserts by the deterministic node ids, so writing a
batch again changes nothing), recording the model first (``ingest.write_manifest``: the model is
recorded when the first point is written); otherwise the embedded nodes go back to the driver.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional

import numpy as np

from ..embedding import MultimodalEmbedding
from ..ingest import Manifest, write_manifest
from ..inputs import ImageRef, NodeParts
from ..multivector import attach_multivector, node_multivector
from ..store import MultimodalQdrantStore
from ..store.backends.choose import API_KEY_ENV
from ..store.reopen import ReopenArgs
from .read import row, rows_of, to_batch


@dataclass(frozen=True)
class StoreSpec:
    """How an actor opens the server store for itself: the store's own way to reopen, as pickling it
    sends (its ``ReopenArgs``: the url, the api key, the ``client_kwargs`` and the store's settings), so
    an actor connects exactly as the caller's store does. The key travels in Ray's object store, never
    in logs. ``identity`` tells two specs apart (a worker keeps one connection per spec)."""

    collection: str
    url: str
    reopen: tuple[Callable[..., MultimodalQdrantStore], tuple[Any, ...]] = field(repr=False, compare=False)
    identity: str = field(repr=False)

    @classmethod
    def of(cls, store: MultimodalQdrantStore) -> "StoreSpec":
        """The spec of a store on a Qdrant server; a ``ValueError`` for any other store."""
        if store.url is None:
            raise ValueError("actors write only to a Qdrant server (a store opened with url=)")
        rebuild, args = store.__reduce__()  # (reopened, (class, ReopenArgs)): TypeError if it can't be reopened
        if len(args) == 2 and isinstance(args[1], ReopenArgs) and args[1].api_key is None:
            # the store's key came from the driver's $QDRANT_API_KEY: the actors get that key, not their own
            args = (args[0], replace(args[1], api_key=os.environ.get(API_KEY_ENV)))
        return cls(store.collection_name, store.url, (rebuild, args),
                   hashlib.sha256(pickle.dumps((rebuild, args))).hexdigest())

    def open(self) -> MultimodalQdrantStore:
        rebuild, args = self.reopen
        return rebuild(*args)


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
                 torch_threads: Optional[int] = None, manifest: Optional[Manifest] = None) -> None:
        if torch_threads:
            import torch

            torch.set_num_threads(torch_threads)
        self.embedding = embedding
        self.store = store.open() if store is not None else None
        self.manifest = manifest

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = list(rows_of(batch))
        node_rows = [r for r in rows if r["kind"] == "node"]
        out = [r for r in rows if r["kind"] != "node"]
        if node_rows:
            embedded, failures = self.embed_rows(node_rows)
            out += failures
            if self.store is not None and embedded:
                if self.manifest is not None:  # recorded when this actor writes its first point
                    write_manifest(self.store, self.manifest.model, self.manifest.dim)
                    self.manifest = None
                self.store.add_parts([parts for parts, _ in embedded])
            out += [row("node", doc_id=r["doc_id"], action=r["action"], modality=parts.modality,
                        node=b"" if self.store is not None else pack_node(parts.node)) for parts, r in embedded]
        return to_batch(out)

    def embed_rows(self, rows: list[dict[str, Any]]) -> tuple[list[tuple[NodeParts, dict[str, Any]]], list[dict[str, Any]]]:
        """(node's reading, with its vectors set, and its row) for the good rows; failure rows for the
        others. The embedding's own node rule runs, on the pixels the read task decoded."""
        parts = []
        for r in rows:
            read: NodeParts = pickle.loads(r["node"])
            if r["height"] and read.image is not None:
                pixels = np.frombuffer(r["pixels"], dtype=np.uint8).reshape(int(r["height"]), int(r["width"]), 3)
                read = replace(read, image=ImageRef(read.image.label, pixels))
            parts.append(read)
        kept, failed = self.embedding.embed_nodes(parts, on_error="skip")
        by_node = {id(part.node): (part, r) for part, r in zip(parts, rows)}
        failures = [row("failure", doc_id=rows[f.position]["doc_id"], item=f.item,
                        reason=str(getattr(f.error, "reason", None) or f.error)) for f in failed]
        return [by_node[id(node)] for node in kept], failures
