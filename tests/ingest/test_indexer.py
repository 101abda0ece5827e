"""``Indexer`` driven directly, as an application or a server calls it (no CLI around it): what it writes,
what its summary says, how it reports progress, and how it resumes after a kill mid-run."""

from __future__ import annotations

import asyncio
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import pytest

from llama_index_mm_st import MultimodalEmbedding, MultimodalQdrantStore, SchemaMismatchError
from llama_index_mm_st.ingest import Indexer, format_summary, read_manifest
from tests.cli.conftest import make_corpus
from tests.distributed.test_ray_index import points, same_points
from tests.fixtures.interrupt import interrupt_add_at


@pytest.fixture(scope="module")
def embedding(tiny_clip_dir: Path) -> MultimodalEmbedding:
    return MultimodalEmbedding(str(tiny_clip_dir), precision="fp32")


@pytest.fixture()
def corpus(tmp_path: Path, image_files: dict[str, Path], broken_images: dict[str, Path]) -> Path:
    """Three photos and a truncated JPEG, a two-page PDF, a text and a Markdown file, three ignored files."""
    return make_corpus(tmp_path / "corpus", image_files, broken_images)


class RecordedProgress:
    """A ``Progress`` that keeps (stage, total, unit) and the units each stage reported done."""

    def __init__(self) -> None:
        self.stages: list[tuple[str, Optional[int], str]] = []
        self.done: dict[str, int] = {}

    @contextmanager
    def stage(self, name: str, total: Optional[int], unit: str) -> Iterator["RecordedProgress"]:
        self.stages.append((name, total, unit))
        self.done[name] = 0
        self._current = name
        yield self

    def update(self, count: int) -> None:
        self.done[self._current] += count


def test_index_writes_every_readable_file_and_names_what_it_skipped(corpus: Path, tmp_path: Path,
                                                                     embedding: MultimodalEmbedding):
    progress = RecordedProgress()
    with MultimodalQdrantStore("docs", path=str(tmp_path / "index")) as store:
        summary = Indexer(store, embedding, progress=progress, nodes_per_write=3).index(str(corpus))
        counts = dict(store.count_by_modality())
        manifest = read_manifest(store)
    assert {Path(p).name for p in summary.new_files} == {"sample_png.png", "sample_jpeg.jpg", "sample_bmp.bmp",
                                                          "report.pdf", "notes.txt", "guide.md"}
    assert [(Path(item).name, "truncated" in reason) for item, reason in summary.skipped] == [("broken.jpg", True)]
    assert summary.ignored == {".docx": 2, ".json": 1}
    # three photos and the PDF's picture page are images; its page with words is text+image; two text files
    assert summary.added == {"image": 4, "text+image": 1, "text": 2} and summary.written == 7
    assert summary.total == counts and counts == {"text": 2, "image": 4, "text+image": 1, "audio": 0, "video": 0}
    assert manifest is not None and (manifest.model, manifest.dim) == (embedding.model_name, embedding.dimension)
    # progress: a Reading stage over the 7 listed files (ignored types are not listed), an Embedding stage
    # over the 7 nodes, written 3 at a time; both run to their totals
    assert progress.stages == [("Reading", 7, "file"), ("Embedding", 7, "node")]
    assert progress.done == {"Reading": 7, "Embedding": 7}
    assert format_summary(summary)[0] == "added: 4 image, 2 text, 1 text+image (from 6 files)"


def test_a_second_run_changes_nothing_and_a_changed_file_is_replaced(corpus: Path, tmp_path: Path,
                                                                      embedding: MultimodalEmbedding):
    with MultimodalQdrantStore("docs", path=str(tmp_path / "index")) as store:
        indexer = Indexer(store, embedding)
        first = indexer.index([str(corpus)])
        before = points(store)
        again = indexer.index([str(corpus)])
        assert again.written == 0 and not again.added and not again.replaced and again.new_files == set()
        assert len(again.unchanged) == len(first.new_files) and points(store).keys() == before.keys()
        (corpus / "notes.txt").write_text("Quarterly notes: the quokka valve was replaced by a new pump.\n")
        changed = indexer.index([str(corpus)])
        after = points(store)
    assert {Path(p).name for p in changed.replaced} == {"notes.txt"} and changed.written == 1
    assert not changed.added  # a replaced file's nodes are not "added"
    # ids are stable (document, position): the file's one point is rewritten in place, no other point changes
    assert after.keys() == before.keys()
    assert [key for key in after if after[key][1] != before[key][1]] == \
        [key for key in after if str(after[key][1].get("file_path", "")).endswith("notes.txt")]
    texts = [str(payload) for _, payload in after.values()]
    assert any("quokka valve was replaced" in text for text in texts)
    assert not any("replaces the old pump seal" in text for text in texts)


def test_a_run_killed_between_writes_resumes_to_the_same_points(corpus: Path, tmp_path: Path,
                                                                 embedding: MultimodalEmbedding, monkeypatch):
    with MultimodalQdrantStore("docs", path=str(tmp_path / "reference")) as store:
        Indexer(store, embedding, nodes_per_write=2).index(str(corpus))
        reference = points(store)
    with MultimodalQdrantStore("docs", path=str(tmp_path / "resumed")) as store:
        restore = interrupt_add_at(monkeypatch, 2)  # the second chunk's write: the first chunk is stored
        with pytest.raises(KeyboardInterrupt):
            Indexer(store, embedding, nodes_per_write=2).index(str(corpus))
        assert 0 < len(points(store)) < len(reference)
        restore()
        resumed = Indexer(store, embedding, nodes_per_write=2).index(str(corpus))
        assert resumed.unchanged  # what the first run finished is not embedded again
        same_points(points(store), reference)


def test_a_run_that_writes_nothing_records_no_model_and_another_model_is_refused(
        tmp_path: Path, embedding: MultimodalEmbedding, image_files: dict[str, Path]):
    only_ignored = tmp_path / "ignored"
    only_ignored.mkdir()
    (only_ignored / "settings.json").write_text("{}")
    with MultimodalQdrantStore("docs", path=str(tmp_path / "index")) as store:
        summary = Indexer(store, embedding).index(str(only_ignored))
        assert summary.written == 0 and read_manifest(store) is None
        Indexer(store, embedding).index(str(image_files["png"]))
        with pytest.raises(SchemaMismatchError, match="built with model"):
            Indexer(store, embedding, model_name="another/model").index(str(image_files["jpeg"]))
        assert summary.ignored == {".json": 1}


def test_aindex_is_index_in_a_worker_thread(corpus: Path, tmp_path: Path, embedding: MultimodalEmbedding):
    with MultimodalQdrantStore("docs", path=str(tmp_path / "sync")) as store:
        Indexer(store, embedding).index(str(corpus))
        reference = points(store)
    with MultimodalQdrantStore("docs", path=str(tmp_path / "async")) as store:
        summary = asyncio.run(Indexer(store, embedding).aindex(str(corpus)))
        same_points(points(store), reference)
    assert summary.written == len(reference)


def test_bad_settings_are_refused_before_any_work(tmp_path: Path, embedding: MultimodalEmbedding):
    with MultimodalQdrantStore("docs", path=str(tmp_path / "index")) as store:
        with pytest.raises(ValueError, match="nodes_per_write must be at least 1"):
            Indexer(store, embedding, nodes_per_write=0)
        with pytest.raises(ValueError, match="read_workers must be at least 1"):
            Indexer(store, embedding, read_workers=0)
    shutil.rmtree(tmp_path / "index", ignore_errors=True)
