"""Image formats and the metadata read without decoding pixels."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import pytest
from PIL import Image

from llama_index_mm_st.readers import supported_extensions
from tests.fixtures.images import synthetic_image
from tests.readers.conftest import write_animation, write_exif_jpeg

MIMES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
}


def test_every_base_format_becomes_a_document_pointing_at_its_file(make_reader, image_files: dict[str, Path]) -> None:
    reader = make_reader()
    for name, path in image_files.items():
        (doc,) = reader.load_data(path)
        assert Path(doc.image_path) == path
        assert doc.image is None, "documents refer to files; they do not carry pixels"
        meta = doc.metadata
        assert meta["mime_type"] == MIMES[name] == doc.image_mimetype
        assert (meta["width"], meta["height"]) == (64, 48)
        assert isinstance(meta["width"], int) and isinstance(meta["height"], int)
        assert meta["file_size"] == path.stat().st_size
        assert meta["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert meta["file_name"] == path.name and meta["file_path"] == str(path)
        assert doc.text == ""
    assert reader.last_report.ok


def test_exif_orientation_gives_upright_size_and_capture_metadata(make_reader, tmp_path: Path) -> None:
    path = write_exif_jpeg(tmp_path / "sideways.jpg", orientation=6)
    (doc,) = make_reader().load_data(path)
    assert (doc.metadata["width"], doc.metadata["height"]) == (48, 64)
    assert doc.metadata["captured_at"] == "2023-05-01T12:34:56"
    assert doc.metadata["camera"] == "Canon EOS 5D"


def test_photo_without_exif_has_no_capture_keys(make_reader, image_files: dict[str, Path]) -> None:
    (doc,) = make_reader().load_data(image_files["jpeg"])
    assert "captured_at" not in doc.metadata and "camera" not in doc.metadata


def test_gif_gives_first_frame_by_default_and_every_frame_on_request(
    make_reader, tmp_path: Path, cache_dir: Path
) -> None:
    path = write_animation(tmp_path / "anim.gif")
    (doc,) = make_reader().load_data(path)
    assert Path(doc.image_path) == path and doc.metadata["frame_count"] == 3

    frames = make_reader(frames="all").load_data(path)
    assert [d.metadata["frame"] for d in frames] == [1, 2, 3]
    assert len({d.id_ for d in frames}) == 3
    colours = []
    for frame in frames:
        assert Path(frame.image_path).is_relative_to(cache_dir)
        with Image.open(frame.image_path) as image:
            colours.append(image.convert("RGB").getpixel((5, 5)))
    assert colours == [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


@pytest.mark.parametrize("fmt, ext", [("HEIF", ".heic"), ("AVIF", ".avif")])
def test_heif_and_avif_when_the_plugin_is_installed(make_reader, tmp_path: Path, fmt: str, ext: str) -> None:
    if ext not in supported_extensions():
        pytest.skip(f"{fmt} support is not installed here (extra 'heif')")
    path = tmp_path / f"photo{ext}"
    synthetic_image(3).save(path, format=fmt)
    (doc,) = make_reader().load_data(tmp_path)
    assert doc.metadata["mime_type"] == f"image/{fmt.lower()}"
    assert (doc.metadata["width"], doc.metadata["height"]) == (64, 48)


def test_raw_bytes_are_cached_and_keyed_by_content(make_reader, image_files: dict[str, Path], cache_dir: Path) -> None:
    data = image_files["png"].read_bytes()
    reader = make_reader()
    (doc,) = reader.load_data(data)
    assert Path(doc.image_path).read_bytes() == data
    assert Path(doc.image_path).is_relative_to(cache_dir)
    assert doc.metadata["source_id"] == "sha256:" + hashlib.sha256(data).hexdigest()
    (again,) = reader.load_data(bytearray(data))
    assert again.id_ == doc.id_


def test_bytes_label_names_their_position_when_bad(make_reader, image_files: dict[str, Path]) -> None:
    reader = make_reader()
    with pytest.warns(UserWarning):
        docs = reader.load_data([image_files["png"].read_bytes(), b"not an image"])
    assert len(docs) == 1
    (failure,) = reader.last_report.failures
    assert failure.item == "bytes at position 1"


def test_metadata_stays_out_of_embedded_text_but_caption_goes_in(
    make_reader, tmp_path: Path, image_files: dict[str, Path]
) -> None:
    from llama_index.core.schema import MetadataMode

    path = tmp_path / "cat.png"
    path.write_bytes(image_files["png"].read_bytes())
    (tmp_path / "cat.png.txt").write_text("a grey cat on a sofa\n")
    (doc,) = make_reader().load_data(path)
    assert doc.get_content(metadata_mode=MetadataMode.EMBED) == "a grey cat on a sofa"


def test_header_mode_reads_no_pixels(
    make_reader, image_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    loads = []
    original = Image.Image.load

    def counting_load(self: Image.Image):  # type: ignore[no-untyped-def]
        loads.append(self.format)
        return original(self)

    monkeypatch.setattr(Image.Image, "load", counting_load)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        docs = make_reader(verify="header").load_data(image_files["png"])
    assert len(docs) == 1 and loads == []
