"""Metadata that needs no pixels: content hash, header facts, EXIF capture time and camera, sidecar captions.

Width and height are reported upright: an EXIF orientation of 5-8 (a quarter turn) swaps them, as the
embedding's EXIF-aware decode will. Captions come from, in order: ``photo.jpg.txt``, ``photo.txt``, then a
``captions.json`` (``{"photo.jpg": "..."}``) or ``captions.csv`` (header ``file,caption``) in the folder.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from ..errors import CaptionFileError
from ..files import read_sidecar_text, undecodable_text
from ..images import DAMAGED_DATA_ERRORS

CHUNK = 1 << 16

BOOKKEEPING_KEYS: tuple[str, ...] = (
    "file_path", "file_name", "file_type", "url", "mime_type", "width", "height", "file_size", "sha256",
    "source_id", "page", "page_count", "frame", "frame_count", "captured_at", "camera",
    "creation_date", "last_modified_date", "last_accessed_date",
)
"""Metadata about where a document came from, not what it says (paths, hashes, sizes, ids, timestamps;
the last three are ``SimpleDirectoryReader``'s). It never enters the text an embedding model sees: CLIP's
77-token window would otherwise go to a path and a 64-character hash. Documents built by the reader and by
``mmst index`` list these in ``excluded_embed_metadata_keys``; a caption or title stays in."""
LLM_NOISE_KEYS: tuple[str, ...] = (
    "file_type", "mime_type", "width", "height", "file_size", "sha256", "source_id", "frame_count",
    "creation_date", "last_modified_date", "last_accessed_date",
)
"""Bookkeeping that is noise to an LLM too; paths, pages and frames stay in its view so it can cite them."""
ORIENTATION, DATETIME, MAKE, MODEL, EXIF_IFD, DATETIME_ORIGINAL = 0x0112, 0x0132, 0x010F, 0x0110, 0x8769, 0x9003
QUARTER_TURNS = (5, 6, 7, 8)


@dataclass(frozen=True)
class ByteScan:
    """What one pass over the bytes gives: hash, size and the first bytes (to tell a PDF from an image)."""

    sha256: str
    size: int
    head: bytes

    @property
    def is_pdf(self) -> bool:
        return self.head.startswith(b"%PDF-")


def scan_stream(stream: BinaryIO) -> ByteScan:
    """Hash a stream through one reused buffer: memory stays at one chunk whatever the file's size."""
    digest, size, head = hashlib.sha256(), 0, b""
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    while read := stream.readinto(buffer):  # type: ignore[attr-defined]
        if not size:
            head = bytes(view[:8])
        digest.update(view[:read])
        size += read
    return ByteScan(digest.hexdigest(), size, head)


def scan_bytes(data: bytes) -> ByteScan:
    return ByteScan(hashlib.sha256(data).hexdigest(), len(data), data[:8])


def image_metadata(image: Image.Image) -> dict[str, object]:
    """Format, upright size, frame count, EXIF capture time and camera, all from the header."""
    width, height = image.size
    exif = _exif(image)
    if exif.get(ORIENTATION) in QUARTER_TURNS:
        width, height = height, width
    meta: dict[str, object] = {
        "mime_type": Image.MIME.get(image.format or "", "application/octet-stream"),
        "width": int(width),
        "height": int(height),
    }
    frames = int(getattr(image, "n_frames", 1))
    if frames > 1:
        meta["frame_count"] = frames
    captured = _exif_datetime(exif.get_ifd(EXIF_IFD).get(DATETIME_ORIGINAL) or exif.get(DATETIME))
    if captured:
        meta["captured_at"] = captured
    camera = _camera(exif.get(MAKE), exif.get(MODEL))
    if camera:
        meta["camera"] = camera
    return meta


def _exif(image: Image.Image) -> Image.Exif:
    """The EXIF block; a malformed one is treated as absent (it says nothing about the pixels)."""
    try:
        # PngImageFile.getexif decodes the whole image to look for an eXIf chunk after the pixels;
        # the base method reads only what the header gave (where cameras and editors put it).
        exif = Image.Image.getexif(image) if image.format == "PNG" else image.getexif()
        exif.get_ifd(EXIF_IFD)
    except DAMAGED_DATA_ERRORS:
        return Image.Exif()
    return exif


def _clean(value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).strip("\x00 ") if value is not None else ""


def _exif_datetime(value: object) -> str | None:
    """EXIF writes ``YYYY:MM:DD HH:MM:SS``; give ISO 8601, or nothing when it is not a valid time."""
    if value is None:
        return None
    try:
        return datetime.strptime(_clean(value), "%Y:%m:%d %H:%M:%S").isoformat()
    except ValueError:
        return None


def _camera(make: object, model: object) -> str | None:
    make_s, model_s = _clean(make), _clean(model)
    if make_s and model_s.lower().startswith(make_s.lower()):
        return model_s
    return " ".join(p for p in (make_s, model_s) if p) or None


def caption_for(path: Path, siblings: frozenset[str] | None = None) -> str | None:
    """The caption of the image at ``path``, or None. ``siblings`` (the names in its folder, when a walk
    already listed them) saves the file-system lookups for images that have no caption, the common case.
    Raises ``CaptionFileError`` when a caption file is not text or a ``captions.json``/``.csv`` is malformed."""

    def present(name: str) -> bool:
        return name in siblings if siblings is not None else os.path.exists(path.parent / name)

    for name in (path.name + ".txt", path.stem + ".txt"):
        sidecar = path.parent / name
        if name != path.name and present(name) and sidecar.is_file():
            try:
                return read_sidecar_text(sidecar).strip()
            except UnicodeDecodeError as exc:  # named in the report; the image is read without its caption
                raise CaptionFileError(str(sidecar), f"{undecodable_text(exc)}; {path.name} is read without its caption") from None
    for name in ("captions.json", "captions.csv"):
        if not present(name):
            continue
        table = path.parent / name
        try:
            stamp = os.stat(table).st_mtime_ns
        except OSError:
            continue
        return _load_captions(str(table), stamp).get(path.name)
    return None


@lru_cache(maxsize=32)
def _load_captions(table: str, stamp: int) -> dict[str, str]:
    """Parsed once per file version (``stamp`` is its mtime, so an edited file is read again)."""
    try:
        with open(table, encoding="utf-8", newline="") as handle:
            if table.endswith(".json"):
                data = json.load(handle)
                if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
                    raise CaptionFileError(table, 'expected a JSON object {"file name": "caption"}')
                return {str(k): v.strip() for k, v in data.items()}
            rows = csv.DictReader(handle)
            if rows.fieldnames is None or not {"file", "caption"} <= set(rows.fieldnames):
                raise CaptionFileError(table, "expected a CSV header with columns file,caption")
            return {row["file"]: (row["caption"] or "").strip() for row in rows if row["file"]}
    except json.JSONDecodeError as exc:
        raise CaptionFileError(table, f"invalid JSON ({exc})") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CaptionFileError(table, str(exc)) from None
