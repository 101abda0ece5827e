"""A model that is neither local nor cached fails at once in the library, with the CLI's one-line advice:
with a hub that refuses connections, one that accepts and never answers, and offline (HF_HUB_OFFLINE=1).
Each case runs in a fresh process (huggingface_hub reads its endpoint and offline switch at import)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MISSING = "openai/clip-vit-base-patch32"

PROBE = textwrap.dedent(
    """
    import json, sys, time
    from llama_index_mm_st import ModelUnavailableError, MultimodalEmbedding, MultimodalReranker

    out = {}
    for cls in (MultimodalEmbedding, MultimodalReranker):
        started = time.perf_counter()
        try:
            cls(sys.argv[1])
            out[cls.__name__] = {"error": None}
        except ModelUnavailableError as exc:
            out[cls.__name__] = {"error": str(exc), "seconds": time.perf_counter() - started,
                                 "oserror": isinstance(exc, OSError), "model": exc.model}
    print(json.dumps(out))
    """
)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def probe(tmp_path: Path, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    done = subprocess.run([sys.executable, "-c", PROBE, MISSING], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**clean, "HF_HOME": str(tmp_path / "empty_hf_home"), "PYTHONPATH": str(ROOT), **env})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def check(found: dict, *expected: str) -> None:
    for cls in ("MultimodalEmbedding", "MultimodalReranker"):
        result = found[cls]
        assert result["error"] is not None, cls
        message = result["error"]
        assert "\n" not in message and message.startswith(f"cannot load model {MISSING!r}: ")
        assert f"{cls}('/path/to/a/local/model')" in message and all(e in message for e in expected), message
        assert result["oserror"] and result["model"] == MISSING
        print(f"{cls}: failed in {result['seconds']:.2f} s")
        assert result["seconds"] < 5, result  # the bound is 2 s; the slack is for shared CPUs


def test_a_hub_that_refuses_connections(tmp_path):
    check(probe(tmp_path, HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}"), "could not be reached",
          "HF_HUB_OFFLINE=1")


def test_a_hub_that_accepts_and_never_answers(tmp_path):
    with socket.socket() as silent:  # the kernel completes connections into the backlog; nothing reads them
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        found = probe(tmp_path, HF_ENDPOINT=f"http://127.0.0.1:{silent.getsockname()[1]}")
    check(found, "could not be reached")


def test_offline_without_the_model_in_the_cache(tmp_path):
    check(probe(tmp_path, HF_HUB_OFFLINE="1"), "HF_HUB_OFFLINE is set", "does not hold it")


def test_a_local_directory_that_does_not_exist_is_named(tmp_path):
    from llama_index_mm_st import ModelUnavailableError, MultimodalEmbedding

    with pytest.raises(ModelUnavailableError, match="no such model directory"):
        MultimodalEmbedding(str(tmp_path / "nowhere"))


def test_mmst_search_names_rerank_before_any_model_loads(run_cli_here, tmp_path, tiny_clip_dir, monkeypatch):
    from llama_index_mm_st.embedding import MultimodalEmbedding
    from llama_index_mm_st.store import MultimodalQdrantStore

    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "note.txt").write_text("a red circle")
    store = tmp_path / "index"
    assert run_cli_here("index", str(folder), "--store", str(store), "--model", str(tiny_clip_dir), "--no-progress")[0] == 0
    loaded = []
    original = MultimodalEmbedding.__init__
    monkeypatch.setattr(MultimodalEmbedding, "__init__", lambda self, *a, **k: loaded.append(1) or original(self, *a, **k))
    code, out, err = run_cli_here("search", "red", "--store", str(store), "--rerank", "cross-encoder/not-cached-here")
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert "--rerank /path/to/a/local/model" in err and "cross-encoder/not-cached-here" in err
    assert not loaded  # the reranker was settled before the embedding loaded
    with MultimodalQdrantStore("mmst", path=str(store)):
        pass


@pytest.fixture()
def run_cli_here(capsys):  # type: ignore[no-untyped-def]
    from llama_index_mm_st.cli import main

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
