"""How far a video container says it runs, read from its structure: the truncation check FFmpeg can't make.

FFmpeg reads a cut file as far as it goes. An MP4 or MOV with its index first (``+faststart``) cut to
70% opens with the whole duration in its header and decodes the frames that are left, as a good
file; a Matroska or WebM file does the same; one with its index last fails as "invalid data". Each
of these containers says how long it is: an MP4/MOV box (``mdat``, ``moov``) or a Matroska
``Segment`` declares its size, an AVI its RIFF size, and an MP4's sample tables say where its last
sample ends. Here the top-level structure is walked by hand (a few reads, no decoding), recognised by
its magic bytes whatever the file is called, and ``media`` names a file whose structure runs past its
end as truncated. A file whose writer could not seek back to fill in sizes (a live stream) declares
none, and is not judged.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Optional, Union

import numpy as np

MAX_BOXES = 10_000
"""Top-level boxes or elements walked; a file with more is not one we judge."""
MAX_INDEX_BYTES = 64 * 1024 * 1024
"""Largest ``moov`` box whose sample tables are read (a two-hour film's is a few MB)."""
_ISO_FIRST_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"styp")
_EBML, _SEGMENT, _DOC_TYPE = 0x1A45DFA3, 0x18538067, 0x4282
_INDEX_PARENTS = (b"trak", b"mdia", b"minf", b"stbl")


@dataclass(frozen=True)
class Overrun:
    """A part of the file's structure that declares more bytes than the file holds."""

    container: str  # "MP4", "QuickTime", "Matroska", "WebM", "AVI"
    part: str  # "its 'mdat' box", "its Segment", "its sample tables"
    declared_end: int
    size: int

    def reason(self) -> str:
        return (f"truncated: {self.part} runs to byte {self.declared_end:,} of the {self.container} file, which holds "
                f"{self.size:,} bytes ({100 * self.size / max(1, self.declared_end):.0f}%)")


def overrun(source: Union[str, Path, bytes]) -> Optional[Overrun]:
    """Where an MP4/MOV, Matroska/WebM or AVI file's structure runs past its end; None when it does not,
    or the content is none of those (or declares no sizes)."""
    if isinstance(source, bytes):
        return _judge(io.BytesIO(source), len(source))
    with open(source, "rb") as handle:
        return _judge(handle, Path(source).stat().st_size)


def _judge(handle: BinaryIO, size: int) -> Optional[Overrun]:
    head = handle.read(12)
    try:
        if len(head) >= 8 and head[4:8] in _ISO_FIRST_BOXES:
            return _iso(handle, size)
        if head[:4] == b"\x1a\x45\xdf\xa3":
            return _matroska(handle, size)
        if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
            return _riff(handle, size)
    except (struct.error, ValueError):  # a structure too damaged to walk: FFmpeg names it when it opens
        return None
    return None


def _read(handle: BinaryIO, offset: int, count: int) -> bytes:
    handle.seek(offset)
    return handle.read(count)


# ---------------------------------------------------------------- MP4 / MOV (ISO base media)


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, box end) of the boxes in ``data[start:end]``, in a box already in memory."""
    offset = start
    while offset + 8 <= end:
        box_size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if box_size == 1:
            (box_size,) = struct.unpack_from(">Q", data, offset + 8)
            header = 16
        elif box_size == 0:
            box_size = end - offset
        if box_size < header:
            return
        yield kind, offset + header, offset + box_size
        offset += box_size


def _iso(handle: BinaryIO, size: int) -> Optional[Overrun]:
    brand = _read(handle, 8, 4)
    container = "QuickTime" if brand == b"qt  " else "MP4"
    offset, moov, has_data = 0, None, False
    for _ in range(MAX_BOXES):
        if offset + 8 > size:
            break
        header = _read(handle, offset, 16)
        box_size, kind = struct.unpack(">I4s", header[:8])
        header_size = 8
        if box_size == 1:
            (box_size,) = struct.unpack(">Q", header[8:16])
            header_size = 16
        elif box_size == 0:  # "to the end of the file": a size nobody filled in
            box_size = size - offset
        if box_size < header_size:
            return None
        if offset + box_size > size:
            return Overrun(container, f"its '{kind.decode('latin-1')}' box", offset + box_size, size)
        if kind == b"moov" and box_size <= MAX_INDEX_BYTES:
            moov = (offset + header_size, offset + box_size)
        has_data = has_data or kind == b"mdat"
        offset += box_size
    if moov is None or not has_data:  # no index, or samples kept in other files (a reference movie)
        return None
    data = _read(handle, moov[0], moov[1] - moov[0])
    end = _last_sample_end(data)
    if end is not None and end > size:
        return Overrun(container, "its sample tables", end, size)
    return None


def _last_sample_end(moov: bytes) -> Optional[int]:
    """Where the last sample of any track ends, by its sample tables (``stco``/``co64``, ``stsc``,
    ``stsz``); None when no track's tables can be read."""
    ends: list[int] = []
    stack = [(0, len(moov))]
    while stack:
        start, end = stack.pop()
        tables: dict[bytes, tuple[int, int]] = {}
        for kind, payload, box_end in _boxes(moov, start, end):
            if kind in _INDEX_PARENTS:
                stack.append((payload, box_end))  # every track, and the boxes that lead to its tables
            else:
                tables[kind] = (payload, box_end)
        if b"stsz" in tables and b"stsc" in tables and (b"stco" in tables or b"co64" in tables):
            track_end = _track_end(moov, tables)
            if track_end is not None:
                ends.append(track_end)
    return max(ends) if ends else None


def _track_end(moov: bytes, tables: dict[bytes, tuple[int, int]]) -> Optional[int]:
    wide = b"co64" in tables
    start, _ = tables[b"co64" if wide else b"stco"]
    (chunks,) = struct.unpack_from(">I", moov, start + 4)
    if chunks == 0:
        return None
    (last_offset,) = struct.unpack_from(">Q" if wide else ">I", moov, start + 8 + (chunks - 1) * (8 if wide else 4))
    start, _ = tables[b"stsc"]
    (entries,) = struct.unpack_from(">I", moov, start + 4)
    if entries == 0:
        return None
    runs = np.frombuffer(moov, dtype=">u4", count=3 * entries, offset=start + 8).reshape(entries, 3)
    per_chunk = int(runs[runs[:, 0] <= chunks][-1, 1]) if (runs[:, 0] <= chunks).any() else 0
    start, _ = tables[b"stsz"]
    uniform, count = struct.unpack_from(">II", moov, start + 4)
    per_chunk = min(per_chunk, count)
    if uniform:
        return last_offset + uniform * per_chunk
    sizes = np.frombuffer(moov, dtype=">u4", count=count, offset=start + 12)
    return last_offset + int(sizes[count - per_chunk:].sum(dtype=np.int64))


# ---------------------------------------------------------------- Matroska / WebM


def _vint(handle: BinaryIO, offset: int, strip_marker: bool) -> tuple[int, int, bool]:
    """An EBML variable-length integer at ``offset``: (value, length, all value bits set = unknown)."""
    first = _read(handle, offset, 1)
    if not first or first[0] == 0:
        raise ValueError("not an EBML integer")
    length = 9 - first[0].bit_length()
    data = _read(handle, offset, length)
    if len(data) < length:
        raise ValueError("cut inside an EBML integer")
    raw = int.from_bytes(data, "big")
    value_bits = 7 * length
    value = raw & ((1 << value_bits) - 1) if strip_marker else raw
    return value, length, raw & ((1 << value_bits) - 1) == (1 << value_bits) - 1


def _element(handle: BinaryIO, offset: int) -> tuple[int, int, Optional[int]]:
    """(ID, data start, data size or None when unknown) of the EBML element at ``offset``."""
    element_id, id_length, _ = _vint(handle, offset, strip_marker=False)
    data_size, size_length, unknown = _vint(handle, offset + id_length, strip_marker=True)
    return element_id, offset + id_length + size_length, None if unknown else data_size


def _matroska(handle: BinaryIO, size: int) -> Optional[Overrun]:
    element_id, start, header_size = _element(handle, 0)
    if element_id != _EBML or header_size is None:
        return None
    container = "Matroska"
    offset = start
    while offset < start + header_size:
        child, child_start, child_size = _element(handle, offset)
        if child_size is None:
            return None
        if child == _DOC_TYPE and _read(handle, child_start, child_size) == b"webm":
            container = "WebM"
        offset = child_start + child_size
    element_id, segment_start, segment_size = _element(handle, start + header_size)
    if element_id != _SEGMENT:
        return None
    if segment_size is not None:
        end = segment_start + segment_size
        return Overrun(container, "its Segment", end, size) if end > size else None
    offset = segment_start  # a Segment of unknown size (streamed): its top-level elements may say
    for _ in range(MAX_BOXES):
        if offset >= size:
            return None
        _, child_start, child_size = _element(handle, offset)
        if child_size is None:
            return None
        if child_start + child_size > size:
            return Overrun(container, "its last element", child_start + child_size, size)
        offset = child_start + child_size
    return None


# ---------------------------------------------------------------- AVI


def _riff(handle: BinaryIO, size: int) -> Optional[Overrun]:
    """An AVI is one ``RIFF AVI `` chunk, then (OpenDML, past 1 GB) ``RIFF AVIX`` chunks."""
    offset = 0
    for _ in range(MAX_BOXES):
        if offset + 8 > size:
            return None
        kind, chunk_size = struct.unpack("<4sI", _read(handle, offset, 8))
        if kind != b"RIFF" or chunk_size in (0, 0xFFFFFFFF):
            return None
        end = offset + 8 + chunk_size
        if end > size:
            return Overrun("AVI", "its RIFF chunk", end, size)
        offset = end + (chunk_size & 1)
    return None
