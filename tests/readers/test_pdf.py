"""PDF pages: one image document per page, page text as document text, a content-keyed render cache."""

from __future__ import annotations

import hashlib
import math
import sys
from pathlib import Path

import pytest
from PIL import Image

from llama_index_mm_st.errors import MissingDependencyError, SkippedItemsWarning
from tests.fixtures.documents import write_pdf

A4_POINTS = (595.28, 841.89)
PAGES = ["Quarterly report for ACME-4711", None, "Appendix: error code E1234 explained"]


@pytest.fixture
def report_pdf(tmp_path: Path) -> Path:
    return write_pdf(tmp_path / "report.pdf", PAGES)


def _count_renders(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    import pypdfium2

    calls: list[int] = []
    original = pypdfium2.PdfPage.render

    def counting(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pypdfium2.PdfPage, "render", counting)
    return calls


def test_one_document_per_page_with_text_page_numbers_and_rendered_png(
    make_reader, report_pdf: Path, cache_dir: Path
) -> None:
    docs = make_reader().load_data(report_pdf)
    assert [d.metadata["page"] for d in docs] == [1, 2, 3]
    assert {d.metadata["page_count"] for d in docs} == {3}
    assert docs[0].text == PAGES[0] and docs[2].text == PAGES[2]
    assert docs[1].text == "", "a scanned page with no text still yields an image document"
    sha = hashlib.sha256(report_pdf.read_bytes()).hexdigest()
    for doc in docs:
        assert doc.metadata["sha256"] == sha and doc.metadata["file_path"] == str(report_pdf)
        assert doc.metadata["mime_type"] == "application/pdf" and doc.image_mimetype == "image/png"
        png = Path(doc.image_path)
        assert png.is_relative_to(cache_dir) and sha in png.parts
        with Image.open(png) as image:
            assert image.format == "PNG"
            assert image.size == (doc.metadata["width"], doc.metadata["height"])
            assert image.size == (math.ceil(A4_POINTS[0] * 150 / 72), math.ceil(A4_POINTS[1] * 150 / 72))
    with Image.open(docs[1].image_path) as scanned:
        assert scanned.convert("L").getpixel((300, 300)) < 128, "the filled shape was rendered"
    assert len({d.id_ for d in docs}) == 3


def test_rendered_pages_are_reused_from_the_cache(
    make_reader, report_pdf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_renders(monkeypatch)
    first = make_reader().load_data(report_pdf)
    assert len(calls) == 3
    stamps = [Path(d.image_path).stat().st_mtime_ns for d in first]
    second = make_reader().load_data(report_pdf)
    assert len(calls) == 3, "an unchanged PDF is not rendered again"
    assert [Path(d.image_path).stat().st_mtime_ns for d in second] == stamps
    assert [(d.id_, d.text, d.metadata) for d in second] == [(d.id_, d.text, d.metadata) for d in first]


def test_dpi_is_configurable_and_part_of_the_cache_key(
    make_reader, report_pdf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_renders(monkeypatch)
    low = make_reader(pdf_dpi=72).load_data(report_pdf)
    high = make_reader(pdf_dpi=100).load_data(report_pdf)
    assert len(calls) == 6
    assert (low[0].metadata["width"], low[0].metadata["height"]) == (596, 842)
    assert high[0].metadata["width"] == math.ceil(A4_POINTS[0] * 100 / 72)
    assert low[0].image_path != high[0].image_path


def test_a_changed_pdf_gets_new_renders_but_keeps_its_ids(make_reader, tmp_path: Path) -> None:
    path = write_pdf(tmp_path / "doc.pdf", ["version one"])
    before = make_reader().load_data(path)
    write_pdf(path, ["version two"])
    after = make_reader().load_data(path)
    assert before[0].id_ == after[0].id_
    assert before[0].metadata["sha256"] != after[0].metadata["sha256"]
    assert before[0].image_path != after[0].image_path and after[0].text == "version two"


def test_pdf_bytes_are_read_too(make_reader, report_pdf: Path) -> None:
    docs = make_reader().load_data(report_pdf.read_bytes())
    assert [d.text for d in docs] == [p or "" for p in PAGES]


def test_page_over_the_pixel_limit_is_reported_alone(make_reader, report_pdf: Path) -> None:
    reader = make_reader(max_pixels=1_500_000, pdf_dpi=150)  # A4 at 150 dpi is about 2.2 Mpx
    with pytest.warns(UserWarning):
        assert reader.load_data(report_pdf) == []
    assert [f.item for f in reader.last_report.failures] == [f"{report_pdf} page {n}" for n in (1, 2, 3)]
    assert len(make_reader(max_pixels=1_500_000, pdf_dpi=100).load_data(report_pdf)) == 3


def test_missing_pypdfium2_names_the_extra(make_reader, report_pdf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pypdfium2", None)
    with pytest.raises(MissingDependencyError, match=r"llama-index-mm-st\[pdf\]"):
        make_reader().load_data(report_pdf)


@pytest.mark.parametrize("before", ["garbage", "encrypted", "none"])
def test_a_pdf_failure_reason_does_not_depend_on_the_pdf_read_before(make_reader, tmp_path: Path, before: str) -> None:
    """PDFium keeps its last error across documents; a reason is only given when the file bears it out."""
    import random

    from llama_index_mm_st.readers import ReadReport
    from tests.fixtures.bad_inputs import _minimal_pdf_without_pages

    first = tmp_path / "first.pdf"
    if before == "garbage":
        first.write_bytes(b"%PDF-1.7\n" + random.Random(0).randbytes(4000))
    elif before == "encrypted":
        write_pdf(first, ["secret"], password="pw")
    no_pages = tmp_path / "no_pages.pdf"
    no_pages.write_bytes(_minimal_pdf_without_pages())
    report = ReadReport()
    sources = [str(first), str(no_pages)] if before != "none" else [str(no_pages)]
    with pytest.warns(SkippedItemsWarning):
        make_reader().load_data(sources, report=report)
    reasons = {Path(f.item).name: f.error.reason for f in report.failures}
    assert reasons["no_pages.pdf"].startswith("PDFium cannot open it (no pages")
