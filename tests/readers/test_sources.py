"""Folders, globs, links, lists of sources, stable ids and sidecar captions."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from llama_index_mm_st.errors import ImageLoadError, SkippedItemsWarning
from llama_index_mm_st.readers import ImageReader


def _tree(root: Path, png: Path) -> Path:
    """root/a.png, root/sub/b.png, root/sub/deep/c.png, root/skip/d.png, root/.hidden.png, root/notes.txt"""
    for rel in ("a.png", "sub/b.png", "sub/deep/c.png", "skip/d.png", ".hidden.png"):
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(png, target)
    (root / "notes.txt").write_text("not an image, and not an input")
    return root


def _ids(docs) -> list[str]:  # type: ignore[no-untyped-def]
    return [d.metadata["source_id"] for d in docs]


def test_folder_walk_is_recursive_sorted_and_skips_hidden_and_other_files(
    make_reader, tmp_path: Path, image_files
) -> None:
    root = _tree(tmp_path / "root", image_files["png"])
    reader = make_reader()
    assert _ids(reader.load_data(root)) == ["a.png", "skip/d.png", "sub/b.png", "sub/deep/c.png"]
    assert reader.last_report.ok and reader.last_report.sources == 4
    assert _ids(make_reader(recursive=False).load_data(root)) == ["a.png"]
    assert ".hidden.png" in _ids(make_reader(exclude_hidden=False).load_data(root))


def test_include_and_exclude_globs(make_reader, tmp_path: Path, image_files) -> None:
    root = _tree(tmp_path / "root", image_files["png"])
    shutil.copy(image_files["jpeg"], root / "sub" / "e.jpg")
    assert _ids(make_reader(exclude=["skip"]).load_data(root)) == ["a.png", "sub/b.png", "sub/deep/c.png", "sub/e.jpg"]
    assert _ids(make_reader(include=["*.jpg"]).load_data(root)) == ["sub/e.jpg"]
    assert _ids(make_reader(include=["sub/*"], exclude=["*/deep/*"]).load_data(root)) == ["sub/b.png", "sub/e.jpg"]


def test_links_outside_the_root_are_ignored_and_reported_unless_asked(make_reader, tmp_path: Path, image_files) -> None:
    root = _tree(tmp_path / "root", image_files["png"])
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(image_files["png"], outside / "secret.png")
    os.symlink(outside, root / "link_dir")
    os.symlink(outside / "secret.png", root / "link_file.png")
    os.symlink(root / "sub", root / "inner_link")  # inside the root: followed
    reader = make_reader()
    ids = _ids(reader.load_data(root))
    assert not any("secret" in i for i in ids)
    assert "inner_link/b.png" in ids and "sub/b.png" in ids
    assert sorted(Path(p.path).name for p in reader.last_report.ignored) == ["link_dir", "link_file.png"]
    assert all("outside the folder" in p.reason for p in reader.last_report.ignored)
    followed = _ids(make_reader(follow_external_links=True).load_data(root))
    assert "link_dir/secret.png" in followed and "link_file.png" in followed


def test_link_cycles_are_cut(make_reader, tmp_path: Path, image_files) -> None:
    root = _tree(tmp_path / "root", image_files["png"])
    os.symlink(root, root / "sub" / "loop")
    reader = make_reader()
    assert _ids(reader.load_data(root)) == ["a.png", "skip/d.png", "sub/b.png", "sub/deep/c.png"]
    assert [Path(p.path).name for p in reader.last_report.ignored] == ["loop"]


def test_broken_link_is_a_reported_failure(make_reader, tmp_path: Path, image_files) -> None:
    root = _tree(tmp_path / "root", image_files["png"])
    os.symlink(root / "gone.png", root / "dangling.png")
    reader = make_reader()
    with pytest.warns(UserWarning):
        reader.load_data(root)
    (failure,) = reader.last_report.failures
    assert failure.item.endswith("dangling.png") and "broken symbolic link" in str(failure.error)


def test_ids_are_stable_across_reads_and_distinct_for_identical_files(tmp_path: Path, image_files) -> None:
    root = _tree(tmp_path / "root", image_files["png"])
    first = ImageReader(cache_dir=tmp_path / "c1").load_data(root)
    second = ImageReader(cache_dir=tmp_path / "c2", num_workers=1).load_data(root)
    assert [d.id_ for d in first] == [d.id_ for d in second]
    assert len({d.id_ for d in first}) == len(first) == 4
    assert len({d.metadata["sha256"] for d in first}) == 1, "same bytes at four paths: four documents"
    moved = tmp_path / "elsewhere"
    shutil.copytree(root, moved)
    assert [d.id_ for d in ImageReader(cache_dir=tmp_path / "c3").load_data(moved)] == [d.id_ for d in first], (
        "ids come from the path relative to the folder read, so a moved folder keeps them"
    )


def test_a_list_mixes_files_folders_and_bytes_in_order(make_reader, tmp_path: Path, image_files) -> None:
    root = _tree(tmp_path / "root", image_files["png"])
    docs = make_reader().load_data([image_files["jpeg"], str(root / "sub"), image_files["gif"].read_bytes()])
    ids = _ids(docs)
    assert ids[0] == image_files["jpeg"].resolve().as_posix()
    assert ids[1:3] == ["b.png", "deep/c.png"]
    assert ids[3].startswith("sha256:")


def test_wrong_source_types_are_refused_before_reading(make_reader) -> None:
    with pytest.raises(TypeError, match="accepted"):
        make_reader().load_data([42])
    with pytest.raises(TypeError, match="exactly one"):
        make_reader().load_data()


def test_a_list_with_refused_and_missing_sources_names_each_and_reads_the_rest(make_reader, tmp_path: Path,
                                                                               image_files) -> None:
    """In batch work a bad item is named and the rest go through: a file:// URL, a URL while URL
    reading is off and a path that does not exist are each reported; the good files are read."""
    sources = [image_files["jpeg"], f"file://{image_files['png']}", "https://example.com/cat.jpg",
               str(tmp_path / "missing.png"), image_files["gif"]]
    reader = make_reader()
    with pytest.warns(SkippedItemsWarning) as caught:
        docs = reader.load_data(sources)
    assert [Path(d.metadata["file_path"]).name for d in docs] == [image_files["jpeg"].name, image_files["gif"].name]
    failures = {f.item: str(f.error) for f in reader.last_report.failures}
    assert set(failures) == {f"file://{image_files['png']}", "https://example.com/cat.jpg", str(tmp_path / "missing.png")}
    assert "file://" in failures[f"file://{image_files['png']}"] and "path" in failures[f"file://{image_files['png']}"]
    assert "allow_urls=True" in failures["https://example.com/cat.jpg"]
    assert len(caught[0].message.failures) == 3
    with pytest.raises(ImageLoadError, match="allow_urls=True"):
        make_reader(on_error="raise").load_data(["https://example.com/cat.jpg"])


def test_sidecar_captions_in_priority_order(make_reader, tmp_path: Path, image_files) -> None:
    for name in ("a.png", "b.png", "c.png", "d.png", "e.png"):
        shutil.copy(image_files["png"], tmp_path / name)
    (tmp_path / "a.png.txt").write_text("caption from a.png.txt\n")
    (tmp_path / "a.txt").write_text("loses to a.png.txt")
    (tmp_path / "b.txt").write_text("caption from b.txt")
    (tmp_path / "captions.json").write_text(json.dumps({"c.png": "caption from json", "b.png": "loses to b.txt"}))
    docs = make_reader().load_data(tmp_path)
    assert [d.text for d in docs] == ["caption from a.png.txt", "caption from b.txt", "caption from json", "", ""]
    assert [d.text for d in make_reader(captions=False).load_data(tmp_path)] == [""] * 5


def test_captions_csv(make_reader, tmp_path: Path, image_files) -> None:
    shutil.copy(image_files["png"], tmp_path / "x.png")
    (tmp_path / "captions.csv").write_text('file,caption\nx.png,"a red bus, parked"\n')
    assert make_reader().load_data(tmp_path)[0].text == "a red bus, parked"


def test_the_cache_inside_a_folder_being_read_is_not_read_back(tmp_path: Path) -> None:
    from tests.fixtures.documents import write_pdf

    write_pdf(tmp_path / "doc.pdf", ["one page"])
    reader = ImageReader(cache_dir=tmp_path / "cache", pdf_dpi=36)
    assert len(reader.load_data(tmp_path)) == 1
    assert len(reader.load_data(tmp_path)) == 1


def test_relative_sources_give_absolute_paths_in_documents(make_reader, tmp_path: Path, image_files, monkeypatch) -> None:
    root = _tree(tmp_path / "root", image_files["png"])
    monkeypatch.chdir(tmp_path)
    from_folder = make_reader().load_data("root")
    direct = make_reader().load_data(Path("root") / "a.png")
    assert from_folder[0].image_path == str(root / "a.png") == from_folder[0].metadata["file_path"]
    assert direct[0].image_path == str(root / "a.png") and direct[0].id_ != from_folder[0].id_
