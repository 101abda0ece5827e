"""The store's documents: listed (points grouped by ref_doc_id) and deleted whole, on both backends, and a
prune killed midway (SIGKILL, as bench/wal_crash.py kills a writer) leaves each document whole or gone and
a rerun ends exactly where an uninterrupted prune does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters

from llama_index_mm_st.store import MultimodalQdrantStore
from tests.store.conftest import DIM, unit

REPO = Path(__file__).resolve().parents[2]


def chunk(document: str, part: int, rng: np.random.Generator, **metadata: object) -> TextNode:
    node = TextNode(id_=f"{document}#{part}", text=f"words of {document} part {part}",
                    embedding=unit(rng.normal(size=DIM)), metadata=dict(metadata))
    node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=document)
    return node


def test_documents_groups_points_by_document_with_the_keys_asked(make_store, rng):
    store = make_store()
    store.add([chunk("a", i, rng, file_path="/x/a.txt", piece=i) for i in range(3)]
              + [chunk("b", 0, rng, file_path="/x/b.txt")])
    found = store.documents(["file_path", "piece", "absent"])
    assert [d.id for d in found] == ["a", "b"]
    assert [d.points for d in found] == [3, 1]
    assert found[0].modalities == {"text": 3}
    assert found[0].values["file_path"] == "/x/a.txt" and found[0].values["absent"] is None
    assert found[0].values["piece"] in (0, 1, 2)
    only_b = store.documents(filters=MetadataFilters(filters=[MetadataFilter(key="file_path", value="/x/b.txt")]))
    assert [(d.id, d.points, d.values) for d in only_b] == [("b", 1, {})]


def test_delete_documents_removes_every_point_of_each_and_nothing_else(make_store, rng):
    store = make_store()
    store.add([chunk(d, i, rng) for d in ("a", "b", "c") for i in range(4)])
    store.delete_documents(["a", "c", "a", "missing"])  # repeats and unknown ids are harmless
    assert [(d.id, d.points) for d in store.documents()] == [("b", 4)]
    store.delete_documents([])
    assert store.count() == 4


async def test_async_twins(make_store, rng):
    store = make_store()
    store.add([chunk("a", 0, rng), chunk("b", 0, rng)])
    assert [d.id for d in await store.adocuments()] == ["a", "b"]
    await store.adelete_documents(["a"])
    assert [d.id for d in await store.adocuments()] == ["b"]


def test_many_documents_are_deleted_in_several_operations(tmp_path, rng, monkeypatch):
    from llama_index_mm_st.store import documents as documents_module

    monkeypatch.setattr(documents_module, "IDS_PER_DELETE", 3)
    with MultimodalQdrantStore(path=str(tmp_path / "s")) as store:
        store.add([chunk(f"d{n:02d}", i, rng) for n in range(10) for i in range(2)])
        store.delete_documents([f"d{n:02d}" for n in range(0, 10, 2)] + ["d09"])
        assert [d.id for d in store.documents()] == ["d01", "d03", "d05", "d07"]


# ------------------------------------------------------------ a prune killed midway

DOCUMENTS, PARTS, KEPT = 400, 3, 40
"""Documents of three points each under a folder; the first KEPT name files that exist and stay."""

PRUNER = textwrap.dedent(
    """
    import os, signal, sys, threading
    from llama_index_mm_st.ingest import prune
    from llama_index_mm_st.store import MultimodalQdrantStore
    from llama_index_mm_st.store import documents

    path, root, mode, arg = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    documents.IDS_PER_DELETE = 7  # many engine operations, so a kill lands between and inside them
    store = MultimodalQdrantStore(path=path)
    if mode == "after_operations":  # SIGKILL itself right after the n-th delete operation
        backend = store._collection.backend
        calls, original = [0], backend.delete
        def delete(flt):
            original(flt)
            calls[0] += 1
            if calls[0] == int(arg):
                os.kill(os.getpid(), signal.SIGKILL)
        backend.delete = delete
    elif mode == "timer":  # SIGKILL itself after arg seconds, wherever it is
        threading.Timer(arg, lambda: os.kill(os.getpid(), signal.SIGKILL)).start()
    print("pruning", flush=True)
    removed = prune(store, [root])
    store.close()
    print("done", len(removed), flush=True)
    """
)


def _build(path: Path, root: Path) -> None:
    rng = np.random.default_rng(7)
    root.mkdir(parents=True, exist_ok=True)
    nodes = []
    for n in range(DOCUMENTS):
        file = root / f"f{n:04d}.txt"
        if n < KEPT:
            file.write_text("still here")
        nodes += [chunk(f"doc{n:04d}", i, rng, file_path=str(file)) for i in range(PARTS)]
    with MultimodalQdrantStore(path=str(path)) as store:
        store.add(nodes)


def _snapshot(path: Path) -> dict[str, tuple[str, bytes]]:
    with MultimodalQdrantStore(path=str(path)) as store:
        return {p.id: (json.dumps(p.payload, sort_keys=True), np.round(np.asarray(p.dense["text"]), 5).tobytes())
                for batch in store.export_points() for p in batch}


def _run(path: Path, root: Path, mode: str, arg: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PRUNER, str(path), str(root), mode, str(arg)], cwd=REPO,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.fixture(scope="module")
def pruned_reference(tmp_path_factory) -> tuple[Path, dict]:
    """A store built once, and what an uninterrupted prune leaves of it."""
    base = tmp_path_factory.mktemp("prune_reference")
    _build(base / "store", base / "files")
    original = _snapshot(base / "store")
    from llama_index_mm_st.ingest import prune

    reference_store = base / "reference"
    import shutil

    shutil.copytree(base / "store", reference_store)
    with MultimodalQdrantStore(path=str(reference_store)) as store:
        removed = prune(store, [str(base / "files")])
    assert len(removed) == DOCUMENTS - KEPT
    reference = _snapshot(reference_store)
    assert len(reference) == KEPT * PARTS and set(reference) < set(original)
    return base, reference


@pytest.mark.parametrize("mode, arg", [("after_operations", 3), ("timer", 0.05)])
def test_a_prune_killed_midway_leaves_whole_documents_and_a_rerun_is_exact(pruned_reference, tmp_path, mode, arg):
    import shutil

    base, reference = pruned_reference
    store_dir = tmp_path / "store"
    shutil.copytree(base / "store", store_dir)
    killed = _run(store_dir, base / "files", mode, arg)
    assert killed.returncode == -9, killed.stderr  # SIGKILL: no close(), no flush
    with MultimodalQdrantStore(path=str(store_dir)) as store:
        points = [d.points for d in store.documents()]
    assert all(count == PARTS for count in points), "a document lost only some of its points"
    assert KEPT <= len(points) <= DOCUMENTS
    if mode == "after_operations":  # three operations of seven documents each went whole, the rest stayed
        assert len(points) == DOCUMENTS - 3 * 7
    rerun = _run(store_dir, base / "files", "plain", 0)
    assert rerun.returncode == 0 and rerun.stdout.split()[-1] == str(len(points) - KEPT), rerun.stderr
    assert _snapshot(store_dir) == reference
