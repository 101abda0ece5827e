"""The graph cache: reuse, rebuild of corrupt or stale entries, remembered failures, keys that follow
the checkpoint's files, and two processes building at once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from llama_index_mm_st.embedding import MultimodalEmbedding
from llama_index_mm_st.onnx.cache import ExportFailed, GraphCache
from llama_index_mm_st.onnx.fingerprint import file_sha256

from .conftest import graph_metas

ROOT = Path(__file__).resolve().parents[2]
KEY = "k" * 64


def _builder(calls: list[int], content: bytes = b"graph bytes"):  # type: ignore[no-untyped-def]
    def build(path: Path) -> dict:
        calls.append(1)
        path.write_bytes(content)
        return {"note": "built"}
    return build


def test_an_entry_is_built_once_and_reused(tmp_path):
    cache, calls = GraphCache(tmp_path), []
    first = cache.get_or_build(KEY, _builder(calls))
    again = GraphCache(tmp_path).get_or_build(KEY, _builder(calls))
    assert calls == [1] and again.path == first.path and again.meta == first.meta
    assert first.meta["note"] == "built" and first.meta["graph_bytes"] == len(b"graph bytes")


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "delete the graph", "garbage meta", "meta of another key"])
def test_a_damaged_entry_is_rebuilt_not_loaded(tmp_path, damage):
    cache, calls = GraphCache(tmp_path), []
    entry = cache.get_or_build(KEY, _builder(calls))
    meta = entry.path.parent / "meta.json"
    if damage == "flip a byte":
        data = bytearray(entry.path.read_bytes())
        data[3] ^= 0xFF
        entry.path.write_bytes(bytes(data))  # same size: only the hash can tell
    elif damage == "truncate":
        entry.path.write_bytes(entry.path.read_bytes()[:4])
    elif damage == "delete the graph":
        entry.path.unlink()
    elif damage == "garbage meta":
        meta.write_text("{not json")
    else:
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "key": "x" * 64}))
    assert cache.load(KEY) is None
    rebuilt = cache.get_or_build(KEY, _builder(calls))
    assert calls == [1, 1] and rebuilt.path.read_bytes() == b"graph bytes"


def test_a_failed_export_is_remembered_with_its_reason(tmp_path):
    cache, calls = GraphCache(tmp_path), []

    def fails(path: Path) -> dict:
        calls.append(1)
        raise ExportFailed("the trace does not generalise")

    for _ in range(2):
        with pytest.raises(ExportFailed, match="does not generalise"):
            cache.get_or_build(KEY, fails)
    assert calls == [1]


def test_a_crashed_build_leaves_nothing_that_loads(tmp_path):
    cache = GraphCache(tmp_path)

    def crashes(path: Path) -> dict:
        path.write_bytes(b"half a gra")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.get_or_build(KEY, crashes)
    assert cache.load(KEY) is None and not list((tmp_path / "graphs").glob(".build-*"))
    assert cache.get_or_build(KEY, _builder([])).path.read_bytes() == b"graph bytes"


def test_file_hashes_are_remembered_until_the_file_changes(tmp_path):
    memo, target = tmp_path / "memo", tmp_path / "weights.bin"
    target.write_bytes(b"one")
    first = file_sha256(target, memo)
    assert file_sha256(target, memo) == first and len(list(memo.iterdir())) == 1
    target.write_bytes(b"two!")  # a write changes the stat, so the hash is computed again
    assert file_sha256(target, memo) == file_sha256(target) != first


BUILD_IN_A_PROCESS = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from llama_index_mm_st.onnx.cache import GraphCache

    root, marker = Path(sys.argv[1]), Path(sys.argv[2])
    while not (root / "go").exists():  # both processes start building together
        time.sleep(0.01)

    def build(path):
        with open(marker, "a") as handle:
            handle.write(f"{os.getpid()}\\n")
        time.sleep(1.0)
        path.write_bytes(b"graph")
        return {"by": os.getpid()}

    print(GraphCache(root).get_or_build("k" * 64, build).meta["by"])
""")


def test_two_processes_starting_at_once_build_once(tmp_path):
    root, marker = tmp_path / "cache", tmp_path / "builds"
    root.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    processes = [subprocess.Popen([sys.executable, "-c", BUILD_IN_A_PROCESS, str(root), str(marker)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                 for _ in range(2)]
    (root / "go").touch()
    outputs = [process.communicate(timeout=120) for process in processes]
    assert all(process.returncode == 0 for process in processes), outputs
    assert len(marker.read_text().split()) == 1  # one build
    assert len({out.strip() for out, _ in outputs}) == 1  # both got the graph that build made


def test_a_corrupted_graph_of_a_model_is_rebuilt_and_stays_exact(fresh_cache, tiny_clip_dir, clip_torch):
    texts = ["a red car", "a long description of a quarterly revenue chart", "zebra"]
    MultimodalEmbedding(str(tiny_clip_dir), backend="onnx")
    metas = {tuple(m["part"]): m for m in graph_metas(fresh_cache)}
    text_graph = fresh_cache / "graphs" / metas[("sentence-transformers pipeline", "text", "None")]["key"] / "graph.onnx"
    text_graph.write_bytes(text_graph.read_bytes()[: text_graph.stat().st_size // 2])
    rebuilt = MultimodalEmbedding(str(tiny_clip_dir), backend="onnx")
    after = {tuple(m["part"]): m for m in graph_metas(fresh_cache)}
    text_part = ("sentence-transformers pipeline", "text", "None")
    image_part = ("sentence-transformers pipeline", "image", "None")
    assert after[text_part]["built_at"] > metas[text_part]["built_at"]  # rebuilt
    assert after[image_part]["built_at"] == metas[image_part]["built_at"]  # reused
    np.testing.assert_allclose(rebuilt.get_text_embedding_batch(texts), clip_torch.get_text_embedding_batch(texts),
                               atol=1e-5)


def test_the_key_follows_the_checkpoints_files(fresh_cache, tiny_clip_dir, tmp_path):
    copy = tmp_path / "clip-copy"
    shutil.copytree(tiny_clip_dir, copy)
    MultimodalEmbedding(str(copy), backend="onnx")
    MultimodalEmbedding(str(tiny_clip_dir), backend="onnx")  # the same files elsewhere: the same entries
    assert len(graph_metas(fresh_cache)) == 2
    (copy / "README.md").write_text("a changed checkpoint")
    MultimodalEmbedding(str(copy), backend="onnx")
    assert len(graph_metas(fresh_cache)) == 4
