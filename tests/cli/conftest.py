"""A small mixed corpus on disk for the CLI: images, a PDF, text files and one corrupt image."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.fixtures.documents import write_pdf

RARE_TEXT = "Warehouse notes: part QX-7731 quokka valve replaces the old pump seal."


def make_corpus(folder: Path, image_files: dict[str, Path], broken_images: dict[str, Path]) -> Path:
    """Three photos and a corrupt one, a two-page PDF, a text file, a Markdown file and ignored types."""
    (folder / "photos").mkdir(parents=True)
    for fmt in ("png", "jpeg", "bmp"):
        shutil.copy(image_files[fmt], folder / "photos" / image_files[fmt].name)
    shutil.copy(broken_images["truncated"], folder / "photos" / "broken.jpg")
    write_pdf(folder / "report.pdf", ["Quarterly revenue grew in the third quarter.", None])
    (folder / "notes.txt").write_text(RARE_TEXT + "\n")
    (folder / "guide.md").write_text("# Guide\n\nCircles are round and squares have four sides.\n")
    (folder / "letter.docx").write_bytes(b"PK\x03\x04 not indexed")
    (folder / "photos" / "old.docx").write_bytes(b"PK\x03\x04 not indexed")
    (folder / "settings.json").write_text("{}")
    return folder


@pytest.fixture()
def corpus(tmp_path: Path, image_files: dict[str, Path], broken_images: dict[str, Path]) -> Path:
    return make_corpus(tmp_path / "corpus", image_files, broken_images)


@pytest.fixture()
def run_cli(capsys):  # type: ignore[no-untyped-def]
    """Run ``mmst`` in-process; returns (exit code, stdout, stderr)."""
    from llama_index_mm_st.cli import main

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
