"""``mmst index`` takes an embedded store's lock before anything else: a second writer is refused at
once, in one line, before it imports the engine or a model, walks a file or resolves a model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from llama_index_mm_st.store import MultimodalQdrantStore

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import sys
from llama_index_mm_st.cli import main
code = main(sys.argv[1:])
print("loaded:", sorted(m for m in ("torch", "transformers", "qdrant_edge", "qdrant_client") if m in sys.modules))
sys.exit(code)
"""


def _index(*argv: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", PROBE, "index", *argv], capture_output=True, text=True, env=env,
                          timeout=120)


def test_a_second_writer_is_refused_before_any_model_walk_or_engine(tmp_path: Path, tiny_clip_dir: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("words")
    store_dir = tmp_path / "store"
    with MultimodalQdrantStore("mmst", path=str(store_dir)):  # another writer holds the store
        done = _index(str(folder), "--store", str(store_dir), "--model", str(tiny_clip_dir))
        # Even a missing folder and a model that does not exist come second: the lock is the first answer.
        missing = _index(str(tmp_path / "nothing-here"), "--store", str(store_dir), "--model", "/no/such/model")
    for run in (done, missing):
        lines = run.stderr.strip().splitlines()
        assert run.returncode == 1 and len(lines) == 1, run.stderr
        assert "already open" in lines[0] and str(store_dir) in lines[0]
        assert "loaded: []" in run.stdout  # neither a model library nor the engine was imported


def test_a_run_that_stops_before_its_first_write_leaves_no_store_behind(tmp_path: Path) -> None:
    store_dir = tmp_path / "new" / "store"
    done = _index(str(tmp_path / "nothing-here"), "--store", str(store_dir), "--model", "/no/such/model")
    assert done.returncode == 1 and "no such file or folder" in done.stderr
    assert not (tmp_path / "new").exists()
