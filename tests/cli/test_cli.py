"""``mmst`` end to end on a temporary mixed folder, with the tiny CLIP model."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path


from tests.cli.conftest import RARE_TEXT


def _index(run_cli, corpus: Path, store: Path, model: Path, *extra: str):  # type: ignore[no-untyped-def]
    return run_cli("index", str(corpus), "--store", str(store), "--model", str(model), "--no-progress", *extra)


def _search(run_cli, store: Path, *args: str) -> list[dict]:  # type: ignore[no-untyped-def]
    code, out, err = run_cli("search", *args, "--store", str(store), "--json")
    assert code == 0, err
    return json.loads(out)


def test_index_reports_the_corrupt_file_and_search_finds_text_and_image(run_cli, corpus, tmp_path, tiny_clip_dir):
    store = tmp_path / "index"
    code, out, err = _index(run_cli, corpus, store, tiny_clip_dir)
    assert code == 0, err
    assert "broken.jpg" in err and "skipped 1 file" in err and "broken.jpg" not in out
    assert "ignored (type not indexed): 2 .docx, 1 .json" in out
    # three photos and the PDF's drawing-only page are images; its text page is text+image
    assert "in the index: 2 text, 4 image, 1 text+image" in out

    results = _search(run_cli, store, RARE_TEXT)
    assert results[0]["source"].endswith("notes.txt")
    assert results[0]["modality"] == "text" and "QX-7731" in results[0]["text"]

    photo = corpus / "photos" / "sample_png.png"
    results = _search(run_cli, store, "--image", str(photo))
    assert Path(results[0]["source"]) == photo.resolve()
    assert results[0]["modality"] == "image"


def test_json_schema_and_table_output(run_cli, corpus, tmp_path, tiny_clip_dir):
    store = tmp_path / "index"
    assert _index(run_cli, corpus, store, tiny_clip_dir)[0] == 0
    results = _search(run_cli, store, "quarterly revenue", "--top-k", "4")
    assert 1 <= len(results) <= 4
    assert [r["rank"] for r in results] == list(range(1, len(results) + 1))
    for row in results:
        assert {"rank", "score", "modality", "source", "text"} <= set(row)
        assert isinstance(row["score"], float) and row["modality"] in ("text", "image", "text+image")
        assert isinstance(row["source"], str) and Path(row["source"]).exists()
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    pages = [r for r in results if r["source"].endswith("report.pdf")]
    assert all(isinstance(r["page"], int) for r in pages)
    assert {row["score_kind"] for row in results} == {"relevance"}
    assert all(0.0 <= s <= 1.0 for s in scores)
    code, out, _ = run_cli("search", "quarterly revenue", "--store", str(store), "--top-k", "3")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["rank", "relevance", "modality"]
    assert out.splitlines()[-1].startswith("score: relevance in [0, 1], one scale for every modality")
    code, out, _ = run_cli("search", "quarterly revenue", "--store", str(store), "--top-k", "3", "--fusion", "rrf")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["rank", "RRF", "modality"]
    assert out.splitlines()[-1].startswith("score: RRF fusion of the dense text and image rankings and the BM25")

    only_images = _search(run_cli, store, "quarterly revenue", "--modality", "image")
    assert only_images and all(r["modality"] != "text" for r in only_images)
    sparse = _search(run_cli, store, "QX-7731", "--mode", "sparse")
    assert sparse[0]["source"].endswith("notes.txt") and sparse[0]["score_kind"] == "bm25"
    code, out, _ = run_cli("search", "QX-7731", "--mode", "sparse", "--store", str(store))
    assert out.splitlines()[0].split()[1] == "BM25" and out.splitlines()[-1].startswith("score: BM25")


def _point_ids(store: Path) -> list[str]:
    from llama_index_mm_st.store import MultimodalQdrantStore

    with MultimodalQdrantStore("mmst", path=str(store)) as opened:
        return sorted(node.node_id for node in opened.get_nodes())


def test_interrupted_index_resumes_without_duplicates_or_gaps(run_cli, corpus, tmp_path, tiny_clip_dir, monkeypatch):
    from llama_index_mm_st.ingest import indexer
    from tests.fixtures.interrupt import interrupt_add_at

    reference = tmp_path / "reference"
    assert _index(run_cli, corpus, reference, tiny_clip_dir)[0] == 0
    expected = _point_ids(reference)

    monkeypatch.setattr(indexer, "NODES_PER_WRITE", 2)
    restore_add = interrupt_add_at(monkeypatch, 2)
    store = tmp_path / "resumed"
    code, _, err = _index(run_cli, corpus, store, tiny_clip_dir)
    assert code == 130 and "interrupted" in err
    partial = _point_ids(store)
    assert 0 < len(partial) < len(expected)

    restore_add()
    code, out, err = _index(run_cli, corpus, store, tiny_clip_dir)
    assert code == 0, err
    assert _point_ids(store) == expected
    assert "unchanged (already indexed): " in out and "unchanged (already indexed): 0" not in out


def test_rerun_adds_nothing_and_changed_file_replaces_its_points(run_cli, corpus, tmp_path, tiny_clip_dir):
    store = tmp_path / "index"
    assert _index(run_cli, corpus, store, tiny_clip_dir)[0] == 0
    before = _point_ids(store)
    code, out, _ = _index(run_cli, corpus, store, tiny_clip_dir)
    assert code == 0 and "added: nothing new" in out and _point_ids(store) == before

    (corpus / "notes.txt").write_text("Completely new words about a zebra crossing.\n")
    code, out, _ = _index(run_cli, corpus, store, tiny_clip_dir)
    assert code == 0 and "replaced (changed): 1 file: notes.txt" in out
    assert "added: nothing new" in out  # the changed file is reported once, as replaced, not also as added
    assert "unchanged (already indexed): 5 files" in out
    assert len(_point_ids(store)) == len(before)
    hits = _search(run_cli, store, "zebra crossing", "--mode", "sparse")
    assert hits[0]["source"].endswith("notes.txt") and "zebra" in hits[0]["text"]
    assert not _search(run_cli, store, "QX-7731", "--mode", "sparse")


def test_model_mismatch_is_one_clear_line(run_cli, corpus, tmp_path, tiny_clip_dir, tiny_siglip_dir):
    store = tmp_path / "index"
    assert _index(run_cli, corpus, store, tiny_clip_dir)[0] == 0
    code, out, err = _index(run_cli, corpus, store, tiny_siglip_dir)
    assert code == 1 and "built with model" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("search", "x", "--store", str(store), "--model", str(tiny_siglip_dir))
    assert code == 1 and "built with model" in err


def test_failures_are_one_line_never_a_traceback(run_cli, tmp_path, corpus, tiny_clip_dir):
    code, _, err = run_cli("search", "anything", "--store", str(tmp_path / "nowhere"))
    assert code == 1 and "no index at" in err and "Traceback" not in err
    code, _, err = run_cli("index", str(tmp_path / "missing_folder"), "--store", str(tmp_path / "i"))
    assert code == 1 and "missing_folder" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("index", str(corpus), "--store", str(tmp_path / "j"), "--model",
                           str(tmp_path / "no_such_model"), "--no-progress")
    assert code == 1 and "no_such_model" in err and "Traceback" not in err
    store = tmp_path / "index"
    assert _index(run_cli, corpus, store, tiny_clip_dir)[0] == 0
    code, _, err = run_cli("search", "--store", str(store))
    assert code == 1 and "query" in err
    code, _, err = run_cli("search", "--image", str(tmp_path / "nope.png"), "--store", str(store))
    assert code == 1 and "nope.png" in err


def test_locked_store_is_a_clear_error(run_cli, corpus, tmp_path, tiny_clip_dir):
    store = tmp_path / "index"
    assert _index(run_cli, corpus, store, tiny_clip_dir)[0] == 0
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from llama_index_mm_st.store import MultimodalQdrantStore
            s = MultimodalQdrantStore("mmst", path={str(store)!r})
            print("held", flush=True)
            sys.stdin.read()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, _, err = run_cli("search", "x", "--store", str(store))
        assert code == 1 and "lock" in err.lower() and len(err.strip().splitlines()) == 1
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def test_info_names_model_backend_and_counts(run_cli, corpus, tmp_path, tiny_clip_dir):
    store = tmp_path / "index"
    assert _index(run_cli, corpus, store, tiny_clip_dir)[0] == 0
    code, out, _ = run_cli("info", "--store", str(store))
    assert code == 0
    assert str(tiny_clip_dir) in out and "Qdrant Edge" in out and "dimension: 16" in out
    assert "points: 7 (2 text, 4 image, 1 text+image)" in out
