"""Small things a user trips on: ``--no-progress`` on every command, ``mmst search --filter`` with
LlamaIndex's operators."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llama_index_mm_st.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = {
    "index": ["index", "x"], "search": ["search", "x"], "info": ["info"], "ls": ["ls"], "rm": ["rm", "x"],
    "copy": ["copy", "--to-store", "y"], "eval": ["eval", "q.jsonl"], "calibrate": ["calibrate", "q.jsonl"],
    "serve": ["serve"],
}


def test_every_command_takes_no_progress():
    subcommands = build_parser()._subparsers._group_actions[0].choices
    assert set(subcommands) == set(COMMANDS)
    for argv in COMMANDS.values():
        assert build_parser().parse_args([*argv, "--no-progress"]).no_progress is True


@pytest.fixture()
def indexed(run_cli, corpus, tmp_path, tiny_clip_dir) -> Path:  # type: ignore[no-untyped-def]
    store = tmp_path / "index"
    code, _, err = run_cli("index", str(corpus), "--store", str(store), "--model", str(tiny_clip_dir), "--no-progress")
    assert code == 0, err
    return store


def _sources(run_cli, store: Path, *argv: str) -> list[tuple[str, object]]:
    code, out, err = run_cli("search", *argv, "--store", str(store), "--json", "--top-k", "20")
    assert code == 0, err
    return [(Path(row["source"]).name, row.get("page")) for row in json.loads(out)]


def test_search_filter_with_operators(run_cli, indexed):
    everything = _sources(run_cli, indexed, "report revenue notes")
    assert {name for name, _ in everything} >= {"notes.txt", "report.pdf", "guide.md"}
    assert {n for n, _ in _sources(run_cli, indexed, "report revenue notes", "--filter", "file_name=notes.txt")} == {"notes.txt"}
    pages = _sources(run_cli, indexed, "report revenue notes", "--filter", "page>=2")
    assert pages == [("report.pdf", 2)]
    both = _sources(run_cli, indexed, "report revenue notes", "--filter", "file_name:in=notes.txt,guide.md",
                    "--filter", "file_name!=guide.md")
    assert {n for n, _ in both} == {"notes.txt"}
    assert _sources(run_cli, indexed, "report revenue notes", "--filter", 'file_name="nothing.txt"') == []


def test_a_bad_filter_is_the_parsers_error_naming_it(run_cli, indexed, capsys):
    with pytest.raises(SystemExit) as stopped:
        run_cli("search", "x", "--store", str(indexed), "--filter", "page")
    assert stopped.value.code == 2
    assert "argument --filter: " in capsys.readouterr().err


def test_search_with_no_progress_prints_only_its_answer(indexed, tiny_clip_dir):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "llama_index_mm_st.cli", "search", "circle", "--store", str(indexed),
                           "--rerank", str(tiny_clip_dir.parent / "missing_reranker"), "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "--rerank" in done.stderr  # one line, no bars
    done = subprocess.run([sys.executable, "-m", "llama_index_mm_st.cli", "search", "circle", "--store", str(indexed),
                           "--no-progress", "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0 and json.loads(done.stdout)
    assert "it/s" not in done.stderr and "%|" not in done.stderr, done.stderr


@pytest.mark.parametrize("argv", [("search", "x"), ("eval", "QRELS"), ("calibrate", "QRELS")])
def test_commands_that_read_an_index_say_when_it_is_empty(run_cli, tmp_path, argv) -> None:  # type: ignore[no-untyped-def]
    from llama_index_mm_st.store import MultimodalQdrantStore

    store = tmp_path / "index"
    MultimodalQdrantStore(path=str(store), dim=8).close()  # a collection nothing was written to yet
    qrels = tmp_path / "qrels.jsonl"
    qrels.write_text('{"query": "x", "relevant": ["a.txt"]}\n')
    code, out, err = run_cli(*[str(qrels) if a == "QRELS" else a for a in argv], "--store", str(store))
    assert (code, out) == (1, "") and err == "mmst: error: this index is empty: add files with 'mmst index PATH' first\n"


@pytest.mark.parametrize("command", ["eval", "calibrate"])
def test_a_missing_qrels_file_is_named(run_cli, tmp_path, command) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "nowhere.jsonl"
    code, out, err = run_cli(command, str(missing), "--store", str(tmp_path / "index"))
    assert (code, out) == (1, "") and err == f"mmst: error: no qrels file at {missing}\n"
