"""What a PCM container's header declares, read from its bytes: the check FFmpeg can't make.

FFmpeg's WAV and AIFF demuxers give the duration of the bytes present, not the one the header
declares, so a WAV cut to 40% of its length, or a header claiming 35 hours over one second of
samples, decodes "fine" to exactly what is there (measured, PyAV 18 / FFmpeg 8.1). Here the chunks
are walked by hand: RIFF/RF64 ``WAVE`` (``fmt `` and ``data``, ``ds64`` for sizes over 4 GiB) and
``FORM`` ``AIFF``/``AIFC`` (``COMM`` and ``SSND``), recognised by their magic bytes, whatever the
file is called. ``media`` compares the declared data with what the file holds.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Optional, Union

UNKNOWN_SIZES = (0, 0xFFFFFFFF)
"""Data sizes a writer leaves when it can't seek back to fill them in (a pipe): no declaration."""
MAX_CHUNKS = 64
"""Chunks walked before the data chunk; a header with more is not one we judge."""
_PCM_WAVE_FORMATS = (1, 3, 0xFFFE)  # integer PCM, IEEE float, WAVE_FORMAT_EXTENSIBLE


@dataclass(frozen=True)
class DeclaredData:
    """The audio data a header declares, and how much of it the file holds."""

    container: str  # "WAV", "RF64" or "AIFF"
    declared_bytes: int
    present_bytes: int
    bytes_per_second: float

    @property
    def declared_s(self) -> float:
        return self.declared_bytes / self.bytes_per_second

    @property
    def present_s(self) -> float:
        return min(self.present_bytes, self.declared_bytes) / self.bytes_per_second


def declared_data(source: Union[str, Path, bytes]) -> Optional[DeclaredData]:
    """The declared and present audio data of a WAV, RF64 or AIFF file; None for any other content,
    or a header that declares no usable size (streamed, compressed, malformed)."""
    if isinstance(source, bytes):
        return _read(io.BytesIO(source), len(source))
    with open(source, "rb") as handle:
        return _read(handle, Path(source).stat().st_size)


def _read(handle: BinaryIO, size: int) -> Optional[DeclaredData]:
    head = handle.read(12)
    if len(head) < 12:
        return None
    try:
        if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
            return _wave(handle, size, head[:4] == b"RF64")
        if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
            return _aiff(handle, size, head[8:12] == b"AIFC")
    except struct.error:  # a chunk cut short: nothing declared that we can read
        return None
    return None


def _chunks(handle: BinaryIO, big_endian: bool):  # type: ignore[no-untyped-def]
    """(id, declared size, offset of the body) of each chunk, the handle left at the body."""
    order = ">" if big_endian else "<"
    for _ in range(MAX_CHUNKS):
        header = handle.read(8)
        if len(header) < 8:
            return
        chunk_id, chunk_size = header[:4], struct.unpack(order + "I", header[4:])[0]
        start = handle.tell()
        yield chunk_id, chunk_size, start
        handle.seek(start + chunk_size + (chunk_size & 1))  # bodies are padded to an even length


def _wave(handle: BinaryIO, size: int, rf64: bool) -> Optional[DeclaredData]:
    rate = block = avg = fmt_tag = 0
    long_data = None
    for chunk_id, chunk_size, start in _chunks(handle, big_endian=False):
        if chunk_id == b"ds64":
            long_data = struct.unpack("<QQ", handle.read(16))[1]  # RIFF size, then data size
        elif chunk_id == b"fmt ":
            fmt_tag, _, rate, avg, block = struct.unpack("<HHIIH", handle.read(14))
        elif chunk_id == b"data":
            declared = long_data if rf64 and chunk_size == 0xFFFFFFFF and long_data else chunk_size
            if declared in UNKNOWN_SIZES or not rate:
                return None
            per_second = float(rate * block) if fmt_tag in _PCM_WAVE_FORMATS and block else float(avg)
            if per_second <= 0:
                return None
            return DeclaredData("RF64" if rf64 else "WAV", declared, max(0, size - start), per_second)
    return None


def _aiff(handle: BinaryIO, size: int, compressed_kind: bool) -> Optional[DeclaredData]:
    frames = channels = bits = 0
    rate = 0.0
    for chunk_id, _, start in _chunks(handle, big_endian=True):
        if chunk_id == b"COMM":
            channels, frames, bits = struct.unpack(">hIh", handle.read(8))
            rate = _extended(handle.read(10))
            if compressed_kind and handle.read(4) not in (b"NONE", b"sowt", b"twos", b"raw "):
                return None  # a compressed AIFF-C: bytes don't count frames
        elif chunk_id == b"SSND":
            offset = struct.unpack(">I", handle.read(4))[0]
            frame_bytes = channels * ((bits + 7) // 8)
            if not (frames and frame_bytes and rate > 0):
                return None
            data_start = start + 8 + offset
            return DeclaredData("AIFF", frames * frame_bytes, max(0, size - data_start), rate * frame_bytes)
    return None


def _extended(raw: bytes) -> float:
    """An IEEE 754 80-bit extended float (AIFF's sample rate)."""
    exponent, mantissa = struct.unpack(">HQ", raw)
    sign = -1.0 if exponent & 0x8000 else 1.0
    exponent &= 0x7FFF
    if exponent == 0 and mantissa == 0:
        return 0.0
    return sign * mantissa * 2.0 ** (exponent - 16383 - 63)
