"""The actors' own writes (the Qdrant-server path), without a server: the worker class runs here,
writing to a qdrant-client local-mode store, as a Ray actor would write to a server."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qdrant_client import QdrantClient

from llama_index_mm_st import ImageReader, MultimodalEmbedding, MultimodalQdrantStore
from llama_index_mm_st.distributed.embed import EmbedWorker
from llama_index_mm_st.distributed.job import read_config
from llama_index_mm_st.distributed.listing import list_files
from llama_index_mm_st.distributed.read import read_batch
from llama_index_mm_st.distributed.resume import SnapshotCounts

from .test_ray_index import points, same_points


class LocalSpec:
    """Stands in for ``StoreSpec``: ``open()`` gives the store the worker writes to."""

    def __init__(self, store: MultimodalQdrantStore) -> None:
        self.store = store

    def open(self) -> MultimodalQdrantStore:
        return self.store


def test_the_same_batch_written_twice_gives_the_same_points(ray_corpus: Path, tiny_clip_dir: Path, tmp_path: Path):
    embedding = MultimodalEmbedding(str(tiny_clip_dir), precision="fp32")
    store = MultimodalQdrantStore("mmst", client=QdrantClient(path=str(tmp_path / "local")), dim=embedding.dimension)
    reader = ImageReader()
    config = read_config(reader, embedding)
    rows = list_files([str(ray_corpus)], reader, config.cache_root).rows
    files = rows[:6] + rows[-6:]  # images (JPEG folder, with the broken one), PNGs, the PDF, text
    batch = {column: np.array([row[column] for row in files], dtype=object) for column in files[0]}
    read = read_batch(batch, config, SnapshotCounts(store))
    node_rows = int((read["kind"] == "node").sum())
    assert node_rows >= 8

    worker = EmbedWorker(embedding, store=LocalSpec(store))  # type: ignore[arg-type]
    first_out = worker(read)
    first = points(store)
    second_out = worker(read)
    second = points(store)
    assert len(first) == node_rows
    same_points(second, first)
    for out in (first_out, second_out):  # the driver gets a summary, never the nodes
        nodes = out["kind"] == "node"
        assert nodes.sum() == node_rows and all(blob == b"" for blob in out["node"][nodes])
        assert set(out["modality"][nodes]) <= {"text", "image", "text+image"}
    store.close()
