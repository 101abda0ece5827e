"""One local Ray instance for the whole test run (start-up costs seconds), and a ~100-file corpus."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.fixtures.documents import write_pdf
from tests.fixtures.images import synthetic_image

IMAGES = 90
RARE_TEXT = "Warehouse notes: part QX-7731 quokka valve replaces the old pump seal."


@pytest.fixture(scope="session")
def ray_instance():  # type: ignore[no-untyped-def]
    """A small local Ray, shared by every Ray test and stopped at the end of the session."""
    import ray  # in the [test] extra: a missing Ray fails these tests rather than skipping them

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=200 * 1024 * 1024)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="session")
def ray_corpus(fixture_root: Path, broken_images: dict[str, Path]) -> Path:
    """90 images (JPEG and PNG, two folders), a caption sidecar, a two-page PDF, 5 text files and one
    truncated JPEG: about 100 files. Deterministic; tests that change files work on a copy."""
    folder = fixture_root / "ray_corpus"
    if folder.exists():
        return folder
    for number in range(IMAGES):
        sub = folder / ("jpeg" if number % 2 else "png")
        sub.mkdir(parents=True, exist_ok=True)
        suffix, fmt = (".jpg", "JPEG") if number % 2 else (".png", "PNG")
        synthetic_image(100 + number).save(sub / f"image_{number:03d}{suffix}", format=fmt)
    (folder / "png" / "image_000.png.txt").write_text("A caption: a striped square on a gradient.\n")
    shutil.copy(broken_images["truncated"], folder / "jpeg" / "broken.jpg")
    write_pdf(folder / "report.pdf", ["Quarterly revenue grew in the third quarter.", None])
    (folder / "notes.txt").write_text(RARE_TEXT + "\n")
    for number in range(4):
        (folder / f"guide_{number}.md").write_text(f"# Guide {number}\n\n" + "Circles are round. " * (20 + 40 * number))
    return folder
