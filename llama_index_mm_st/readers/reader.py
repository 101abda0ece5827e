"""``ImageReader``: files, folders, URLs, bytes and PDF pages into LlamaIndex ``ImageDocument``s.

Documents refer to their pixels (``image_path``, plus ``image_url`` for downloads) and never hold them,
so reading a folder of any size keeps memory flat when consumed lazily. Sources are read in a small
thread pool with a bounded window of work in flight, in input order. Bad inputs never stop a read: they
are collected in a ``ReadReport`` and announced with one ``SkippedItemsWarning`` per read, unless
``on_error="raise"``, where the first one raises an error naming the file.
"""

from __future__ import annotations

import asyncio
import os
import warnings
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, Optional, Union

from fsspec.implementations.local import LocalFileSystem
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.readers.base import BasePydanticReader, BaseReader
from llama_index.core.schema import ImageDocument

from ..docs import document_parameters
from ..strict import RefusesUnknownFields
from ..errors import ItemFailure, MMSTError, SkippedItemsWarning
from ..fetch import FETCH_KEYWORDS, FetchOptions, FlatFetchFields
from ..images import DEFAULT_MAX_PIXELS, default_workers
from ..types import OnError
from .cache import RenderCache, default_cache_dir
from .formats import supported_extensions
from .read_source import Frames, Outcome, ReadSettings, Verify, read_source
from .report import IgnoredPath, ReadReport
from .sources import Source, WalkItem, check_sources, expand, source_of
from .walk import WalkedFile, WalkPolicy, WalkTally

Sources = Union[str, Path, bytes, list[Union[str, Path, bytes]]]
DEFAULT_PDF_DPI = 150
"""Sharp enough for a page's small print at CLIP-class input sizes, small enough to render fast."""
MAX_PDF_DPI = 1200
"""Above this an A4 page is over 130 megapixels: beyond any model's input, and beyond the pixel limit."""
WINDOW_PER_WORKER = 4
"""Sources in flight per worker thread: enough to keep threads busy, small enough to bound memory."""


@document_parameters(**FETCH_KEYWORDS)
class ImageReader(FlatFetchFields, RefusesUnknownFields, BasePydanticReader):
    """Read images and PDF pages into ``ImageDocument``s that point at their files.

    ``load_data(sources)`` takes a file, a folder (walked recursively), an http(s) URL (with
    ``allow_urls=True``), bytes, or a list of these. Use ``file_extractor()`` to plug it into
    ``SimpleDirectoryReader``. The report of the latest read is ``last_report``; pass ``report=`` to
    collect into your own (the safe choice when reads run concurrently).
    """

    include: Optional[list[str]] = Field(
        default=None, description="Globs a file in a folder must match (default: every supported extension)."
    )
    exclude: list[str] = Field(default_factory=list, description="Globs of files or folders to leave out.")
    recursive: bool = Field(default=True, description="Walk sub-folders.")
    exclude_hidden: bool = Field(default=True, description="Leave out names that start with a dot.")
    follow_external_links: bool = Field(
        default=False, description="Follow links that lead outside the folder being read."
    )
    fetch: FetchOptions = Field(
        default_factory=FetchOptions,
        description="URL policy and download limits (fetch.FetchOptions): allow_urls, allow_private_urls, timeout, max_bytes.",
    )
    max_pixels: Optional[int] = Field(
        default=DEFAULT_MAX_PIXELS, gt=0, description="Images (and rendered pages) larger than this are refused."
    )
    verify: Verify = Field(
        default="decode",
        description=(
            '"decode" decodes once (JPEG at 1/8 scale) and drops the pixels, catching truncated or corrupt files; '
            '"header" only reads headers (faster; a cut-off file then fails later, at embedding time).'
        ),
    )
    frames: Frames = Field(
        default="first",
        description='"all" makes one document per frame of an animated GIF/WebP/PNG or multi-page TIFF.',
    )
    pdf_dpi: int = Field(
        default=DEFAULT_PDF_DPI, gt=0, le=MAX_PDF_DPI, description="Resolution PDF pages are rendered at."
    )
    cache_dir: Optional[Path] = Field(
        default=None,
        description=(
            "Where rendered pages, frames and downloads are kept "
            "(default: $MMST_CACHE_DIR, else the user cache folder)."
        ),
    )
    captions: bool = Field(
        default=True, description="Use sidecar captions (photo.jpg.txt, photo.txt, captions.json/csv) as document text."
    )
    on_error: OnError = Field(
        # "skip" unlike the embedding's "raise": a reader walks whole folders, where one odd file is expected.
        default="skip", description='"skip" reports bad inputs and goes on; "raise" stops at the first.'
    )
    absolute_ids: bool = Field(
        default=False,
        description=(
            "Key document ids by absolute path (as mmst index does) instead of the path relative to the folder "
            "read: two folders holding the same relative name never share an id, but a moved folder gets new ids."
        ),
    )
    num_workers: Optional[int] = Field(
        default=None, ge=1, description="Threads reading sources (default: one per core, up to 8)."
    )

    _last_report: ReadReport = PrivateAttr(default_factory=ReadReport)

    @property
    def url_max_bytes(self) -> int:
        """Deprecated: ``fetch.max_bytes``."""
        return self.fetch.max_bytes

    @classmethod
    def class_name(cls) -> str:
        return "MMSTImageReader"

    @property
    def last_report(self) -> ReadReport:
        """What the latest read loaded, failed on and ignored (filled as a lazy read proceeds)."""
        return self._last_report

    def file_extractor(self) -> dict[str, BaseReader]:
        """``{extension: self}`` for every supported image and PDF extension, for ``SimpleDirectoryReader``."""
        return {extension: self for extension in sorted(supported_extensions())}

    def lazy_load_data(  # type: ignore[override]
        self,
        sources: Optional[Sources] = None,
        *,
        file: Optional[Union[str, Path]] = None,
        extra_info: Optional[dict[str, Any]] = None,
        fs: Any = None,
        report: Optional[ReadReport] = None,
    ) -> Iterator[ImageDocument]:
        """Documents one at a time. ``file``, ``extra_info`` and ``fs`` follow LlamaIndex's file-reader
        convention (``extra_info`` is merged into each document's metadata)."""
        if (sources is None) == (file is None):
            raise TypeError("pass exactly one of `sources` (positional) or `file`")
        items = check_sources(sources if file is None else file, self.fetch.allow_urls)
        cache_root = self.cache_dir or default_cache_dir()
        settings = self.read_settings(extra_info, fs)
        policy = WalkPolicy(
            extensions=supported_extensions(),
            include=tuple(self.include) if self.include is not None else None,
            exclude=tuple(self.exclude),
            recursive=self.recursive,
            exclude_hidden=self.exclude_hidden,
            follow_external_links=self.follow_external_links,
            prune=frozenset({os.path.realpath(cache_root)}),
        )
        report = report if report is not None else ReadReport()
        self._last_report = report
        tally = WalkTally(report.ignored_types)
        walk = expand(items, policy, self.absolute_ids, tally, local=settings.fs is None, allow_urls=self.fetch.allow_urls)
        return self._documents(walk, settings, report)

    def read_settings(self, extra_info: Optional[dict[str, Any]] = None, fs: Any = None) -> ReadSettings:
        """How this reader reads each source (limits, PDF and frame rules, URL policy, cache): also what
        a worker that reads sources for it elsewhere (a Ray read task) uses."""
        return ReadSettings(
            cache=RenderCache(self.cache_dir or default_cache_dir()),
            max_pixels=self.max_pixels,
            verify=self.verify,
            frames=self.frames,
            pdf_dpi=self.pdf_dpi,
            captions=self.captions,
            fetch=self.fetch,
            extra_info=dict(extra_info) if extra_info else None,
            fs=None if fs is None or isinstance(fs, LocalFileSystem) else fs,
        )

    def read_file(self, entry: WalkedFile, settings: Optional[ReadSettings] = None) -> Outcome:
        """One file the walker found: its documents and per-page failures (``Outcome``); an
        ``MMSTError`` naming it when the file as a whole can't be read. The per-file step of
        ``load_data``, public for runners that walk once and read the files themselves (the ingestion
        job and its Ray read tasks); ``settings`` defaults to ``read_settings()``."""
        return read_source(source_of(entry, self.absolute_ids), settings or self.read_settings())

    def load_data(  # type: ignore[override]
        self,
        sources: Optional[Sources] = None,
        *,
        file: Optional[Union[str, Path]] = None,
        extra_info: Optional[dict[str, Any]] = None,
        fs: Any = None,
        report: Optional[ReadReport] = None,
    ) -> list[ImageDocument]:
        """All documents as a list (see ``lazy_load_data``)."""
        return list(self.lazy_load_data(sources, file=file, extra_info=extra_info, fs=fs, report=report))

    async def aload_data(  # type: ignore[override]
        self,
        sources: Optional[Sources] = None,
        *,
        file: Optional[Union[str, Path]] = None,
        extra_info: Optional[dict[str, Any]] = None,
        fs: Any = None,
        report: Optional[ReadReport] = None,
    ) -> list[ImageDocument]:
        """``load_data`` in a worker thread, so the event loop is never blocked."""
        return await asyncio.to_thread(self.load_data, sources, file=file, extra_info=extra_info, fs=fs, report=report)

    def _documents(
        self, walk: Iterator[WalkItem], settings: ReadSettings, report: ReadReport
    ) -> Iterator[ImageDocument]:
        failures: list[ItemFailure] = []
        try:
            for position, item, result in self._results(walk, settings):
                if isinstance(item, IgnoredPath):
                    report.ignored.append(item)
                    continue
                report.sources += 1
                errors = [result] if isinstance(result, MMSTError) else result.failures
                for error in errors:
                    if self.on_error == "raise":
                        raise error
                    failure = ItemFailure(position, getattr(error, "item", str(item)), error)
                    failures.append(failure)
                    report.failures.append(failure)
                if isinstance(result, Outcome):
                    report.documents += len(result.documents)
                    yield from result.documents
        finally:
            if failures:
                warnings.warn(SkippedItemsWarning("ImageReader", failures), stacklevel=2)

    def _results(self, walk: Iterator[WalkItem], settings: ReadSettings) -> Iterator[tuple[int, WalkItem, Any]]:
        """(position, item, Outcome or error) in input order; sources are read in threads, a bounded
        number at a time, so a lazy read of a huge folder holds only a few results."""
        workers = self.num_workers or default_workers()
        if workers == 1:
            for position, item in enumerate(walk):
                yield position, item, _read(item, settings) if isinstance(item, Source) else item
            return
        pending: deque[tuple[int, WalkItem, Optional[Future]]] = deque()
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mmst-reader")
        try:
            for position, item in enumerate(walk):
                pending.append(
                    (position, item, pool.submit(_read, item, settings) if isinstance(item, Source) else None)
                )
                while len(pending) > workers * WINDOW_PER_WORKER:
                    yield _settle(pending.popleft())
            while pending:
                yield _settle(pending.popleft())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _read(source: Source, settings: ReadSettings) -> Union[Outcome, MMSTError]:
    """One source; its expected failures come back as values so one bad file never stops the rest.
    ``MissingDependencyError`` is not among them: it propagates and stops the read."""
    try:
        return read_source(source, settings)
    except MMSTError as exc:
        if isinstance(exc, ImportError):
            raise
        return exc


def _settle(entry: tuple[int, WalkItem, Optional[Future]]) -> tuple[int, WalkItem, Any]:
    position, item, future = entry
    return position, item, future.result() if future is not None else item
