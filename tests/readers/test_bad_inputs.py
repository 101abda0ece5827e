"""Bad inputs are skipped with a warning and listed in the report; strict mode raises naming the file."""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

import pytest

from llama_index_mm_st.errors import ImageLoadError, SkippedItemsWarning
from llama_index_mm_st.readers import CaptionFileError
from tests.fixtures.documents import write_pdf
from tests.fixtures.images import png_header_only


def _corrupt_png(path: Path, good_png: Path) -> Path:
    """Full length, valid header, garbage in the middle of the pixel data."""
    data = bytearray(good_png.read_bytes())
    start = data.index(b"IDAT") + 20
    data[start : start + 40] = bytes(40)
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def bad_files(tmp_path: Path, image_files: dict[str, Path], broken_images: dict[str, Path]) -> dict[str, Path]:
    """Every kind of bad input, each in its own file under tmp_path/bad."""
    folder = tmp_path / "bad"
    folder.mkdir()
    files = {name: folder / path.name for name, path in broken_images.items() if name != "missing"}
    for name, path in files.items():
        path.write_bytes(broken_images[name].read_bytes())
    files["corrupt"] = _corrupt_png(folder / "corrupt.png", image_files["png"])
    files["bomb"] = png_header_only(folder / "bomb.png", 10_000, 10_000)
    files["unsupported"] = folder / "vector.svg.png"
    files["unsupported"].write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    files["broken_pdf"] = folder / "broken.pdf"
    files["broken_pdf"].write_bytes(write_pdf(tmp_path / "whole.pdf", ["text"]).read_bytes()[:200])
    files["encrypted_pdf"] = write_pdf(folder / "locked.pdf", ["secret"], password="pw")
    return files


REASONS = {
    "truncated": "truncated",
    "zero_byte": "zero bytes",
    "not_image": "not a recognised image format",
    "corrupt": "corrupt",
    "bomb": "over the limit",
    "unsupported": "not a recognised image format",
    "broken_pdf": "not a valid PDF",
    "encrypted_pdf": "password",
}


def test_bad_files_are_skipped_reported_and_warned_while_good_ones_load(
    make_reader, bad_files: dict[str, Path], image_files: dict[str, Path], broken_images: dict[str, Path]
) -> None:
    reader = make_reader()
    sources = [image_files["jpeg"], *bad_files.values(), broken_images["missing"], image_files["png"]]
    with pytest.warns(SkippedItemsWarning) as caught:
        docs = reader.load_data(sources)
    assert [Path(d.image_path) for d in docs] == [image_files["jpeg"], image_files["png"]]
    report = reader.last_report
    assert report.sources == len(sources) and report.documents == 2
    by_item = {f.item: f for f in report.failures}
    assert set(by_item) == {str(p) for p in bad_files.values()} | {str(broken_images["missing"])}
    for name, path in bad_files.items():
        assert REASONS[name] in str(by_item[str(path)].error), name
        assert by_item[str(path)].position == sources.index(path)
    assert "not found" in str(by_item[str(broken_images["missing"])].error)
    assert caught[0].message.failures == report.failures


@pytest.mark.parametrize("name", sorted(REASONS))
def test_strict_mode_raises_naming_the_file(make_reader, bad_files: dict[str, Path], name: str) -> None:
    with pytest.raises(ImageLoadError) as raised:
        make_reader(on_error="raise").load_data(bad_files[name])
    assert raised.value.item == str(bad_files[name])
    assert str(bad_files[name]) in str(raised.value) and REASONS[name] in raised.value.reason


def test_pixel_limit_is_configurable(make_reader, image_files: dict[str, Path]) -> None:
    reader = make_reader(max_pixels=64 * 48 - 1)
    with pytest.warns(SkippedItemsWarning):
        assert reader.load_data(image_files["png"]) == []
    assert "over the limit of 3071" in str(reader.last_report.failures[0].error)
    assert len(make_reader(max_pixels=64 * 48).load_data(image_files["png"])) == 1


def test_header_mode_trades_truncation_checks_for_speed(make_reader, broken_images: dict[str, Path]) -> None:
    """Documented trade-off: a cut-off JPEG has an intact header, so only ``verify="decode"`` catches it."""
    assert len(make_reader(verify="header").load_data(broken_images["truncated"])) == 1
    with pytest.warns(SkippedItemsWarning):
        assert make_reader(verify="decode").load_data(broken_images["truncated"]) == []


def test_a_malformed_captions_file_is_reported_and_the_image_still_loads(
    make_reader, tmp_path: Path, image_files: dict[str, Path]
) -> None:
    (tmp_path / "photo.png").write_bytes(image_files["png"].read_bytes())
    (tmp_path / "captions.json").write_text("{not json")
    reader = make_reader()
    with pytest.warns(SkippedItemsWarning):
        (doc,) = reader.load_data(tmp_path)
    assert doc.text == ""
    (failure,) = reader.last_report.failures
    assert isinstance(failure.error, CaptionFileError) and failure.item.endswith("captions.json")


def test_a_caption_sidecar_that_is_not_text_is_named_and_the_image_loads_without_it(
    make_reader, tmp_path: Path, image_files: dict[str, Path]
) -> None:
    """Not UTF-8 (and no byte-order mark): named in the report with the bad byte, never indexed as
    replacement characters; a UTF-16 caption with its BOM is read."""
    (tmp_path / "photo.png").write_bytes(image_files["png"].read_bytes())
    (tmp_path / "photo.png.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (tmp_path / "other.png").write_bytes(image_files["png"].read_bytes())
    (tmp_path / "other.png.txt").write_bytes("a red circle".encode("utf-16"))  # Python writes the BOM
    reader = make_reader()
    with pytest.warns(SkippedItemsWarning):
        docs = reader.load_data(tmp_path)
    by_name = {doc.metadata["file_name"]: doc for doc in docs}
    assert by_name["photo.png"].text == "" and by_name["other.png"].text == "a red circle"
    (failure,) = reader.last_report.failures
    assert isinstance(failure.error, CaptionFileError) and failure.item.endswith("photo.png.txt")
    assert "not UTF-8 text (byte 0xe9 at offset 3)" in str(failure.error) and "\ufffd" not in str(failure.error)


def _read_as(uid: int | None, folder: Path, cache: Path) -> dict[str, list]:
    """Read ``folder`` in a forked child that first switches to ``uid`` (the interpreter under /root is not
    reachable for another user, so the child is forked, not started fresh); the result comes back as JSON."""
    from PIL import Image

    from llama_index_mm_st.readers import ImageReader

    Image.init()  # load every format plugin now: the child may not be able to import them
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            os.close(read_end)
            if uid is not None:
                os.setuid(uid)
            warnings.simplefilter("ignore")
            reader = ImageReader(cache_dir=cache, num_workers=1)
            docs = reader.load_data(folder)
            out = {
                "docs": [d.metadata["file_name"] for d in docs],
                "failures": [[f.item, str(f.error)] for f in reader.last_report.failures],
            }
            os.write(write_end, json.dumps(out).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        payload = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child read failed"
    return json.loads(payload)


def test_unreadable_permissions_are_reported(image_files: dict[str, Path]) -> None:
    """Root reads everything, so as root the read runs in a forked child that drops to user ``nobody``."""
    folder = Path(tempfile.mkdtemp(prefix="mmst-perm-"))
    closed = folder / "closed"
    try:
        folder.chmod(0o755)
        for name in ("ok.png", "locked.png"):
            (folder / name).write_bytes(image_files["png"].read_bytes())
            (folder / name).chmod(0o644)
        (folder / "locked.png").chmod(0o000)
        closed.mkdir()
        (closed / "inside.png").write_bytes(image_files["png"].read_bytes())
        closed.chmod(0o000)
        result = _read_as(65534 if os.geteuid() == 0 else None, folder, folder / ".cache")
        assert result["docs"] == ["ok.png"]
        failures = dict(result["failures"])
        assert set(failures) == {str(closed), str(folder / "locked.png")}
        assert "permission denied" in failures[str(folder / "locked.png")]
        assert "cannot list folder" in failures[str(closed)]
    finally:
        closed.chmod(0o755)
        (folder / "locked.png").chmod(0o644)
        for path in sorted(folder.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        folder.rmdir()


def test_a_caller_owned_report_collects_several_reads(make_reader, image_files, broken_images) -> None:
    from llama_index_mm_st.readers import ReadReport

    report = ReadReport()
    reader = make_reader()
    reader.load_data(image_files["png"], report=report)
    with pytest.warns(SkippedItemsWarning):
        reader.load_data([broken_images["zero_byte"], image_files["gif"]], report=report)
    assert (report.sources, report.documents, len(report.failures)) == (3, 2, 1)
    assert reader.last_report is report and not report.ok
    assert report.summary() == "3 source(s), 2 document(s), 1 failed, 0 ignored"


def test_a_lazy_read_stopped_early_still_reports_what_it_saw(make_reader, image_files, broken_images) -> None:
    reader = make_reader(num_workers=1)
    documents = reader.lazy_load_data([broken_images["not_image"], image_files["png"], image_files["gif"]])
    with pytest.warns(SkippedItemsWarning, match="not_an_image.jpg"):
        first = next(documents)
        documents.close()
    assert first.metadata["file_name"] == image_files["png"].name
    assert (reader.last_report.sources, reader.last_report.documents) == (2, 1)


def test_randomly_damaged_files_never_escape_as_unexpected_errors(make_reader, tmp_path: Path, image_files) -> None:
    """Seeded damage (flipped bytes, cuts, zeroed runs) to every format: each input ends as documents or
    as a reported failure, and no low-level plugin error stops the batch."""
    import random

    from tests.readers.conftest import write_animation

    originals = {name: path.read_bytes() for name, path in image_files.items()}
    originals["animation"] = write_animation(tmp_path / "anim.gif").read_bytes()
    originals["pdf"] = write_pdf(tmp_path / "doc.pdf", ["text", None]).read_bytes()
    rng = random.Random(1234)
    readers = [make_reader(num_workers=1, pdf_dpi=20), make_reader(num_workers=1, pdf_dpi=20, frames="all")]
    damaged_count = 0
    for name, data in originals.items():
        for _ in range(30):
            damaged = bytearray(data)
            kind = rng.choice(["flip", "cut", "zero"])
            if kind == "flip":
                for _ in range(rng.randint(1, 10)):
                    damaged[rng.randrange(len(damaged))] = rng.randrange(256)
            elif kind == "cut":
                damaged = damaged[: rng.randrange(1, len(damaged))]
            else:
                start = rng.randrange(len(damaged))
                damaged[start : start + 64] = bytes(len(damaged[start : start + 64]))
            for reader in readers:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", SkippedItemsWarning)
                    docs = reader.load_data(bytes(damaged))
                assert docs or reader.last_report.failures, name
                damaged_count += not docs
    assert damaged_count > 0, "the damage must actually break some files, or this test proves nothing"
