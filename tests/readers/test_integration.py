"""SimpleDirectoryReader as the host, async loading, and memory that stays flat on a lazy read."""

from __future__ import annotations

import shutil
import tracemalloc
from pathlib import Path

import pytest
from llama_index.core import SimpleDirectoryReader
from llama_index.core.schema import Document, ImageDocument
from PIL import Image

from llama_index_mm_st.errors import ImageLoadError, SkippedItemsWarning
from tests.fixtures.images import synthetic_image
from tests.fixtures.documents import write_pdf


@pytest.fixture
def mixed_folder(tmp_path: Path, image_files: dict[str, Path]) -> Path:
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ("jpeg", "png", "webp"):
        shutil.copy(image_files[name], folder / image_files[name].name)
    write_pdf(folder / "slides.pdf", ["first slide", "second slide"])
    (folder / "readme.txt").write_text("plain text stays with LlamaIndex's own reading")
    return folder


def test_works_as_file_extractor_in_simple_directory_reader(make_reader, mixed_folder: Path) -> None:
    reader = make_reader(pdf_dpi=50)
    docs = SimpleDirectoryReader(str(mixed_folder), file_extractor=reader.file_extractor()).load_data()
    images = [d for d in docs if isinstance(d, ImageDocument)]
    texts = [d for d in docs if not isinstance(d, ImageDocument)]
    assert sorted(d.metadata["file_name"] for d in images) == sorted(
        ["sample_jpeg.jpg", "sample_png.png", "sample_webp.webp", "slides.pdf", "slides.pdf"]
    )
    assert [d.text for d in images if d.metadata.get("page")] == ["first slide", "second slide"]
    assert len(texts) == 1 and isinstance(texts[0], Document)
    jpeg = next(d for d in images if d.metadata["file_name"] == "sample_jpeg.jpg")
    assert jpeg.metadata["width"] == 64 and "last_modified_date" in jpeg.metadata, "both readers' metadata are kept"
    again = SimpleDirectoryReader(str(mixed_folder), file_extractor=reader.file_extractor()).load_data()
    assert [d.id_ for d in again if isinstance(d, ImageDocument)] == [d.id_ for d in images]


def test_bad_file_under_simple_directory_reader_is_skipped_or_raised(
    make_reader, mixed_folder: Path, broken_images
) -> None:
    shutil.copy(broken_images["truncated"], mixed_folder / "truncated.jpg")
    with pytest.warns(SkippedItemsWarning, match="truncated.jpg"):
        docs = SimpleDirectoryReader(
            str(mixed_folder), file_extractor=make_reader(pdf_dpi=50).file_extractor()
        ).load_data()
    assert "truncated.jpg" not in {d.metadata["file_name"] for d in docs} and len(docs) == 6
    strict = make_reader(on_error="raise", pdf_dpi=50)
    with pytest.raises(Exception) as raised:
        SimpleDirectoryReader(
            str(mixed_folder), file_extractor=strict.file_extractor(), raise_on_error=True
        ).load_data()
    assert isinstance(raised.value.__cause__, ImageLoadError) and "truncated.jpg" in str(raised.value.__cause__)


async def test_async_loading_matches_sync(make_reader, mixed_folder: Path) -> None:
    reader = make_reader(pdf_dpi=50)
    sync_docs = reader.load_data(mixed_folder)
    async_docs = await reader.aload_data(mixed_folder)
    assert [d.id_ for d in async_docs] == [d.id_ for d in sync_docs] and len(sync_docs) == 5
    via_sdr = await SimpleDirectoryReader(str(mixed_folder), file_extractor=reader.file_extractor()).aload_data()
    assert len([d for d in via_sdr if isinstance(d, ImageDocument)]) == 5


def _live_pil_blocks() -> int:
    stats = Image.core.get_stats()
    return stats["allocated_blocks"] - stats["freed_blocks"]


def _lazy_peak(reader, folder: Path) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    """(Python-heap peak while consuming lazily, most live Pillow pixel blocks at any step, documents seen)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base_blocks, most_blocks, count = _live_pil_blocks(), 0, 0
    for _ in reader.lazy_load_data(folder):
        count += 1
        most_blocks = max(most_blocks, _live_pil_blocks() - base_blocks)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, most_blocks, count


def test_lazy_read_memory_does_not_grow_with_the_number_of_images(make_reader, tmp_path: Path) -> None:
    small, large = tmp_path / "small", tmp_path / "large"
    for folder, count in ((small, 60), (large, 300)):
        folder.mkdir()
        for i in range(count):
            synthetic_image(i % 7, size=(320, 240)).save(folder / f"img_{i:04d}.png")
    reader = make_reader(verify="decode", num_workers=2)
    _lazy_peak(reader, small)  # warm-up: first-use imports and caches are not what is measured
    peak_small, blocks_small, n_small = _lazy_peak(reader, small)
    peak_large, blocks_large, n_large = _lazy_peak(reader, large)
    assert (n_small, n_large) == (60, 300)
    # Two workers hold a hash buffer each plus a window of a few results, whatever the count.
    assert peak_large < 768 * 1024 and peak_large < peak_small + 256 * 1024, (peak_small, peak_large)
    assert blocks_large <= 16, "decoded pixels are dropped as soon as an image is verified"

    # The same measurement does see growth when documents are kept, so the bound above means something.
    tracemalloc.start()
    kept = reader.load_data(large)
    kept_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(kept) == 300 and kept_peak > 2 * peak_large, (kept_peak, peak_large)


def test_simple_directory_reader_on_another_file_system(
    make_reader, image_files: dict[str, Path], cache_dir: Path
) -> None:
    """With a non-local fsspec file system the bytes come through it and the document points at a cached copy."""
    from fsspec.implementations.memory import MemoryFileSystem

    fs = MemoryFileSystem()
    data = image_files["png"].read_bytes()
    fs.pipe("/remote/photos/cat.png", data)
    try:
        docs = SimpleDirectoryReader(
            input_dir="/remote/photos", fs=fs, file_extractor=make_reader().file_extractor()
        ).load_data()
    finally:
        fs.rm("/remote", recursive=True)
    (doc,) = docs
    assert doc.metadata["file_path"] == "/remote/photos/cat.png" and doc.metadata["width"] == 64
    assert Path(doc.image_path).is_relative_to(cache_dir) and Path(doc.image_path).read_bytes() == data
