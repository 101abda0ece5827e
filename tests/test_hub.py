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


def start_probe(home: Path, **env: str) -> subprocess.Popen:
    """The probe in a fresh process with an empty hub cache and only ``env``'s hub settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    return subprocess.Popen([sys.executable, "-c", PROBE, MISSING], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, env={**clean, "HF_HOME": str(home), "PYTHONPATH": str(ROOT), **env})


def result_of(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def probes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """The three cases at once, each in its own fresh process (their imports, not their hub waits, are most
    of their time): a hub that refuses connections, one that accepts and never answers, and offline."""
    root = tmp_path_factory.mktemp("hub")
    with socket.socket() as silent:  # the kernel completes connections into the backlog; nothing reads them
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        running = {
            "refused": start_probe(root / "a", HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}"),
            "silent": start_probe(root / "b", HF_ENDPOINT=f"http://127.0.0.1:{silent.getsockname()[1]}"),
            "offline": start_probe(root / "c", HF_HUB_OFFLINE="1"),
        }
        return {case: result_of(process) for case, process in running.items()}


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


def test_a_hub_that_refuses_connections(probes):
    check(probes["refused"], "could not be reached", "HF_HUB_OFFLINE=1")


def test_a_hub_that_accepts_and_never_answers(probes):
    check(probes["silent"], "could not be reached")


def test_offline_without_the_model_in_the_cache(probes):
    check(probes["offline"], "HF_HUB_OFFLINE is set", "does not hold it")


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
