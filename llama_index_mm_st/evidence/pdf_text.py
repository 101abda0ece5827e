"""Regions of a PDF page from its text layer: the lines that hold the query's words.

PDFium (pypdfium2) gives each character of a page's text layer and the rectangles of any run of
characters, one per line segment (``FPDFText_CountRects``). The page's text is cut into lines at
PDFium's line breaks; a line holding query terms (``words.QueryTerms``, the store's BM25 rule) becomes a
region the size of that line (the union of its rectangles), scored by the share of the query's terms
it holds. No model and no OCR: a scanned page without a text layer gives no regions here.

Boxes are normalised to the page as it is rendered (``readers.pdf``): the crop box, with the page's
rotation applied, y down.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

from .boxes import Box
from .words import QueryTerms

PdfSource = Union[str, Path, bytes]


@dataclass(frozen=True)
class TextLine:
    """One line of a page's text layer: its characters ``[start, end)`` of the page text and its box."""

    start: int
    end: int
    text: str
    box: Box


def page_lines(source: PdfSource, page_number: int) -> list[TextLine]:
    """The text lines of a page (1-based ``page_number``), boxes normalised to the rendered page.
    Raises ``ValueError`` for a page the PDF does not have."""
    from ..readers.pdf import _PDFIUM_LOCK, _pdfium

    pdfium = _pdfium()
    with _PDFIUM_LOCK:
        document = pdfium.PdfDocument(source if isinstance(source, bytes) else str(source))
        try:
            if not 1 <= page_number <= len(document):
                raise ValueError(f"the PDF has {len(document)} pages, not a page {page_number}")
            page = document[page_number - 1]
            try:
                textpage = page.get_textpage()
                try:
                    return _lines(textpage, _Frame(page))
                finally:
                    textpage.close()
            finally:
                page.close()
        finally:
            document.close()


class _Frame:
    """PDF user space (points, y up, from the media box's origin) to 0..1 of the rendered page."""

    def __init__(self, page) -> None:  # type: ignore[no-untyped-def]
        self.left, self.bottom, self.right, self.top = page.get_bbox()  # media box within crop box, inherited ones included
        self.rotation = page.get_rotation() % 360

    def box(self, left: float, bottom: float, right: float, top: float) -> Box:
        width, height = (self.right - self.left) or 1.0, (self.top - self.bottom) or 1.0
        x0, x1 = (left - self.left) / width, (right - self.left) / width
        y0, y1 = (self.top - top) / height, (self.top - bottom) / height  # y down
        if self.rotation == 90:  # the page turned clockwise: its top edge is now on the right
            x0, y0, x1, y1 = 1 - y1, x0, 1 - y0, x1
        elif self.rotation == 180:
            x0, y0, x1, y1 = 1 - x1, 1 - y1, 1 - x0, 1 - y0
        elif self.rotation == 270:
            x0, y0, x1, y1 = y0, 1 - x1, y1, 1 - x0
        return (min(max(x0, 0.0), 1.0), min(max(y0, 0.0), 1.0), min(max(x1, 0.0), 1.0), min(max(y1, 0.0), 1.0))


def _page_text(textpage) -> str:  # type: ignore[no-untyped-def]
    """The page text with one character per PDFium character index (a character outside the BMP
    counts twice in PDFium; such pages are read one character at a time)."""
    count = textpage.count_chars()
    text = textpage.get_text_range()
    if len(text) == count:
        return text
    return "".join((textpage.get_text_range(index, 1) or " ")[:1] for index in range(count))


def _lines(textpage, frame: _Frame) -> list[TextLine]:  # type: ignore[no-untyped-def]
    text = _page_text(textpage)
    lines: list[TextLine] = []
    start = 0
    for end in [i for i, char in enumerate(text) if char == "\n"] + [len(text)]:
        first, last = start, end
        while first < last and text[first].isspace():
            first += 1
        while last > first and text[last - 1].isspace():
            last -= 1
        if last > first:
            rects = [textpage.get_rect(i) for i in range(textpage.count_rects(first, last - first))]
            if rects:
                left = min(r[0] for r in rects)
                bottom = min(r[1] for r in rects)
                right = max(r[2] for r in rects)
                top = max(r[3] for r in rects)
                lines.append(TextLine(first, last, text[first:last], frame.box(left, bottom, right, top)))
        start = end + 1
    return lines


def line_regions(lines: Sequence[TextLine], terms: QueryTerms, keep: int = 3) -> list[tuple[Box, float]]:
    """The lines holding query terms as (box, share of the query's terms), best first (equal shares:
    in reading order), at most ``keep``."""
    if not terms:
        return []
    scored = [(line.box, terms.share(line.text), position) for position, line in enumerate(lines)]
    found = sorted((item for item in scored if item[1] > 0), key=lambda item: (-item[1], item[2]))
    return [(box, score) for box, score, _ in found[:keep]]


def pdf_source(metadata: dict) -> Optional[PdfSource]:
    """The PDF a page node came from: its local ``file_path`` (None for anything else, and for a PDF
    read from a URL: its text layer is not fetched again)."""
    if metadata.get("mime_type") != "application/pdf":
        return None
    path = metadata.get("file_path")
    if isinstance(path, str) and Path(path).is_file():
        return path
    return None
