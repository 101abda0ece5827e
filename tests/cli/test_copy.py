"""``mmst copy``: an index moves to another store with its vectors and its model, and nothing is embedded again."""

from __future__ import annotations

import json
from pathlib import Path

from llama_index_mm_st.ingest import write_manifest
from llama_index_mm_st.store import MultimodalQdrantStore
from tests.cli.conftest import RARE_TEXT


def _search(run_cli, store: Path, *args: str) -> list[dict]:  # type: ignore[no-untyped-def]
    code, out, err = run_cli("search", *args, "--store", str(store), "--json")
    assert code == 0, err
    return json.loads(out)


def test_copy_moves_points_vectors_and_model_and_reruns_idempotently(run_cli, corpus, tmp_path, tiny_clip_dir):
    source, target = tmp_path / "index", tmp_path / "moved"
    code, _, err = run_cli("index", str(corpus), "--store", str(source), "--model", str(tiny_clip_dir), "--no-progress")
    assert code == 0, err
    code, out, err = run_cli("copy", "--store", str(source), "--to-store", str(target), "--quantization", "int8")
    assert code == 0, err
    assert out.startswith("copied 7 points to ") and "it holds 7" in out and str(tiny_clip_dir) in out
    # No --model: the copy knows the model that built it, and finds what the source finds.
    for query in ((RARE_TEXT,), ("quarterly revenue",), ("--image", str(corpus / "photos" / "sample_png.png"))):
        assert [(r["source"], r.get("page")) for r in _search(run_cli, target, *query)] == [
            (r["source"], r.get("page")) for r in _search(run_cli, source, *query)
        ]
    code, out, _ = run_cli("info", "--store", str(target))
    assert code == 0 and f"model: {tiny_clip_dir}" in out and "points: 7" in out
    with MultimodalQdrantStore("mmst", path=str(target)) as moved:
        assert moved.schema is not None and moved.schema.quantization == "int8"  # the target's own option
        assert moved.schema.dense == ("text", "image")  # what CLIP embeds: mmst index made no audio or video vector
    code, out, err = run_cli("copy", "--store", str(source), "--to-store", str(target))
    assert code == 0, err
    assert "copied 7 points" in out and "it holds 7" in out  # the same points again, nothing doubled


def test_copy_refuses_what_would_mix_or_lose_points(run_cli, corpus, tmp_path, tiny_clip_dir):
    source = tmp_path / "index"
    assert run_cli("index", str(corpus), "--store", str(source), "--model", str(tiny_clip_dir), "--no-progress")[0] == 0
    code, _, err = run_cli("copy", "--store", str(source), "--to-store", str(source))
    assert code == 1 and "the target is the source itself" in err
    code, _, err = run_cli("copy", "--url", "http://127.0.0.1:9/", "--to-url", "http://127.0.0.1:9")
    assert code == 1 and "the target is the source itself" in err  # refused before any connection
    code, _, err = run_cli("copy", "--store", str(tmp_path / "nothing"), "--to-store", str(tmp_path / "t"))
    assert code == 1 and "no index at" in err
    code, _, err = run_cli("copy", "--store", str(source), "--to-store", str(tmp_path / "t"), "--shard-number", "2")
    assert code == 1 and "--to-url" in err
    with MultimodalQdrantStore("mmst", path=str(source)) as built:
        dim = built.schema.dim  # type: ignore[union-attr]
    other = tmp_path / "other"
    with MultimodalQdrantStore("mmst", path=str(other), dim=dim) as foreign:
        write_manifest(foreign, "some/other-model", dim)
    code, _, err = run_cli("copy", "--store", str(source), "--to-store", str(other))
    assert code == 1 and "some/other-model" in err and "not comparable" in err
    with MultimodalQdrantStore("mmst", path=str(other)) as foreign:
        assert foreign.count() == 0  # refused before anything was written


def test_copy_to_a_server_that_is_not_there_names_it(run_cli, corpus, tmp_path, tiny_clip_dir):
    source = tmp_path / "index"
    assert run_cli("index", str(corpus), "--store", str(source), "--model", str(tiny_clip_dir), "--no-progress")[0] == 0
    code, _, err = run_cli("copy", "--store", str(source), "--to-url", "http://127.0.0.1:9")
    assert code == 1 and "http://127.0.0.1:9" in err and "could not be reached" in err
