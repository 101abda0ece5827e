"""Files for the reader tests, generated here: EXIF photos, animations, HEIF/AVIF, PDFs (with fpdf2)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, Sequence

import pytest
from PIL import Image

from llama_index_mm_st.readers import ImageReader
from tests.fixtures.images import synthetic_image

ORIENTATION, MAKE, MODEL, EXIF_IFD, DATETIME_ORIGINAL = 0x0112, 0x010F, 0x0110, 0x8769, 0x9003


def write_exif_jpeg(
    path: Path,
    orientation: int = 6,
    taken: str = "2023:05:01 12:34:56",
    make: str = "Canon",
    model: str = "Canon EOS 5D",
) -> Path:
    """A 64x48 JPEG stored sideways: orientation 6 means it shows upright as 48x64."""
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[MAKE] = make
    exif[MODEL] = model
    exif.get_ifd(EXIF_IFD)[DATETIME_ORIGINAL] = taken
    synthetic_image(11).save(path, format="JPEG", exif=exif)
    return path


def write_animation(
    path: Path, colours: Sequence[tuple[int, int, int]] = ((255, 0, 0), (0, 255, 0), (0, 0, 255))
) -> Path:
    frames = [Image.new("RGB", (40, 30), colour) for colour in colours]
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "render-cache"


@pytest.fixture
def make_reader(cache_dir: Path) -> Callable[..., ImageReader]:
    """An ImageReader whose cache lives in the test's tmp dir (never the user's cache)."""

    def make(**kwargs: object) -> ImageReader:
        kwargs.setdefault("cache_dir", cache_dir)
        return ImageReader(**kwargs)

    return make


@pytest.fixture
def good_folder(tmp_path: Path, image_files: dict[str, Path]) -> Path:
    """A folder with one file of each base format, copied from the session fixtures."""
    folder = tmp_path / "good"
    folder.mkdir()
    for path in image_files.values():
        shutil.copy(path, folder / path.name)
    return folder
