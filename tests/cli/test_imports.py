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


def test_mmst_index_without_a_model_loads_the_embeddings_own_default(run_cli, monkeypatch, tmp_path, image_files):
    """What ``mmst index`` loads when no --model is given is what ``MultimodalEmbedding()`` loads: asked
    offline with an empty hub cache, it names the model it tried, and that is the embedding's default."""
    from huggingface_hub import constants

    from llama_index_mm_st import MultimodalEmbedding

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    code, _, err = run_cli("index", str(image_files["png"]), "--store", str(tmp_path / "index"), "--no-progress")
    default = MultimodalEmbedding.model_fields["model_name"].default
    assert code == 1 and f"cannot load model {default!r}: HF_HUB_OFFLINE is set" in err
