"""Benchmark of ImageReader against named peers measured in the same run.

1. Images: files/s over a folder of 1,000 JPEGs (640x480 photo-like). Peer: LlamaIndex's
   ``SimpleDirectoryReader`` with its default image handling (``llama-index-readers-file``'s ImageReader,
   which opens each header but neither hashes nor checks the pixels).
2. PDF pages/s rendered at the default DPI (150). Peer: a plain pypdfium2 loop that renders each page,
   extracts its text and saves a PNG (what one writes by hand, with no cache). LlamaIndex's default
   ``PDFReader`` (pypdf, text only, no pixels) is printed for context.
3. Memory of a lazy read over 10,000 small JPEGs (Python heap peak), against keeping the list.

Run: ``python bench/reader.py`` (``--quick`` for a smaller run). Median of ``--runs`` measured runs after
one warm-up. Prints the machine and versions first.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import tracemalloc
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from llama_index_mm_st.readers import ImageReader

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import add_device_args, header  # noqa: E402


def _versions() -> str:
    names = ["llama-index-core", "llama-index-readers-file", "pillow", "pypdfium2", "pypdf", "fpdf2"]
    found = []
    for name in names:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def make_jpegs(folder: Path, count: int, size: tuple[int, int] = (640, 480)) -> None:
    """Photo-like JPEGs: smooth gradients plus noise, so files have realistic sizes (tens of KB)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    for i in range(count):
        base = np.stack([(x * (1 + c) + y * (i % 5 + c) + i * 7) % 256 for c in range(3)], axis=-1)
        noise = rng.integers(-20, 20, size=(height, width, 3))
        pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels, "RGB").save(folder / f"photo_{i:05d}.jpg", quality=85)


def make_pdf(path: Path, pages: int) -> None:
    """A text-heavy report with a figure on every other page (fpdf2)."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_font("helvetica", size=10)
    words = "retrieval multimodal embedding qdrant invoice ACME-4711 error E1234 quarterly revenue".split()
    rng = np.random.default_rng(1)
    for page in range(pages):
        pdf.add_page()
        if page % 2:
            pdf.set_fill_color(int(rng.integers(0, 255)), 120, 200)
            pdf.rect(20, 150, 170, 100, style="F")
        for _ in range(50 if page % 2 == 0 else 20):
            pdf.cell(text=" ".join(rng.choice(words, size=12)), new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))


def rates(contenders: dict[str, Callable[[], int]], runs: int) -> dict[str, float]:
    """Items per second for each contender: median over ``runs`` rounds after one warm-up round. Each round
    runs every contender once, so a shift in background load hits them all alike."""
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for round_ in range(runs + 1):
        for name, fn in contenders.items():
            start = time.perf_counter()
            count = fn()
            if round_:
                samples[name].append(count / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in samples.items()}


def peer_simple_directory_reader(folder: Path) -> Callable[[], int]:
    from llama_index.core import SimpleDirectoryReader

    def run() -> int:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            return len(SimpleDirectoryReader(str(folder)).load_data())

    return run


def peer_pypdfium2_loop(pdf: Path, out: Path, dpi: int) -> Callable[[], int]:
    import pypdfium2

    def run() -> int:
        document = pypdfium2.PdfDocument(str(pdf))
        for index in range(len(document)):
            page = document[index]
            textpage = page.get_textpage()
            textpage.get_text_range()
            page.render(scale=dpi / 72).to_pil().save(out / f"page-{index}.png")
            textpage.close()
            page.close()
        count = len(document)
        document.close()
        return count

    return run


def peer_llamaindex_pdf_reader(pdf: Path) -> Callable[[], int]:
    from llama_index.readers.file import PDFReader

    return lambda: len(PDFReader().load_data(pdf))


def bench_images(work: Path, count: int, runs: int) -> None:
    folder = work / "jpegs"
    make_jpegs(folder, count)
    megabytes = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
    print(f"\n## Images: {count} JPEGs 640x480, {megabytes:.1f} MB, median of {runs} interleaved rounds")

    def ours(**options: object) -> Callable[[], int]:
        return lambda: len(ImageReader(cache_dir=work / "c", **options).load_data(folder))  # type: ignore[arg-type]

    peer_name = "peer: SimpleDirectoryReader, default image reader (llama-index-readers-file): no hash, no check"
    contenders = {
        "ImageReader(verify='header'): metadata + sha256, no decode": ours(verify="header"),
        "ImageReader(verify='header', num_workers=1)": ours(verify="header", num_workers=1),
        "ImageReader() default: + decode check (JPEG at 1/8 scale)": ours(),
    }
    try:
        contenders[peer_name] = peer_simple_directory_reader(folder)
    except ImportError:
        print("(peer skipped: llama-index-readers-file is not installed)")
    measured = rates(contenders, runs)
    peer = measured.get(peer_name)
    for name, rate in measured.items():
        ratio = f"  x{rate / peer:.2f} vs peer" if peer else ""
        print(f"{rate:9.0f} files/s  {name}{ratio}")


def bench_pdf(work: Path, pages: int, runs: int) -> None:
    pdf = work / "report.pdf"
    make_pdf(pdf, pages)
    dpi = ImageReader().pdf_dpi
    out = work / "peer-pages"
    out.mkdir()
    print(f"\n## PDF: {pages} A4 pages at {dpi} dpi (default), median of {runs} interleaved rounds")
    cold_dirs = iter(range(10_000))
    peer_name = "peer: pypdfium2 loop (render + text + PNG save, no cache)"
    contenders = {
        "ImageReader, cold cache (render + text + PNG)": lambda: len(
            ImageReader(cache_dir=work / f"cold-{next(cold_dirs)}").load_data(pdf)
        ),
        "ImageReader, warm cache (text only, PNG reused)": lambda: len(
            ImageReader(cache_dir=work / "warm").load_data(pdf)
        ),
        peer_name: peer_pypdfium2_loop(pdf, out, dpi),
    }
    context = "context: LlamaIndex PDFReader (pypdf, text only, no pixels)"
    try:
        contenders[context] = peer_llamaindex_pdf_reader(pdf)
    except ImportError:
        print("(context skipped: llama-index-readers-file is not installed)")
    measured = rates(contenders, runs)
    for name, rate in measured.items():
        ratio = "" if name == context else f"  x{rate / measured[peer_name]:.2f} vs peer"
        print(f"{rate:9.1f} pages/s  {name}{ratio}")


def bench_memory(work: Path, count: int) -> None:
    folder = work / "many"
    make_jpegs(folder, count, size=(96, 64))
    reader = ImageReader(cache_dir=work / "c")
    for _ in reader.lazy_load_data(folder):  # warm-up
        break
    tracemalloc.start()
    seen = sum(1 for _ in reader.lazy_load_data(folder))
    lazy_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    kept = reader.load_data(folder)
    list_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert seen == len(kept) == count
    print(f"\n## Memory: {count} JPEGs in one folder, Python heap peak (tracemalloc)")
    print(f"{lazy_peak / 1e6:9.2f} MB  lazy_load_data, documents dropped as they come")
    print(f"{list_peak / 1e6:9.2f} MB  load_data, all documents kept  (x{list_peak / lazy_peak:.1f} of lazy)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--pages", type=int, default=40)
    parser.add_argument("--many", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=["images", "pdf", "memory"], help="run one section")
    parser.add_argument("--quick", action="store_true", help="200 images, 10 pages, 1,000 for memory, 1 run")
    add_device_args(parser, precision=False)
    args = parser.parse_args()
    if args.quick:
        args.images, args.pages, args.many, args.runs = 200, 10, 1000, 1
    print(header("reader", args.device, None, note="the reader decodes on the CPU; the device is not used"))
    print(f"# bench/reader.py on {platform.platform()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(f"# {_versions()}")
    with tempfile.TemporaryDirectory(prefix="mmst-bench-reader-") as tmp:
        work = Path(tmp)
        if args.only in (None, "images"):
            bench_images(work, args.images, args.runs)
        if args.only in (None, "pdf"):
            bench_pdf(work, args.pages, args.runs)
        if args.only in (None, "memory"):
            bench_memory(work, args.many)


if __name__ == "__main__":
    main()
