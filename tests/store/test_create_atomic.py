"""Creating an Edge store is atomic: a kill at any moment of it leaves no store or one the next run finishes.

The kill is placed deterministically: a step of ``EdgeFolder.create`` is replaced by one that stops
there (in-process, raising ``Killed``, then the process's lock is let go as a dead process's is; and
once for real, with SIGKILL in a child ``mmst copy``). Issue 25's own reproduction (a store whose
schema record was removed) runs through ``mmst index``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llama_index.core.schema import TextNode

from llama_index_mm_st.errors import UnfinishedStoreError
from llama_index_mm_st.store import MultimodalQdrantStore
from llama_index_mm_st.store.backends import edge_layout
from llama_index_mm_st.store.backends.edge import EdgeBackend
from llama_index_mm_st.store.backends.edge_layout import NEW_SHARD_DIR, SCHEMA_FILE, SHARD_DIR
from llama_index_mm_st.store.schema import KEYWORD_INDEXED_KEYS, StoreSchema
from tests.cli.conftest import run_cli  # noqa: F401 - fixture
from tests.store.conftest import DIM, unit

REPO = Path(__file__).resolve().parents[2]
STEPS = ("_build_shard", "_write_atomically", "_move_into_place")
"""The steps of creating, in order: a kill inside or after each one but the last leaves an unfinished store."""


class Killed(BaseException):
    """Stands for the process dying at that point (a BaseException: nothing on the way catches it)."""


def nodes(count: int, start: int = 0) -> list[TextNode]:
    rng = np.random.default_rng(start)
    return [TextNode(id_=f"n{i}", text=f"note {i}", embedding=unit(rng.normal(size=DIM))) for i in range(start, start + count)]


def kill_during_creation(monkeypatch: pytest.MonkeyPatch, root: Path, step: str) -> None:
    """Create a store at ``root`` and stop inside ``step``, after it has done its work."""
    real = getattr(edge_layout, step)

    def work_then_die(*args: Any) -> None:
        real(*args)
        raise Killed

    backend = EdgeBackend(str(root), "mmst")
    monkeypatch.setattr(edge_layout, step, work_then_die)
    with pytest.raises(Killed):
        backend.create(StoreSchema(dim=DIM))
    monkeypatch.setattr(edge_layout, step, real)
    backend.close()  # what the death of the process does: the lock goes with it


def collection(root: Path) -> Path:
    return root / "mmst"


POINTS = 3


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, image_files: dict[str, Path]) -> Path:
    """Two notes and a photo: three points."""
    folder = tmp_path_factory.mktemp("atomic_corpus")
    (folder / "notes.txt").write_text("Warehouse notes: part QX-7731 replaces the old pump seal.\n")
    (folder / "guide.md").write_text("# Guide\n\nCircles are round and squares have four sides.\n")
    shutil.copy(image_files["png"], folder / "photo.png")
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, corpus: Path, tiny_clip_dir: Path) -> Path:
    """The corpus indexed once by ``mmst index``; tests copy it (``source``)."""
    from llama_index_mm_st.cli import main

    index = tmp_path_factory.mktemp("atomic_built") / "index"
    assert main(["index", str(corpus), "--store", str(index), "--model", str(tiny_clip_dir), "--no-progress"]) == 0
    return index


@pytest.fixture
def source(built: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "index"
    shutil.copytree(built, copy)
    return copy


@pytest.mark.parametrize("step", STEPS[:2])
def test_a_kill_inside_creation_leaves_an_unfinished_store_the_next_write_finishes(monkeypatch, tmp_path, step):
    kill_during_creation(monkeypatch, tmp_path, step)
    assert (collection(tmp_path) / NEW_SHARD_DIR).exists() and not (collection(tmp_path) / SHARD_DIR).exists()
    with MultimodalQdrantStore(path=str(tmp_path)) as reader:  # opening to read changes nothing
        assert reader.schema is None and reader.count() == 0
        assert "was not finished" in reader.unfinished and "run the same" in reader.unfinished
    assert (collection(tmp_path) / NEW_SHARD_DIR).exists()
    with MultimodalQdrantStore(path=str(tmp_path)) as writer:
        writer.add(nodes(5))
        assert writer.unfinished is None
    assert not (collection(tmp_path) / NEW_SHARD_DIR).exists()
    with MultimodalQdrantStore(path=str(tmp_path)) as reopened:
        assert reopened.unfinished is None and reopened.count() == 5
        assert {n.node_id for n in reopened.get_nodes()} == {f"n{i}" for i in range(5)}


def test_a_kill_after_the_rename_leaves_a_whole_store_with_its_own_indexes(monkeypatch, tmp_path):
    kill_during_creation(monkeypatch, tmp_path, "_move_into_place")
    assert not (collection(tmp_path) / NEW_SHARD_DIR).exists()
    with MultimodalQdrantStore(path=str(tmp_path)) as store:
        assert store.unfinished is None and store.schema == StoreSchema(dim=DIM)
        assert set(KEYWORD_INDEXED_KEYS) <= set(store.indexed_keys)  # built before the rename
        store.add(nodes(3))
        assert store.count() == 3


def test_a_record_without_its_shard_is_unfinished_and_a_stray_half_shard_beside_a_whole_store_is_ignored(tmp_path):
    lone = collection(tmp_path / "lone")
    lone.mkdir(parents=True)
    (lone / SCHEMA_FILE).write_text(json.dumps(StoreSchema(dim=DIM).to_dict()))  # what a kill mid-cleanup leaves
    with MultimodalQdrantStore(path=str(tmp_path / "lone")) as store:
        assert "a schema record without its shard" in store.unfinished and store.schema is None
        store.add(nodes(2))
    with MultimodalQdrantStore(path=str(tmp_path / "whole")) as store:
        store.add(nodes(4))
    (collection(tmp_path / "whole") / NEW_SHARD_DIR).mkdir()
    with MultimodalQdrantStore(path=str(tmp_path / "whole")) as store:
        assert store.unfinished is None and store.count() == 4


def test_info_and_search_name_an_unfinished_store_and_index_finishes_it(monkeypatch, tmp_path, run_cli, corpus, tiny_clip_dir):  # noqa: F811
    index = tmp_path / "index"
    kill_during_creation(monkeypatch, index, "_write_atomically")  # the shard exists, its record does not
    code, out, err = run_cli("info", "--store", str(index))
    assert code == 1 and not out
    assert err.count("\n") == 1 and "was not finished" in err and "run the same 'mmst index'" in err
    code, out, err = run_cli("search", "a red car", "--store", str(index))  # says why, not "empty"
    assert code == 1 and not out and "was not finished" in err and "empty" not in err
    code, out, err = run_cli("index", str(corpus), "--store", str(index), "--model", str(tiny_clip_dir), "--no-progress")
    assert code == 0, err
    code, out, err = run_cli("info", "--store", str(index))
    assert code == 0 and f"points: {POINTS}" in out, err


def test_copy_finishes_a_target_whose_creation_was_interrupted(monkeypatch, tmp_path, run_cli, source):  # noqa: F811
    target = tmp_path / "copy"
    kill_during_creation(monkeypatch, target, "_build_shard")
    code, out, err = run_cli("copy", "--store", str(source), "--to-store", str(target))
    assert code == 0, err
    assert f"copied {POINTS} points" in out and f"it holds {POINTS}" in out


def test_a_schema_record_removed_from_an_empty_store_is_finished_by_mmst_index(tmp_path, run_cli, corpus, tiny_clip_dir):  # noqa: F811
    """Issue 25's reproduction without a kill: what versions that made the shard first left behind."""
    index = tmp_path / "index"
    MultimodalQdrantStore(path=str(index), dim=DIM).close()
    (collection(index) / SCHEMA_FILE).unlink()
    with MultimodalQdrantStore(path=str(index)) as store:
        assert "an empty shard without its schema record" in store.unfinished
    code, _, err = run_cli("index", str(corpus), "--store", str(index), "--model", str(tiny_clip_dir), "--no-progress")
    assert code == 0, err
    code, out, _ = run_cli("info", "--store", str(index))
    assert code == 0 and f"points: {POINTS}" in out and f"model: {tiny_clip_dir}" in out


def test_a_shard_with_points_but_no_record_is_never_cleared(run_cli, corpus, source, tiny_clip_dir):  # noqa: F811
    index = source
    record = collection(index) / SCHEMA_FILE
    saved = record.read_text()
    record.unlink()
    with pytest.raises(UnfinishedStoreError, match="holds points but has lost its schema record"):
        MultimodalQdrantStore(path=str(index))
    code, _, err = run_cli("index", str(corpus), "--store", str(index), "--model", str(tiny_clip_dir), "--no-progress")
    assert code == 1 and err.count("\n") == 1 and "put the record back" in err
    record.write_text(saved)  # what the message asks for: the store is as it was
    with MultimodalQdrantStore(path=str(index)) as store:
        assert store.count() == POINTS and store.unfinished is None
    from llama_index_mm_st.store.backends.edge import EdgeBackend

    backend = EdgeBackend(str(index), "mmst")  # the engine's backend itself: a whole store is never cleared
    try:
        with pytest.raises(RuntimeError, match="already has a collection"):
            backend.create(backend.existing_schema())
    finally:
        backend.close()


KILLED_COPY = textwrap.dedent(
    """
    import os, signal, sys
    from llama_index_mm_st.store.backends import edge_layout
    real = edge_layout._build_shard
    def build_then_die(*args):
        real(*args)
        os.kill(os.getpid(), signal.SIGKILL)  # after the engine wrote the shard, before the record exists
    edge_layout._build_shard = build_then_die
    from llama_index_mm_st.cli import main
    main(["copy", "--store", sys.argv[1], "--to-store", sys.argv[2]])
    """
)


def test_mmst_copy_killed_between_shard_and_record_is_finished_by_the_next_copy(tmp_path, run_cli, source):  # noqa: F811
    target = tmp_path / "copy"
    child = subprocess.run([sys.executable, "-c", KILLED_COPY, str(source), str(target)], cwd=REPO,
                           env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, timeout=120)
    assert child.returncode == -9, child.stderr
    assert (collection(target) / NEW_SHARD_DIR).exists() and not (collection(target) / SCHEMA_FILE).exists()
    code, _, err = run_cli("info", "--store", str(target))
    assert code == 1 and "was not finished" in err
    code, out, err = run_cli("copy", "--store", str(source), "--to-store", str(target))
    assert code == 0 and f"copied {POINTS} points" in out, err
    with MultimodalQdrantStore(path=str(source)) as a, MultimodalQdrantStore(path=str(target)) as b:
        assert {n.node_id for n in a.get_nodes()} == {n.node_id for n in b.get_nodes()}
        assert a.get_metadata() == b.get_metadata()
    assert json.loads((collection(target) / SCHEMA_FILE).read_text())["dim"] == json.loads(
        (collection(source) / SCHEMA_FILE).read_text())["dim"]
