"""``mmst --help`` and ``mmst info`` answer without importing model code (torch, transformers,
sentence-transformers), and so does the package's top-level import. Checked by listing
``sys.modules`` in a fresh interpreter, not by timing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "sentence_transformers")

PROBE = textwrap.dedent("""
    import json, sys
    argv = json.loads(sys.argv[1])
    if argv is None:
        import llama_index_mm_st
        from llama_index_mm_st import MultimodalQdrantStore, MMSTError  # the store needs no model code
    else:
        from llama_index_mm_st.cli import main
        try:
            code = main(argv)
        except SystemExit as exc:  # --help exits
            code = exc.code
        assert code == 0, code
    heavy = {heavy}
    print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy)))
""").format(heavy=HEAVY)


def loaded_after(argv: list[str] | None) -> list[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [["--help"], ["index", "--help"], ["search", "--help"], ["info", "--help"], None],
                         ids=["help", "index-help", "search-help", "info-help", "package-import"])
def test_help_and_package_import_load_no_model_code(argv):
    assert loaded_after(argv) == []


def test_info_on_a_store_loads_no_model_code(run_cli, tmp_path, image_files, tiny_clip_dir):
    store = tmp_path / "index"
    code, _, err = run_cli("index", str(image_files["png"]), "--store", str(store), "--model", str(tiny_clip_dir),
                           "--no-progress")
    assert code == 0, err
    assert loaded_after(["info", "--store", str(store)]) == []


def test_the_cli_default_model_is_the_embedding_default():
    from llama_index_mm_st.cli.models import DEFAULT_MODEL
    from llama_index_mm_st.embedding import DEFAULT_MODEL as EMBEDDING_DEFAULT

    assert DEFAULT_MODEL == EMBEDDING_DEFAULT
