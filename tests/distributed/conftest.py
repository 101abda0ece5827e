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


@pytest.fixture(scope="session")
def mixed_corpus(fixture_root: Path, image_files: dict[str, Path], broken_images: dict[str, Path],
                 media_files: dict[str, Path], broken_media: dict[str, Path]) -> Path:
    """A small mixed folder: images (one captioned), a two-page PDF, text (one long enough for two
    chunks), a WAV with a subtitle sidecar, an MP4, a file of an ignored type, and a corrupt file of
    each kind (image, PDF, audio, video). Deterministic; tests that change files work on a copy."""
    folder = fixture_root / "mixed_corpus"
    if folder.exists():
        return folder
    (folder / "pictures").mkdir(parents=True)
    for kind in ("jpeg", "png", "webp"):
        shutil.copy(image_files[kind], folder / "pictures" / image_files[kind].name)
    (folder / "pictures" / (image_files["png"].name + ".txt")).write_text("A caption: a striped square.\n")
    shutil.copy(broken_images["truncated"], folder / "pictures" / "broken.jpg")
    write_pdf(folder / "report.pdf", ["Quarterly revenue grew in the third quarter.", None])
    (folder / "broken.pdf").write_bytes((folder / "report.pdf").read_bytes()[:300])
    (folder / "notes.txt").write_text(RARE_TEXT + "\n")
    (folder / "guide.md").write_text("# Guide\n\n" + "Circles are round and squares are not. " * 120)
    (folder / "media").mkdir()
    shutil.copy(media_files["tone"], folder / "media" / "tone.wav")
    (folder / "media" / "tone.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\na steady humming tone\n")
    shutil.copy(broken_media["audio_garbage"], folder / "media" / "broken.wav")
    shutil.copy(media_files["clip_mp4"], folder / "media" / "clip.mp4")
    shutil.copy(broken_media["video_truncated"], folder / "media" / "broken.mp4")
    (folder / "draft.docx").write_bytes(b"not indexed")
    return folder
