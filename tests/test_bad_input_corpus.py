"""The bad-input corpus (``tests/fixtures/bad_inputs.py``) through the three paths a real folder takes:
``ImageReader``, ``MultimodalEmbedding(on_error="skip")`` and ``mmst index``. Nothing aborts, every good
item comes through, every bad item is named with its reason. Then the URL policy, against a local server.
"""

from __future__ import annotations

import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
from llama_index.core.schema import MetadataMode, TextNode
from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters

from llama_index_mm_st import fetch
from llama_index_mm_st.embedding import MultimodalEmbedding
from llama_index_mm_st.errors import ImageLoadError, SkippedItemsWarning
from llama_index_mm_st.readers import ImageReader
from tests.fixtures.bad_inputs import Case, remove_corpus, write_corpus

PDF_SUFFIX = ".pdf"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[Case]]]:
    root = tmp_path_factory.mktemp("bad_corpus")
    folder = root / "folder"
    cases = write_corpus(folder, root / "outside")
    assert len({case.kind for case in cases}) >= 20
    yield folder, cases
    remove_corpus(folder)


@pytest.fixture(scope="module")
def embedding(tiny_clip_dir: Path) -> MultimodalEmbedding:
    return MultimodalEmbedding(str(tiny_clip_dir), device="cpu", precision="fp32")


def _named(case: Case, text: str) -> bool:
    return case.shown in text


def test_image_reader_skips_and_names_every_bad_entry(corpus, tmp_path: Path) -> None:
    folder, cases = corpus
    reader = ImageReader(cache_dir=tmp_path / "cache")
    with pytest.warns(SkippedItemsWarning):
        docs = reader.load_data(folder)
    report = reader.last_report
    paths = [d.metadata["file_path"] for d in docs]
    for case in (c for c in cases if not c.text):
        if case.fate == "good":
            assert any(p == str(folder / case.name) for p in paths), case.kind
        elif case.fate == "bad":
            (failure,) = [f for f in report.failures if _named(case, f.item)]
            assert case.reason in str(failure.error), (case.kind, str(failure.error))
        else:
            (ignored,) = [i for i in report.ignored if i.path.endswith(case.name)]
            assert case.reason in ignored.reason, case.kind
    expected_bad = sorted(c.shown for c in cases if c.fate == "bad" and not c.text)
    assert sorted(Path(f.item.split(" page ")[0]).name for f in report.failures) == expected_bad
    assert report.ignored_types[".txt"] == 1, "notes.txt is text: counted as a type the reader passes over"
    assert len([d for d in docs if d.metadata["file_name"] == "animated.gif"]) == 1
    assert len([d for d in docs if d.metadata["file_name"] == "report.pdf"]) == 2


def test_the_reader_builds_mmst_ids_when_asked(corpus, tmp_path: Path) -> None:
    from llama_index_mm_st.ids import stable_id

    folder, _ = corpus
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedItemsWarning)
        docs = ImageReader(cache_dir=tmp_path / "cache", absolute_ids=True).load_data(folder)
    for doc in docs:
        meta = doc.metadata
        assert doc.id_ == stable_id(meta["file_path"], meta.get("page", ""), meta.get("frame", ""))


def test_embedding_on_error_skip_embeds_the_good_and_names_the_bad(corpus, embedding) -> None:
    folder, cases = corpus
    images = [c for c in cases if not c.text and not c.name.endswith(PDF_SUFFIX)
              and (c.fate != "ignored" or c.fate_for_embedding is not None)]
    paths = [folder / c.name for c in images]  # Path objects: errors name the full path
    result = embedding.embed(paths, "image", on_error="skip")
    failures = {f.position: f for f in result.failures}
    for position, case in enumerate(images):
        fate = case.fate_for_embedding or case.fate
        if fate == "good":
            assert result.embeddings[position] is not None and position not in failures, case.kind
        else:
            failure = failures[position]
            assert isinstance(failure.error, ImageLoadError) and failure.item.endswith(case.name), case.kind
            assert case.reason in failure.error.reason, (case.kind, failure.error.reason)
            assert result.embeddings[position] is None


def test_mmst_index_never_aborts_indexes_the_good_and_names_the_bad(corpus, tmp_path: Path, tiny_clip_dir,
                                                                    capsys) -> None:
    from llama_index_mm_st.cli import main
    from llama_index_mm_st.store import MultimodalQdrantStore

    folder, cases = corpus
    (folder / "draft.docx").write_bytes(b"PK\x03\x04 not read")
    try:
        store_dir = tmp_path / "index"
        code = main(["index", str(folder), "--store", str(store_dir), "--model", str(tiny_clip_dir), "--no-progress"])
        out, err = capsys.readouterr()
    finally:
        (folder / "draft.docx").unlink()
    assert code == 0, err
    lines = [line.strip() for line in err.splitlines()]  # skipped files are reported on stderr
    for case in cases:
        if case.fate != "good":
            named = [line for line in lines if line.startswith(f"{folder}/{case.shown}: ")]
            assert len(named) == 1 and case.reason in named[0], (case.kind, named)
    with MultimodalQdrantStore("mmst", path=str(store_dir)) as store:
        for case in cases:
            if case.shown != case.name:
                continue  # a name that is not UTF-8 cannot be a filter value either; it is named above
            path = str((folder / case.name).resolve() if case.text else folder / case.name)
            found = store.count(MetadataFilters(filters=[MetadataFilter(key="file_path", value=path)]))
            assert (found > 0) == (case.fate == "good"), (case.kind, found)
        assert store.count() > 0


def test_collect_counts_ignored_types_and_never_follows_text_links_outside(corpus, tmp_path: Path) -> None:
    from llama_index_mm_st.ingest import collect

    folder, _ = corpus
    (folder / "a.docx").write_bytes(b"x")
    (folder / "b.docx").write_bytes(b"x")
    (folder / "c.json").write_text("{}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SkippedItemsWarning)
            collected = collect([str(folder)], ImageReader(cache_dir=tmp_path / "cache"))
    finally:
        for name in ("a.docx", "b.docx", "c.json"):
            (folder / name).unlink()
    assert collected.ignored_types == {".docx": 2, ".json": 1}
    paths = [d.metadata.get("file_path", "") for d in collected.documents]
    assert not any("secret" in p for p in paths), "a link leading outside the folder is never read"
    assert any(item.endswith("outside.txt") for item, _ in collected.not_followed)


def test_embedded_text_is_the_words_not_the_bookkeeping(corpus, tmp_path: Path) -> None:
    from llama_index.core.node_parser import SentenceSplitter

    from llama_index_mm_st.ingest import collect
    from llama_index_mm_st.ingest import nodes_of

    folder, _ = corpus
    (folder / "good.png.txt").write_text("a red bus parked at night\n")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SkippedItemsWarning)
            collected = collect([str(folder)], ImageReader(cache_dir=tmp_path / "cache"))
    finally:
        (folder / "good.png.txt").unlink()
    splitter = SentenceSplitter(chunk_size=512, chunk_overlap=32)
    by_name = {d.metadata["file_name"]: d for d in collected.documents if "page" not in d.metadata}
    (text_node,) = nodes_of(by_name["notes.txt"], splitter)
    assert text_node.get_content(MetadataMode.EMBED) == (
        "Warehouse notes: the quokka valve replaces the old pump seal."
    )
    (image_node,) = nodes_of(by_name["good.png"], splitter)
    assert image_node.get_content(MetadataMode.EMBED) == "a red bus parked at night"
    assert "sha256" not in text_node.get_content(MetadataMode.LLM)
    assert "file_path" in text_node.get_content(MetadataMode.LLM), "an LLM still sees where a chunk came from"


# ---- URLs -----------------------------------------------------------------------------------------

DRIP_BYTES = 40
DRIP_INTERVAL_S = 0.2


class _Handler(BaseHTTPRequestHandler):
    png: bytes = b""

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/drip.png":
            self.send_response(200)
            self.send_header("Content-Length", str(DRIP_BYTES))
            self.end_headers()
            try:
                for _ in range(DRIP_BYTES):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(DRIP_INTERVAL_S)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        if self.path == "/to-metadata":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(self.png)))
        self.end_headers()
        self.wfile.write(self.png)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server(image_files: dict[str, Path]) -> Iterator[str]:
    _Handler.png = image_files["png"].read_bytes()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_drip_fed_download_stops_at_the_total_deadline(server: str) -> None:
    options = fetch.FetchOptions(timeout=1.0, allow_urls=True, allow_private_urls=True)
    started = time.monotonic()
    with pytest.raises(ImageLoadError, match="deadline of 1.0 s") as raised:
        fetch.fetch_bytes(f"{server}/drip.png", options)
    assert time.monotonic() - started < 1.0 + 2 * DRIP_INTERVAL_S + 0.5
    assert raised.value.item == f"{server}/drip.png"


def test_private_addresses_are_refused_by_default_and_allowed_on_request(server: str, tmp_path: Path) -> None:
    url = f"{server}/good.png"
    reader = ImageReader(cache_dir=tmp_path / "cache", allow_urls=True)
    with pytest.warns(SkippedItemsWarning):
        assert reader.load_data(url) == []
    (failure,) = reader.last_report.failures
    assert failure.item == url and "loopback, link-local or private" in str(failure.error)
    allowed = ImageReader(cache_dir=tmp_path / "cache", allow_urls=True, allow_private_urls=True)
    assert len(allowed.load_data(url)) == 1


def test_a_redirect_to_a_private_address_is_refused(server: str, monkeypatch) -> None:
    """127.0.0.1 stands in for a public server here; its redirect to the cloud metadata address is refused."""
    real = fetch._public
    monkeypatch.setattr(fetch, "_public", lambda address: str(address) == "127.0.0.1" or real(address))
    assert fetch.fetch_bytes(f"{server}/good.png", fetch.FetchOptions(allow_urls=True))
    with pytest.raises(ImageLoadError, match="169.254.169.254.*refused"):
        fetch.fetch_bytes(f"{server}/to-metadata", fetch.FetchOptions(allow_urls=True))


def test_the_embedding_fetches_urls_only_when_allowed_and_never_reads_file_urls(
    server: str, tiny_clip_dir: Path, image_files
) -> None:
    url, file_url = f"{server}/good.png", f"file://{image_files['png']}"
    default = MultimodalEmbedding(str(tiny_clip_dir), device="cpu", precision="fp32")
    result = default.embed([url, file_url, image_files["png"]], "image", on_error="skip")
    reasons = {f.position: f.error.reason for f in result.failures}
    assert "URL fetching is off" in reasons[0] and "file:// URLs are refused" in reasons[1]
    assert result.embeddings[2] is not None
    private = MultimodalEmbedding(str(tiny_clip_dir), device="cpu", precision="fp32", allow_urls=True)
    (failure,) = private.embed([url], "image", on_error="skip").failures
    assert "private" in failure.error.reason
    allowed = MultimodalEmbedding(str(tiny_clip_dir), device="cpu", precision="fp32", allow_urls=True,
                                  allow_private_urls=True)
    assert allowed.embed([url, file_url], "image", on_error="skip").embeddings[0] is not None


def test_the_reader_refuses_file_urls_by_name_without_reading_them(tmp_path: Path, image_files) -> None:
    reader = ImageReader(cache_dir=tmp_path / "cache")
    with pytest.warns(SkippedItemsWarning, match="file:// URL"):
        assert reader.load_data(f"file://{image_files['png']}") == []
    assert [f.item for f in reader.last_report.failures] == [f"file://{image_files['png']}"]
    with pytest.raises(ValueError, match="file:// URL"):
        ImageReader(cache_dir=tmp_path / "cache", on_error="raise").load_data(f"file://{image_files['png']}")


def test_the_text_node_path_unchanged_for_plain_nodes() -> None:
    """A caller's own TextNode keeps LlamaIndex's behaviour: we only exclude keys on nodes we build."""
    node = TextNode(text="words", metadata={"title": "A title"})
    assert node.get_content(MetadataMode.EMBED) == "title: A title\n\nwords"
