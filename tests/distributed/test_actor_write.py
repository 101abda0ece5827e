"""The actors' own writes (the Qdrant-server path), without a server: the worker class runs here,
writing to a qdrant-client local-mode store, as a Ray actor would write to a server."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qdrant_client import QdrantClient

import pickle

from llama_index_mm_st import ImageReader, MultimodalEmbedding, MultimodalQdrantStore
from llama_index_mm_st.distributed.embed import EmbedWorker
from llama_index_mm_st.distributed.read import ReadConfig, read_batch
from llama_index_mm_st.distributed.resume import ServerCounts, SnapshotCounts
from llama_index_mm_st.ingest import IngestPlan, StoredDocuments, list_inputs, readers_for

from .test_ray_index import points, same_points


def read_config(reader: ImageReader, embedding: MultimodalEmbedding) -> ReadConfig:
    return ReadConfig(readers_for(reader), IngestPlan.for_model(embedding), embedding.decode_options,
                      embedding.fetch_options)


def file_batch(paths: list[str], reader: ImageReader, pick=lambda files: files) -> dict:  # type: ignore[no-untyped-def]
    files = pick(list_inputs(paths, reader).files)
    return {"file": np.array([pickle.dumps(item) for item in files], dtype=object)}


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
    # images (JPEG folder, with the broken one), PNGs, the PDF, text
    batch = file_batch([str(ray_corpus)], reader, lambda files: files[:6] + files[-6:])
    read = read_batch(batch, config, SnapshotCounts(StoredDocuments()))
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


class LocalServerCounts(ServerCounts):
    """``ServerCounts`` whose "server" is a local-mode store."""

    def __init__(self, store: MultimodalQdrantStore) -> None:
        self.store = store

    def _store(self) -> MultimodalQdrantStore:
        return self.store


def test_with_actor_writes_a_changed_file_is_deleted_in_the_read_task_before_its_rows_go_on(
        ray_corpus: Path, tiny_clip_dir: Path, tmp_path: Path):
    import shutil

    embedding = MultimodalEmbedding(str(tiny_clip_dir), precision="fp32")
    store = MultimodalQdrantStore("mmst", client=QdrantClient(path=str(tmp_path / "local")), dim=embedding.dimension)
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(ray_corpus / "guide_3.md", folder / "guide.md")  # two nodes
    shutil.copy(ray_corpus / "notes.txt", folder / "notes.txt")
    reader = ImageReader()
    config = read_config(reader, embedding)

    def read() -> dict:  # type: ignore[type-arg]
        return read_batch(file_batch([str(folder)], reader), config, LocalServerCounts(store))

    worker = EmbedWorker(embedding, store=LocalSpec(store))  # type: ignore[arg-type]
    worker(read())
    before = points(store)
    assert len(before) == 3

    (folder / "guide.md").write_text("# Short now\n\nOne line.\n")  # one node instead of two
    rows = read()
    actions = dict(zip(rows["doc_id"][rows["kind"] == "doc"], rows["action"][rows["kind"] == "doc"]))
    assert sorted(actions.values()) == ["replace", "unchanged"]
    assert store.count() == 1  # the changed document's old points are gone already; the unchanged one stays
    worker(rows)
    after = points(store)
    assert len(after) == 2 and set(after) < set(before)
    store.close()
