"""PDF pages as images plus their text, through pypdfium2 (PDFium, the engine in Chrome).

Each page is rendered once at the requested DPI into the render cache; later reads of the same PDF
(same bytes, page and DPI) only extract the text. PDFium is not thread-safe, so every call into it holds
one process-wide lock. A page that fails (too large to render, a broken content stream) is reported on
its own and the other pages still load.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from PIL import Image

from ..errors import ImageLoadError, MissingDependencyError
from .cache import RenderCache

_PDFIUM_LOCK = threading.Lock()
POINTS_PER_INCH = 72.0
PAGE_NUMBER_DIGITS = 5
"""Page numbers in cache file names are zero-padded so the cache lists in order."""
QUARTER_TURN_ROTATIONS = (90, 270)


@dataclass(frozen=True)
class RenderedPage:
    """One page: 1-based ``page``, the PDF's ``page_count``, its text, and the cached PNG."""

    page: int
    page_count: int
    text: str
    image_path: Path
    width: int
    height: int


PageResult = Union[RenderedPage, ImageLoadError]


def _pdfium():  # type: ignore[no-untyped-def]
    try:
        import pypdfium2
    except ImportError:
        raise MissingDependencyError("pypdfium2", "pdf") from None
    return pypdfium2


def _open_reason(err_code: int | None) -> str:
    """PDFium's load error code in words."""
    raw = _pdfium().raw
    reasons = {
        raw.FPDF_ERR_PASSWORD: "encrypted PDF: a password is required",
        raw.FPDF_ERR_SECURITY: "PDF uses an unsupported security handler",
        raw.FPDF_ERR_FORMAT: "not a valid PDF (corrupt or truncated)",
        raw.FPDF_ERR_FILE: "the file cannot be opened",
        raw.FPDF_ERR_PAGE: "page not found or content error",
    }
    return reasons.get(err_code, "PDFium cannot open it (no pages, or a damaged document structure)")


ENCRYPT_SCAN_BYTES = 1 << 16
"""How much of each end of a PDF is searched for ``/Encrypt`` (the trailer, or a linearised file's first one)."""


def _ends(source: Union[Path, bytes]) -> tuple[bytes, bytes] | None:
    """The first and last ``ENCRYPT_SCAN_BYTES`` of the PDF; None when the file can't be read again."""
    if isinstance(source, bytes):
        return source[:ENCRYPT_SCAN_BYTES], source[-ENCRYPT_SCAN_BYTES:]
    try:
        with open(source, "rb") as handle:
            head = handle.read(ENCRYPT_SCAN_BYTES)
            handle.seek(max(0, handle.seek(0, 2) - ENCRYPT_SCAN_BYTES))
            return head, handle.read(ENCRYPT_SCAN_BYTES)
    except OSError:
        return None


def _checked_code(code: int | None, source: Union[Path, bytes]) -> int | None:
    """PDFium's load error code, kept only when the file bears it out.

    PDFium keeps its last error across documents and some failures (an empty page tree, for one) do not
    set it, so a file read after an encrypted or a truncated one would inherit that reason. "Encrypted"
    needs an ``/Encrypt`` dictionary near either end; "corrupt or truncated" needs a file that does not
    end with ``%%EOF``. Otherwise the reason is the general one."""
    pdfium = _pdfium()
    ends = _ends(source)
    if ends is None:
        return code  # cannot check: keep PDFium's word
    head, tail = ends
    if code == pdfium.raw.FPDF_ERR_PASSWORD and b"/Encrypt" not in head and b"/Encrypt" not in tail:
        return None
    if code == pdfium.raw.FPDF_ERR_FORMAT and tail.rstrip().endswith(b"%%EOF"):
        return None
    return code


def read_pages(
    source: Union[Path, bytes], label: str, sha256: str, dpi: int, cache: RenderCache, max_pixels: int | None
) -> list[PageResult]:
    """Every page of the PDF (a path or its bytes): rendered (or found in the cache) and its text extracted."""
    pdfium = _pdfium()
    with _PDFIUM_LOCK:
        try:
            document = pdfium.PdfDocument(source if isinstance(source, bytes) else str(source))
        except pdfium.PdfiumError as exc:
            raise ImageLoadError(label, _open_reason(_checked_code(exc.err_code, source))) from None
        try:
            count = len(document)
            if count == 0:
                raise ImageLoadError(label, "the PDF has no pages")
            return [
                _page(pdfium, document, index, count, label, sha256, dpi, cache, max_pixels) for index in range(count)
            ]
        finally:
            document.close()


def _page(
    pdfium,
    document,
    index: int,
    count: int,
    label: str,
    sha256: str,
    dpi: int,  # type: ignore[no-untyped-def]
    cache: RenderCache,
    max_pixels: int | None,
) -> PageResult:
    number = index + 1
    page_label = f"{label} page {number}"
    scale = dpi / POINTS_PER_INCH
    target = cache.path(sha256, f"page-{number:0{PAGE_NUMBER_DIGITS}d}@{dpi}dpi.png")
    try:
        page = document[index]
    except pdfium.PdfiumError:
        return ImageLoadError(page_label, "PDFium cannot load this page")
    try:
        width_pt, height_pt = page.get_size()
        rotation = page.get_rotation()
        width, height = math.ceil(width_pt * scale), math.ceil(height_pt * scale)  # as PDFium sizes the bitmap
        if rotation in QUARTER_TURN_ROTATIONS:
            width, height = height, width
        if max_pixels is not None and width * height > max_pixels:
            return ImageLoadError(page_label, f"{width}x{height} pixels at {dpi} dpi is over the limit of {max_pixels}")
        textpage = page.get_textpage()
        try:
            text = textpage.get_text_range().replace("\r\n", "\n").strip()
        finally:
            textpage.close()
        if target.exists():
            with Image.open(target) as cached:
                width, height = cached.size
        else:
            image = page.render(scale=scale).to_pil()
            width, height = image.size
            cache.put_png(target, image)
        return RenderedPage(number, count, text, target, width, height)
    except pdfium.PdfiumError:
        return ImageLoadError(page_label, "PDFium failed to render or read this page")
    except OSError as exc:
        return ImageLoadError(page_label, f"cannot write the rendered page to the cache at {target} ({exc})")
    finally:
        page.close()
