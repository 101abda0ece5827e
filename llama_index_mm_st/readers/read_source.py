"""Read one source (a file, a download or bytes) into its documents (and any failures). Pure per-source work, so the reader can run
sources in threads; nothing here keeps decoded pixels.

A file is hashed in one streaming pass (which also tells a PDF from an image by its first bytes), then
its header is read. With ``verify="decode"`` the pixels are decoded once and dropped, which is what
catches truncated or corrupt data (a header can be intact over a cut-off body); JPEGs decode at 1/8
scale for this, which reads every byte of entropy-coded data at a fraction of the cost.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any, Iterator, Literal, Union

from llama_index.core.schema import ImageDocument, MediaResource
from PIL import Image

from ..errors import CaptionFileError, ImageLoadError, MMSTError
from ..files import file_error_reason
from ..fetch import FetchOptions, fetch_bytes
from ..ids import NO_PART, document_id
from ..images import DAMAGED_DATA_ERRORS, DecodeOptions, open_checked, to_rgb
from .cache import RenderCache
from .document import ReaderImageDocument
from .metadata import (
    BOOKKEEPING_KEYS,
    LLM_NOISE_KEYS,
    ByteScan,
    caption_for,
    image_metadata,
    scan_bytes,
    scan_stream,
)
from .pdf import read_pages
from .sources import Source

EMBED_EXCLUDED = list(BOOKKEEPING_KEYS)
"""Reader metadata never enters the embedded text or BM25: only the caption or page text does."""
NAME_KEY = "file_name"
"""Left in the EMBED view of a document without words (a pure image, a scanned page). LlamaIndex's
indexes drop every node whose EMBED content is empty ("Some nodes are missing content"), which would
drop pure images from ``MultiModalVectorStoreIndex``. No model ever reads it: our embedding embeds a
node without words by its pixels alone, and BM25 indexes words, not metadata."""


def embed_exclusions(text: str) -> list[str]:
    """The bookkeeping keys kept out of what a model reads; the file name stays only when there are no words."""
    return [key for key in EMBED_EXCLUDED if text.strip() or key != NAME_KEY]
LLM_EXCLUDED = list(LLM_NOISE_KEYS)

DocumentKey = tuple[str, Union[int, str], Union[int, str]]
"""(source key, page or NO_PART, frame or NO_PART): the parts of ``ids.document_id``.
With absolute-path keys this is exactly ``mmst index``'s scheme, so its indexes keep their ids."""

CACHE_NUMBER_DIGITS = 5
"""Frame numbers in cache file names are zero-padded so the cache lists in order."""
JPEG_VERIFY_DRAFT = (1, 1)
"""Draft size for verifying a JPEG: the smallest DCT scale (1/8), which still reads every coded byte."""

Verify = Literal["decode", "header"]
Frames = Literal["first", "all"]


@dataclass(frozen=True)
class ReadSettings:
    """Everything ``read_source`` needs, fixed for one read."""

    cache: RenderCache
    max_pixels: int | None
    verify: Verify
    frames: Frames
    pdf_dpi: int
    captions: bool
    fetch: FetchOptions
    extra_info: dict[str, Any] | None = None
    fs: Any = None
    """An fsspec file system that is not the local one (from SimpleDirectoryReader): files are read through it."""


@dataclass
class Outcome:
    documents: list[ImageDocument] = field(default_factory=list)
    failures: list[MMSTError] = field(default_factory=list)


def read_source(source: Source, settings: ReadSettings) -> Outcome:
    """Read one source; an ``ImageLoadError`` for the source as a whole is raised, per-page ones are kept."""
    data = _materialise(source, settings)
    content = scan_bytes(data) if data is not None else _scan_file(source)
    if content.size == 0:
        raise ImageLoadError(source.label, "empty file (zero bytes)")
    key = source.key or f"sha256:{content.sha256}"
    base = _base_metadata(source, content, key)
    if content.is_pdf:
        return _pdf(source, data, content, key, base, settings)
    return _image(source, data, content, key, base, settings)


def _materialise(source: Source, settings: ReadSettings) -> bytes | None:
    """Bytes for sources that are not local files (None means: read the local file)."""
    if source.data is not None:
        return source.data
    if source.url is not None:
        return fetch_bytes(source.url, settings.fetch)
    if settings.fs is not None and source.path is not None:
        try:
            with settings.fs.open(str(source.path), "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise ImageLoadError(source.label, f"cannot read through {type(settings.fs).__name__} ({exc})") from None
    return None


def _scan_file(source: Source) -> ByteScan:
    path = source.path
    if path is None:
        raise ImageLoadError(source.label, "nothing to read")
    try:
        with open(path, "rb") as handle:
            return scan_stream(handle)
    except OSError as exc:
        raise ImageLoadError(source.label, file_error_reason(exc)) from None


def _base_metadata(source: Source, content: ByteScan, key: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"source_id": key, "file_size": content.size, "sha256": content.sha256}
    if source.path is not None:
        meta["file_path"] = str(source.path)
        meta["file_name"] = source.path.name
    elif source.url is not None:
        meta["url"] = source.url
        meta["file_name"] = source.url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
    return meta


def _document(
    key: DocumentKey,
    text: str,
    image_path: Path,
    mimetype: str,
    source: Source,
    metadata: dict[str, Any],
    settings: ReadSettings,
) -> ImageDocument:
    if settings.extra_info:
        metadata = {**metadata, **settings.extra_info}
    # Built from a MediaResource: ImageDocument(image_path=/image_url=) would open the file or fetch the URL again.
    return ReaderImageDocument(
        id_=document_id(*key),
        text=text,
        image_resource=MediaResource(path=image_path, url=source.url, mimetype=mimetype),
        metadata=metadata,
        excluded_embed_metadata_keys=embed_exclusions(text),
        excluded_llm_metadata_keys=list(LLM_EXCLUDED),
    )


def _pdf(
    source: Source, data: bytes | None, content: ByteScan, key: str, base: dict[str, Any], settings: ReadSettings
) -> Outcome:
    pdf_source: Union[Path, bytes] = data if data is not None else source.path  # type: ignore[assignment]
    pages = read_pages(pdf_source, source.label, content.sha256, settings.pdf_dpi, settings.cache, settings.max_pixels)
    outcome = Outcome()
    for page in pages:
        if isinstance(page, ImageLoadError):
            outcome.failures.append(page)
            continue
        meta = {
            **base,
            "mime_type": "application/pdf",
            "width": page.width,
            "height": page.height,
            "page": page.page,
            "page_count": page.page_count,
        }
        outcome.documents.append(
            _document((key, page.page, NO_PART), page.text, page.image_path, "image/png", source, meta, settings)
        )
    return outcome


def _image(
    source: Source, data: bytes | None, content: ByteScan, key: str, base: dict[str, Any], settings: ReadSettings
) -> Outcome:
    outcome = Outcome()
    caption = _caption(source, settings, outcome) or ""
    opened = BytesIO(data) if data is not None else source.path
    with _corrupt_data_fails(source.label), open_checked(opened, source.label, settings.max_pixels) as image:  # type: ignore[arg-type]
        meta = {**base, **image_metadata(image)}
        if settings.frames == "all" and int(getattr(image, "n_frames", 1)) > 1:
            for number, frame_path, size in _frames(image, source.label, content.sha256, settings):
                frame_meta = {**meta, "frame": number, "width": size[0], "height": size[1]}
                outcome.documents.append(
                    _document((key, NO_PART, number), caption, frame_path, "image/png", source, frame_meta, settings)
                )
            return outcome
        if settings.verify == "decode":
            options = DecodeOptions(max_pixels=settings.max_pixels, draft_size=JPEG_VERIFY_DRAFT, apply_exif=False)
            to_rgb(image, source.label, options)
        image_path = source.path if data is None else _cache_source(image, data, content, source, settings)
    mimetype = str(meta["mime_type"])
    outcome.documents.append(_document((key, NO_PART, NO_PART), caption, image_path, mimetype, source, meta, settings))  # type: ignore[arg-type]
    return outcome


@contextmanager
def _corrupt_data_fails(label: str) -> Iterator[None]:
    """Turn a plugin's low-level error on damaged data into an ``ImageLoadError`` naming the file."""
    try:
        yield
    except ImageLoadError:
        raise
    except DAMAGED_DATA_ERRORS as exc:
        raise ImageLoadError(label, f"corrupt or truncated image data ({type(exc).__name__}: {exc})") from None


def _cache_source(image: Image.Image, data: bytes, content: ByteScan, source: Source, settings: ReadSettings) -> Path:
    """Downloaded or in-memory images go to the cache so the document can point at a file."""
    extension = (image.format or "bin").lower()
    target = settings.cache.path(content.sha256, f"source.{extension}")
    if not target.exists():
        try:
            settings.cache.put_bytes(target, data)
        except OSError as exc:
            raise ImageLoadError(source.label, f"cannot write to the cache at {target} ({exc})") from None
    return target


def _frames(image: Image.Image, label: str, sha256: str, settings: ReadSettings):  # type: ignore[no-untyped-def]
    """Each frame, upright RGB, written once to the cache as PNG; yields (1-based number, path, size)."""
    options = DecodeOptions(max_pixels=settings.max_pixels)
    for index in range(int(image.n_frames)):  # type: ignore[attr-defined]
        target = settings.cache.path(sha256, f"frame-{index + 1:0{CACHE_NUMBER_DIGITS}d}.png")
        frame_label = f"{label} frame {index + 1}"
        try:
            image.seek(index)
        except EOFError:
            raise ImageLoadError(frame_label, "frame missing (truncated animation)") from None
        if target.exists():
            with Image.open(target) as cached:
                yield index + 1, target, cached.size
            continue
        rgb = to_rgb(image.copy(), frame_label, options)
        try:
            settings.cache.put_png(target, rgb)
        except OSError as exc:
            raise ImageLoadError(frame_label, f"cannot write to the cache at {target} ({exc})") from None
        yield index + 1, target, rgb.size


def _caption(source: Source, settings: ReadSettings, outcome: Outcome) -> str | None:
    """Sidecar caption of a local file; a broken caption file is reported but does not stop the image."""
    if not settings.captions or source.path is None or settings.fs is not None:
        return None
    try:
        return caption_for(source.path, source.siblings)
    except CaptionFileError as exc:
        outcome.failures.append(exc)
    except OSError as exc:
        outcome.failures.append(CaptionFileError(f"caption of {source.label}", exc.strerror or str(exc)))
    return None
