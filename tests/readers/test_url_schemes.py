"""A source written as a URL with a scheme other than http(s) (issue 32) is named "unsupported URL scheme X"
under the string the caller gave, by every reader and every item loader; never read as a relative path
(which named it "<working dir>/ftp:/127.0.0.1:9/x.png: file not found"). Paths that only look like URLs
(a Windows drive, a name with a colon) are still paths."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest

from llama_index_mm_st import ImageLoadError, MediaLoadError, SkippedItemsWarning
from llama_index_mm_st.fetch import unsupported_scheme
from llama_index_mm_st.inputs import ImageRef
from llama_index_mm_st.readers import ImageReader

URLS = {"ftp://127.0.0.1:9/x.png": "ftp", "s3://bucket/photos/x.png": "s3", "GS://bucket/x.png": "gs",
        "sftp://host/x.wav": "sftp", "hf://datasets/x/y.mp4": "hf"}


def test_which_strings_are_urls_of_an_unsupported_scheme() -> None:
    for url, scheme in URLS.items():
        assert unsupported_scheme(url) == scheme
    for not_one in ("http://x/y.png", "HTTPS://x/y.png", "file:///etc/passwd", "C:/photos/x.png", "C:\\x.png",
                    "notes:v2.png", "photos/ftp:/x.png", "data:image/png;base64,AAAA", "x.png", ""):
        assert unsupported_scheme(not_one) is None, not_one


def test_the_image_reader_names_each_under_the_callers_string(image_files, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    reader = ImageReader(cache_dir=tmp_path / "cache")
    with pytest.warns(SkippedItemsWarning):
        docs = reader.load_data([*URLS, str(image_files["png"])])
    assert [doc.metadata["file_path"] for doc in docs] == [str(image_files["png"])]
    failed = {f.item: f.error for f in reader.last_report.failures}
    assert sorted(failed) == sorted(URLS)
    for url, scheme in URLS.items():
        assert isinstance(failed[url], ImageLoadError) and failed[url].reason == f"unsupported URL scheme {scheme}"
        assert str(failed[url]) == f"cannot load image {url}: unsupported URL scheme {scheme}"
        assert str(tmp_path) not in str(failed[url])


def test_the_media_reader_names_them_and_every_other_url_too(media_files, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from llama_index_mm_st import MediaReader

    pytest.importorskip("av")
    monkeypatch.chdir(tmp_path)
    good = shutil.copy(media_files["tone"], tmp_path / "tone.wav")
    given = [*URLS, "file:///etc/passwd", "http://127.0.0.1:9/x.wav", str(good)]
    reader = MediaReader()
    with pytest.warns(SkippedItemsWarning):
        docs = reader.load_data(given)
    assert [doc.metadata["file_name"] for doc in docs] == ["tone.wav"]
    failed = {f.item: f.error.reason for f in reader.last_report.failures}
    assert sorted(failed) == sorted(given[:-1])
    for url, scheme in URLS.items():
        assert failed[url] == f"unsupported URL scheme {scheme}"
    assert "file:// URLs are refused" in failed["file:///etc/passwd"]
    assert "not a file or folder" in failed["http://127.0.0.1:9/x.wav"]


def test_mmst_index_names_them(tmp_path: Path, monkeypatch, capsys, tiny_clip_dir, image_files) -> None:  # type: ignore[no-untyped-def]
    from llama_index_mm_st.cli import main

    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status = main(["index", "ftp://127.0.0.1:9/x.png", str(image_files["png"]), "--store", "store",
                       "--model", str(tiny_clip_dir)])
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1  # refused before any work, as a missing path is
    assert err.startswith("mmst: error: ftp://127.0.0.1:9/x.png: unsupported URL scheme ftp"), err
    assert str(tmp_path) not in err


def test_the_ingestion_listing_names_them_as_skipped(tmp_path: Path, image_files) -> None:  # type: ignore[no-untyped-def]
    from llama_index_mm_st.ingest.listing import list_inputs

    listing = list_inputs(["s3://bucket/x.png", str(image_files["png"])], ImageReader(cache_dir=tmp_path / "cache"))
    assert listing.skipped == [("s3://bucket/x.png", "unsupported URL scheme s3")]


def test_item_loaders_name_them_too() -> None:
    from llama_index_mm_st.media_refs import MediaRef

    with pytest.raises(ImageLoadError, match="unsupported URL scheme ftp"):
        ImageRef("ftp://127.0.0.1:9/x.png", "ftp://127.0.0.1:9/x.png").load()
    with pytest.raises(MediaLoadError, match="unsupported URL scheme s3"):
        MediaRef("audio", "s3://bucket/x.wav", "s3://bucket/x.wav").load_audio(16_000)
