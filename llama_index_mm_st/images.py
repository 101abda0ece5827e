"""Image decoding with limits: bytes or files in, RGB PIL images out, never unbounded.

Why here and not in PIL defaults: PIL only *warns* below twice its pixel limit, and a hostile file
(a decompression bomb) can allocate gigabytes before anything fails. We read the header first and
refuse oversized images before decoding a single pixel. EXIF orientation is applied so a phone photo
is upright for the model. JPEG "draft" decoding (DCT scaling) decodes straight to about the size the
model needs, which is several times cheaper than a full decode followed by a resize.
"""

from __future__ import annotations

import os
import struct
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Callable, Sequence, TypeVar, Union

from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageLoadError
from .files import file_error_reason, regular_file_size

from .defaults import DEFAULT_MAX_PIXELS  # noqa: E402 - re-exported: the images module has always offered it
"""PIL's own decompression-bomb threshold (about 0.25 GiB of RGBA), enforced as a hard limit."""

Openable = Union[str, Path, BytesIO]
DAMAGED_DATA_ERRORS: tuple[type[BaseException], ...] = (OSError, SyntaxError, ValueError, IndexError, EOFError, struct.error)
"""What Pillow's format plugins raise on damaged headers or data (seen by fuzzing GIF, PNG, JPEG, WebP,
TIFF, BMP): ``OSError`` for truncation, the others from struct unpacking and chunk parsing."""
_WARNING_FILTERS_LOCK = threading.Lock()
"""``warnings.catch_warnings`` swaps process-global filters; decode workers that enter it at once
restore each other's state out of order, so PIL's warning leaks and the caller's filters can be
left changed after a read. Workers take turns (only around the header-only open)."""

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class DecodeOptions:
    """How to decode. ``draft_size`` lets JPEGs decode at a reduced scale no smaller than it."""

    max_pixels: int | None = DEFAULT_MAX_PIXELS
    draft_size: tuple[int, int] | None = None
    apply_exif: bool = True


def open_checked(source: Openable, label: str, max_pixels: int | None) -> Image.Image:
    """Open an image lazily (header only) and refuse it if it is over ``max_pixels``."""
    if isinstance(source, (str, Path)) and regular_file_size(source, label) == 0:
        raise ImageLoadError(label, "empty file (zero bytes)")
    try:
        with _WARNING_FILTERS_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source)
    except UnidentifiedImageError:
        raise ImageLoadError(label, "not a recognised image format (corrupt, empty or unsupported)") from None
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(label, f"refused as a decompression bomb ({exc})") from None
    except OSError as exc:
        raise ImageLoadError(label, file_error_reason(exc)) from None
    except DAMAGED_DATA_ERRORS as exc:  # e.g. "Truncated IHDR chunk"
        raise ImageLoadError(label, f"corrupt image header ({exc})") from None
    width, height = image.size
    if max_pixels is not None and width * height > max_pixels:
        image.close()
        raise ImageLoadError(label, f"{width}x{height} = {width * height} pixels is over the limit of {max_pixels}")
    return image


def to_rgb(image: Image.Image, label: str, options: DecodeOptions) -> Image.Image:
    """Decode pixels (draft scale if allowed), apply EXIF orientation and convert to RGB."""
    try:
        if options.draft_size is not None and image.format == "JPEG":
            image.draft("RGB", options.draft_size)
        if options.apply_exif:
            image = ImageOps.exif_transpose(image)
        if image.mode != "RGB":
            if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                image = _flatten_alpha(image)
            else:
                image = image.convert("RGB")
        image.load()
    except (*DAMAGED_DATA_ERRORS, Image.DecompressionBombError) as exc:
        raise ImageLoadError(label, f"corrupt or truncated image data ({exc})") from None
    return image


def _flatten_alpha(image: Image.Image) -> Image.Image:
    """Composite a transparent image onto white, as a viewer shows it (plain convert gives black)."""
    rgba = image.convert("RGBA")
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def decode(source: Openable, label: str, options: DecodeOptions = DecodeOptions()) -> Image.Image:
    """Open with limits and decode to an upright RGB image; every failure is an ``ImageLoadError``.

    The file is closed before returning: multi-frame formats (GIF, TIFF, WebP) keep it open after
    ``load()``, so such an image is copied off it first.
    """
    image = open_checked(source, label, options.max_pixels)
    try:
        decoded = to_rgb(image, label, options)
        if decoded is image and getattr(image, "fp", None) is not None:
            decoded = image.copy()
    finally:
        image.close()
    return decoded


def prepare_pil(image: Image.Image, label: str, options: DecodeOptions = DecodeOptions()) -> Image.Image:
    """Apply the same limit and RGB conversion to an image the caller already holds."""
    width, height = image.size
    if options.max_pixels is not None and width * height > options.max_pixels:
        raise ImageLoadError(label, f"{width}x{height} pixels is over the limit of {options.max_pixels}")
    return to_rgb(image, label, DecodeOptions(max_pixels=options.max_pixels, apply_exif=options.apply_exif))


def default_workers() -> int:
    """Decoding threads: PIL releases the GIL while decoding, so one per core (at least one)."""
    return max(1, min(8, os.cpu_count() or 1))


def map_isolated(
    fn: Callable[[T], R], items: Sequence[T], workers: int | None = None,
    errors: tuple[type[Exception], ...] = (ImageLoadError,),
) -> list[R | Exception]:
    """Apply ``fn`` to each item, in threads when there are several; an error of ``errors`` (an
    ``ImageLoadError`` unless given) is kept in place of its result so one bad item never stops the others."""

    def run(item: T) -> R | Exception:
        try:
            return fn(item)
        except errors as exc:
            return exc

    workers = default_workers() if workers is None else workers
    if workers <= 1 or len(items) <= 1:
        return [run(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mmst-decode") as pool:
        return list(pool.map(run, items))
