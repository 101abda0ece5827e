"""The index follows the files: a rerun of ``mmst index`` after deletes, renames, moves and a shorter PDF
holds exactly what a fresh index of what remains holds; ``--keep-missing`` keeps; ``mmst ls`` and
``mmst rm``; the same from Python (``Indexer(prune=True)``, ``indexed_files``, ``remove_files``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from llama_index_mm_st.store import MultimodalQdrantStore
from tests.fixtures.documents import write_pdf
from tests.fixtures.stamps import without_stamp


def _index(run_cli, paths, store: Path, model: Path, *extra: str) -> tuple[int, str, str]:
    paths = [str(p) for p in (paths if isinstance(paths, (list, tuple)) else [paths])]
    return run_cli("index", *paths, "--store", str(store), "--model", str(model), "--precision", "fp32",
                   "--no-progress", *extra)


def contents(store_dir: Path) -> dict[str, tuple[dict, dict]]:
    """Point id -> (payload without the stamp, dense vectors) of every point of a store."""
    with MultimodalQdrantStore(path=str(store_dir)) as store:
        return {p.id: (without_stamp(dict(p.payload)), {k: np.asarray(v) for k, v in p.dense.items()})
                for batch in store.export_points() for p in batch}


def assert_same_points(left: dict, right: dict) -> None:
    assert set(left) == set(right)
    for point_id, (payload, vectors) in left.items():
        other_payload, other_vectors = right[point_id]
        assert payload == other_payload, point_id
        assert set(vectors) == set(other_vectors), point_id
        for name, vector in vectors.items():
            np.testing.assert_allclose(vector, other_vectors[name], atol=1e-4, err_msg=f"{point_id} {name}")


def test_a_rerun_after_deletes_renames_and_moves_equals_a_fresh_index(run_cli, corpus, tmp_path, tiny_clip_dir):
    store = tmp_path / "index"
    write_pdf(corpus / "report.pdf", ["Quarterly revenue grew.", "Page two words.", "Page three words."])
    code, out, err = _index(run_cli, corpus, store, tiny_clip_dir)
    assert code == 0 and "removed: nothing (every indexed file is still there)" in out, err

    photos = sorted((corpus / "photos").glob("sample_*"))
    photos[0].unlink()                                                  # deleted
    (corpus / "notes.txt").rename(corpus / "renamed_notes.txt")         # renamed
    (corpus / "moved").mkdir()
    shutil.move(str(photos[1]), corpus / "moved" / photos[1].name)      # moved to a subfolder
    write_pdf(corpus / "report.pdf", ["Quarterly revenue grew.", "Page two, changed."])  # lost its third page
    code, out, err = _index(run_cli, corpus, store, tiny_clip_dir)
    assert code == 0, err
    assert f"removed: 3 files no longer there: {', '.join(sorted([photos[0].name, photos[1].name, 'notes.txt']))}" in out
    assert "replaced (changed): 1 file: report.pdf" in out

    fresh = tmp_path / "fresh"
    assert _index(run_cli, corpus, fresh, tiny_clip_dir)[0] == 0
    assert_same_points(contents(store), contents(fresh))

    code, out, _ = _index(run_cli, corpus, store, tiny_clip_dir)  # nothing left to do
    assert code == 0 and "added: nothing new" in out and "removed: nothing" in out


def test_keep_missing_is_append_only_and_says_so(run_cli, corpus, tmp_path, tiny_clip_dir):
    store = tmp_path / "index"
    assert _index(run_cli, corpus, store, tiny_clip_dir)[0] == 0
    before = contents(store)
    (corpus / "guide.md").unlink()
    code, out, _ = _index(run_cli, corpus, store, tiny_clip_dir, "--keep-missing")
    assert code == 0 and "kept (--keep-missing): 1 file no longer there, still in the index" in out
    assert "removed:" not in out and set(contents(store)) == set(before)
    code, out, _ = _index(run_cli, corpus, store, tiny_clip_dir)
    assert code == 0 and "removed: 1 file no longer there: guide.md" in out
    assert len(contents(store)) == len(before) - 1


def test_only_the_folders_named_are_pruned(run_cli, corpus, tmp_path, tiny_clip_dir):
    store = tmp_path / "index"
    assert _index(run_cli, [corpus / "photos", corpus / "notes.txt", corpus / "guide.md"], store, tiny_clip_dir)[0] == 0
    (corpus / "guide.md").unlink()
    victim = sorted((corpus / "photos").glob("sample_*"))[0]
    victim.unlink()
    code, out, _ = _index(run_cli, corpus / "photos", store, tiny_clip_dir)
    assert code == 0 and f"removed: 1 file no longer there: {victim.name}" in out
    code, out, _ = run_cli("ls", "--store", str(store), "--json")
    listed = {Path(row["path"]).name for row in json.loads(out)}
    assert "guide.md" in listed and victim.name not in listed  # guide.md was named as a file, not under a folder


def test_ls_lists_files_with_kind_points_and_time(run_cli, corpus, tmp_path, tiny_clip_dir):
    store = tmp_path / "index"
    assert _index(run_cli, corpus, store, tiny_clip_dir)[0] == 0
    code, out, err = run_cli("ls", "--store", str(store), "--json")
    assert code == 0, err
    rows = {Path(row["path"]).name: row for row in json.loads(out)}
    assert set(rows) == {"notes.txt", "guide.md", "report.pdf", *(p.name for p in (corpus / "photos").glob("sample_*"))}
    assert rows["report.pdf"]["kind"] == "pdf" and rows["report.pdf"]["points"] == 2
    assert len(rows["report.pdf"]["documents"]) == 2  # one document per page
    assert rows["notes.txt"]["kind"] == "text" and rows["notes.txt"]["points"] == 1
    assert all(row["indexed_at"] and row["indexed_at"].endswith("Z") for row in rows.values())
    with MultimodalQdrantStore(path=str(store)) as opened:
        assert sum(row["points"] for row in rows.values()) == opened.count()

    code, out, _ = run_cli("ls", "--store", str(store))
    lines = out.strip().splitlines()
    assert lines[0].split() == ["PATH", "KIND", "POINTS", "INDEXED"] and lines[-1].startswith(f"{len(rows)} files, ")
    code, out, _ = run_cli("ls", str(corpus / "photos"), "--store", str(store), "--json")
    assert {Path(r["path"]).parent.name for r in json.loads(out)} == {"photos"}


def test_rm_deletes_files_and_folders_and_names_what_is_not_indexed(run_cli, corpus, tmp_path, tiny_clip_dir):
    store = tmp_path / "index"
    assert _index(run_cli, corpus, store, tiny_clip_dir)[0] == 0
    photos = len(list((corpus / "photos").glob("sample_*")))
    code, out, err = run_cli("rm", str(corpus / "photos"), str(corpus / "report.pdf"), "--store", str(store))
    assert code == 0 and err == "" and out.startswith(f"removed: {photos + 1} files ({photos + 2} points)")
    code, out, _ = run_cli("ls", "--store", str(store), "--json")
    assert sorted(Path(r["path"]).name for r in json.loads(out)) == ["guide.md", "notes.txt"]

    (corpus / "notes.txt").unlink()  # a file that is gone can still be removed by its path
    code, out, err = run_cli("rm", str(corpus / "notes.txt"), str(corpus / "never.txt"), "--store", str(store))
    assert code == 1 and "removed: 1 file (1 point): notes.txt" in out
    assert err.strip() == f"mmst: not in the index: {corpus / 'never.txt'}"
    code, out, _ = _index(run_cli, corpus, store, tiny_clip_dir)  # the next run brings back what is there
    assert f"(from {photos + 1} files)" in out and "unchanged (already indexed): 1 file" in out


def test_from_python_indexer_prune_and_the_catalogue(corpus, tmp_path, tiny_clip_dir):
    from llama_index_mm_st import MultimodalEmbedding
    from llama_index_mm_st.ingest import Indexer, format_summary, gone_files, indexed_files, remove_files

    embedding = MultimodalEmbedding(str(tiny_clip_dir), device="cpu", precision="fp32")
    with MultimodalQdrantStore("mmst", path=str(tmp_path / "index")) as store:
        Indexer(store, embedding).index([str(corpus)])
        (corpus / "guide.md").unlink()
        assert [Path(f.path).name for f in gone_files(store, [str(corpus)])] == ["guide.md"]
        kept = Indexer(store, embedding).index([str(corpus)])  # prune=False by default in Python: append-only
        assert not kept.removed and "guide.md" in {Path(f.path).name for f in indexed_files(store)}
        summary = Indexer(store, embedding, prune=True).index([str(corpus)])
        assert {Path(p).name for p in summary.removed} == {"guide.md"}
        assert "removed: 1 file no longer there: guide.md" in format_summary(summary)
        removal = remove_files(store, [str(corpus / "notes.txt"), str(corpus / "nothing.txt")])
        assert [Path(f.path).name for f in removal.removed] == ["notes.txt"]
        assert removal.not_indexed == [str(corpus / "nothing.txt")]
        assert store.count() == sum(f.points for f in indexed_files(store))


def test_cancel_stops_the_job_between_steps(corpus, tmp_path, tiny_clip_dir, monkeypatch):
    from llama_index_mm_st import MultimodalEmbedding
    from llama_index_mm_st.ingest import IndexCancelled, Indexer, indexer as indexer_module

    monkeypatch.setattr(indexer_module, "NODES_PER_WRITE", 2)
    embedding = MultimodalEmbedding(str(tiny_clip_dir), device="cpu", precision="fp32")
    with MultimodalQdrantStore("mmst", path=str(tmp_path / "index")) as store:
        job = Indexer(store, embedding)
        original = MultimodalQdrantStore.add_parts

        def add_then_cancel(self, parts, **kwargs):  # the job is cancelled while its first chunk is written
            written = original(self, parts, **kwargs)
            job.cancel()
            return written

        monkeypatch.setattr(MultimodalQdrantStore, "add_parts", add_then_cancel)
        with pytest.raises(IndexCancelled, match="run it again to resume"):
            job.index([str(corpus)])
        assert store.count() == 2  # one chunk, then it stopped
        monkeypatch.setattr(MultimodalQdrantStore, "add_parts", original)
        summary = job.index([str(corpus)])  # a new run is not cancelled, and resumes
        assert summary.written and store.count() > 2


def test_an_edited_caption_sidecar_replaces_its_image(run_cli, corpus, tmp_path, tiny_clip_dir):
    photo = sorted((corpus / "photos").glob("sample_*"))[0]
    caption = photo.parent / (photo.name + ".txt")
    caption.write_text("A quokka on a bench.\n")
    store = tmp_path / "index"
    assert _index(run_cli, corpus, store, tiny_clip_dir)[0] == 0
    caption.write_text("A pelican at the harbour.\n")  # only the sidecar changed: the image's bytes did not
    code, out, _ = _index(run_cli, corpus, store, tiny_clip_dir)
    assert code == 0 and f"replaced (changed): 1 file: {photo.name}" in out
    with MultimodalQdrantStore(path=str(store)) as opened:
        texts = [n.get_content() for n in opened.get_nodes() if n.metadata.get("file_name") == photo.name]
    assert texts == ["A pelican at the harbour."]
    code, out, _ = _index(run_cli, corpus, store, tiny_clip_dir)
    assert "added: nothing new" in out and "replaced (changed): 0 files" in out  # stable once written
    caption.unlink()  # the caption goes: the image is read without words, a changed document again
    code, out, _ = _index(run_cli, corpus, store, tiny_clip_dir)
    assert f"replaced (changed): 1 file: {photo.name}" in out
