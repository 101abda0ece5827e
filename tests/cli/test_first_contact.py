"""What a first-time user meets: offline failures, query mistakes, several rerankers, server errors,
skipped and ignored files, progress output."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llama_index_mm_st.cli.models import DEFAULT_MODEL
from llama_index_mm_st.cli.progress import Stage

ROOT = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    """A local port nothing listens on: connecting to it is refused at once, like an unreachable host."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def mmst(*argv: str, env: dict[str, str], cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    env = {**env, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "llama_index_mm_st.cli", *argv], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)
    return done, time.perf_counter() - start


def offline_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    return {**env, "HF_HOME": str(tmp_path / "empty_hf_home"), **extra}


@pytest.mark.parametrize("setting", ["unreachable", "offline"])
def test_default_model_without_network_fails_fast_in_one_line(setting, corpus, tmp_path):
    extra = {"HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}"} if setting == "unreachable" else {"HF_HUB_OFFLINE": "1"}
    store = tmp_path / "index"
    done, elapsed = mmst("index", str(corpus), "--store", str(store), env=offline_env(tmp_path, **extra), cwd=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert DEFAULT_MODEL in lines[0] and "--model /path/to/a/local/model" in lines[0]
    assert ("could not be reached" if setting == "unreachable" else "HF_HUB_OFFLINE") in lines[0]
    assert elapsed < 20, elapsed  # includes interpreter start on a shared CPU; the retrying loader took over a minute
    assert not store.exists()  # nothing created, so no lock and no model recorded


def test_failed_model_load_leaves_the_store_open_and_unrecorded(run_cli, corpus, tmp_path):
    from llama_index_mm_st.ingest import read_manifest
    from llama_index_mm_st.store import MultimodalQdrantStore

    store = tmp_path / "index"
    MultimodalQdrantStore("mmst", path=str(store), dim=16).close()
    bad_model = tmp_path / "not_a_model"
    bad_model.mkdir()
    (bad_model / "config.json").write_text("{}")
    code, _, err = run_cli("index", str(corpus), "--store", str(store), "--model", str(bad_model), "--no-progress")
    assert code == 1 and len(err.strip().splitlines()) == 1
    with MultimodalQdrantStore("mmst", path=str(store)) as opened:  # no lock left behind
        assert read_manifest(opened) is None and opened.count() == 0


def test_nothing_indexed_records_no_model(run_cli, tmp_path, tiny_clip_dir):
    folder = tmp_path / "only_ignored"
    folder.mkdir()
    (folder / "a.docx").write_bytes(b"PK")
    store = tmp_path / "index"
    code, out, err = run_cli("index", str(folder), "--store", str(store), "--model", str(tiny_clip_dir), "--no-progress")
    assert code == 0, err
    assert "added: nothing new" in out and "ignored (type not indexed): 1 .docx" in out
    code, out, _ = run_cli("info", "--store", str(store))
    assert code == 0 and "model: (none yet)" in out


def test_strict_fails_when_something_was_skipped(run_cli, corpus, tmp_path, tiny_clip_dir):
    store = tmp_path / "index"
    code, out, err = run_cli("index", str(corpus), "--store", str(store), "--model", str(tiny_clip_dir),
                             "--no-progress", "--strict")
    assert code == 3 and "broken.jpg" in err and "in the index" in out
    (corpus / "photos" / "broken.jpg").unlink()
    code, _, err = run_cli("index", str(corpus), "--store", str(store), "--no-progress", "--strict")
    assert code == 0 and err == ""  # ignored types are not failures


@pytest.fixture()
def indexed(run_cli, corpus, tmp_path, tiny_clip_dir) -> Path:  # type: ignore[no-untyped-def]
    store = tmp_path / "index"
    code, _, err = run_cli("index", str(corpus), "--store", str(store), "--model", str(tiny_clip_dir), "--no-progress")
    assert code == 0, err
    return store


@pytest.mark.parametrize("argv, expected", [
    (["   "], "only whitespace"),
    (["\t\n"], "only whitespace"),
    (["--mode", "sparse", "--image", "IMAGE"], "--mode: 'sparse' matches exact words and an image has none"),
    (["red", "--mode", "sparse", "--image", "IMAGE"], "leave out --image"),
    (["the of and", "--mode", "sparse"], "has none it can search for"),
    (["?!", "--mode", "sparse"], "has none it can search for"),
])
def test_query_mistakes_are_one_line_in_the_users_terms(run_cli, indexed, corpus, argv, expected):
    argv = [str(corpus / "photos" / "sample_png.png") if a == "IMAGE" else a for a in argv]
    code, out, err = run_cli("search", *argv, "--store", str(indexed))
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert expected in err and "query_str" not in err


def test_text_plus_image_is_documented():
    from llama_index_mm_st.cli.main import build_parser

    search_help = build_parser()._subparsers._group_actions[0].choices["search"].format_help()
    assert "Text and --image together" in search_help and "--mode {dense,sparse,hybrid}" in search_help
    assert "sparse: exact words only" in " ".join(search_help.split())
    readme = (ROOT / "README.md").read_text()
    assert "Text and `--image` together" in readme


def test_several_rerankers_and_unsupported_nodes(run_cli, indexed, tiny_bert_cross_encoder_dir, tiny_blip_itm_dir):
    def search(*extra: str) -> tuple[int, list, str]:
        code, out, err = run_cli("search", "round circles", "--store", str(indexed), "--top-k", "5", "--json", *extra)
        return code, (json.loads(out) if code == 0 else []), err

    code, rows, err = search("--rerank", str(tiny_bert_cross_encoder_dir), "--rerank", str(tiny_blip_itm_dir))
    assert code == 0, err
    assert len(rows) == 5 and {row["score_kind"] for row in rows} == {"reranker_rrf"}
    assert any(row["modality"] == "image" for row in rows) and any(row["modality"] == "text" for row in rows)

    # a text cross-encoder alone can't read pure images: kept at their rank by default, an error on request
    code, rows, err = search("--rerank", str(tiny_bert_cross_encoder_dir))
    assert code == 0 and {row["score_kind"] for row in rows} == {"reranker"}, err
    code, _, err = search("--rerank", str(tiny_bert_cross_encoder_dir), "--rerank-unsupported", "raise")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "--rerank-unsupported keep" in err and "on_unsupported" not in err


def test_refused_server_connection_is_one_line_naming_the_url(run_cli):
    url = f"http://127.0.0.1:{closed_port()}"
    for argv in (["info"], ["search", "x"]):
        code, _, err = run_cli(*argv, "--url", url)
        assert code == 1 and len(err.strip().splitlines()) == 1, err
        assert url in err and "internal error" not in err


def test_progress_is_one_line_per_stage_with_one_rate(run_cli, corpus, tmp_path, tiny_clip_dir):
    code, _, err = run_cli("index", str(corpus), "--store", str(tmp_path / "index"), "--model", str(tiny_clip_dir))
    assert code == 0
    stages = [line for line in err.splitlines() if line.startswith(("Loading model:", "Reading:", "Embedding:"))]
    assert [s.split(":")[0] for s in stages] == ["Loading model", "Reading", "Embedding"]
    embedding = stages[-1]
    assert embedding.count("/s") == 1 and "100%" not in err


def test_no_progress_silences_every_bar(run_cli, corpus, tmp_path, tiny_clip_dir):
    code, _, err = run_cli("index", str(corpus), "--store", str(tmp_path / "index"), "--model", str(tiny_clip_dir),
                           "--no-progress")
    assert code == 0
    assert not [line for line in err.splitlines() if not line.startswith(("skipped", "  "))], err


def test_a_live_bar_moves_every_second_while_work_is_stuck(tmp_path):
    """A slow model can spend a minute on one chunk; the bar still redraws (elapsed time) meanwhile."""
    log = tmp_path / "bar.txt"
    with open(log, "w") as stream:
        with Stage("Embedding", total=2, unit="node", stream=stream, live=True) as stage:
            time.sleep(2.2)  # one chunk, no update
            stage.update(2)
    text = log.read_bytes().decode()
    redraws = text.count("\r")
    assert redraws >= 4, text  # the ticker redraws every 0.5 s: at least 4 in 2.2 s
    assert len(re.findall(r"Embedding: 2 nodes in [0-9.]+ s \([0-9.]+ node/s\)\n", text)) == 1, text


def test_a_url_query_image_needs_allow_urls(tmp_path, tiny_clip_dir):
    """The URL policy is the same on the command line: a URL is refused, by name, unless allowed."""
    import subprocess
    import sys

    store = tmp_path / "store"
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("a red circle on white")
    cli = [sys.executable, "-m", "llama_index_mm_st.cli"]
    assert subprocess.run([*cli, "index", str(folder), "--store", str(store), "--model", str(tiny_clip_dir),
                           "--no-progress"], capture_output=True, text=True).returncode == 0
    refused = subprocess.run([*cli, "search", "--image", "http://127.0.0.1:9/x.png", "--store", str(store)],
                             capture_output=True, text=True)
    assert refused.returncode == 1 and "add --allow-urls" in refused.stderr
    local = subprocess.run([*cli, "search", "--image", "file:///etc/hostname", "--store", str(store)],
                           capture_output=True, text=True)
    assert local.returncode == 1 and "file://" in local.stderr
