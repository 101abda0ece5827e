"""Items as they travel to a server: text as it is, media as ``data:`` URIs (or URLs, passed on as they are).

The items are read by the library's own rules (``inputs.py``: ``image_ref``, ``read_node``,
``media_refs.media_input``), so a remote embedding takes exactly what ``MultimodalEmbedding`` takes.
Files go as their own bytes (the server decodes the same JPEG, EXIF included, so the vector is the
in-process one); in-memory pixels (PIL images, arrays, a video frame) go as lossless PNG; a waveform as
float32 WAV. A file that can't be read fails here with the same ``ImageLoadError``/``MediaLoadError``
an in-process embedding would raise, naming it.
"""

from __future__ import annotations

import base64
import struct
from io import BytesIO
from pathlib import Path
from typing import Union

import numpy as np

from ..errors import ImageLoadError, ItemError, MediaLoadError
from ..fetch import url_of
from ..files import file_error_reason, regular_file_size
from ..inline import decode_base64
from ..inputs import Base64Data, ImageRef, Parts
from ..media_refs import AudioArray, MediaRef, VideoArray

MAGIC = ((b"\x89PNG", "image/png"), (b"\xff\xd8", "image/jpeg"), (b"GIF8", "image/gif"), (b"BM", "image/bmp"),
         (b"II*\x00", "image/tiff"), (b"MM\x00*", "image/tiff"))
"""Leading bytes of the common image formats, for the data URI's declared type (servers decode by content)."""


def data_uri(data: bytes, mimetype: str) -> str:
    return f"data:{mimetype};base64,{base64.b64encode(data).decode('ascii')}"


def _sniff(data: bytes, default: str) -> str:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for magic, kind in MAGIC if data.startswith(magic)), default)


def _read_file(path: Union[str, Path], label: str, error: type[ItemError]) -> bytes:
    regular_file_size(path, label, error)
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise error(label, file_error_reason(exc)) from None


def image_value(ref: ImageRef) -> str:
    """A data: URI of the image's own bytes (a file, bytes, inline base64), a URL as given, or a lossless
    PNG of in-memory pixels."""
    source = ref.source
    url = url_of(source, ref.label)
    if url is not None:
        return url
    if isinstance(source, (str, Path)):
        data = _read_file(source, ref.label, ImageLoadError)
    elif isinstance(source, Base64Data):
        data = decode_base64(source.payload, ref.label, ImageLoadError)
    elif isinstance(source, bytes):
        data = source
    else:  # a PIL image, an array or a video frame: the pixels the library would decode, sent without loss
        buffer = BytesIO()
        ref.load().save(buffer, format="PNG")
        return data_uri(buffer.getvalue(), "image/png")
    if not data:
        raise ImageLoadError(ref.label, "empty data (zero bytes)")
    return data_uri(data, _sniff(data, "image/png"))


def media_value(ref: MediaRef) -> str:
    """A data: URI of an audio or video file's bytes, a URL as given, or a waveform as float32 WAV."""
    source = ref.source
    url = url_of(source, ref.label, MediaLoadError)
    if url is not None:
        return url
    if isinstance(source, AudioArray):
        return data_uri(float_wav(source.array, int(source.sampling_rate), ref.label), "audio/wav")
    if isinstance(source, VideoArray):
        raise MediaLoadError(ref.label, "in-memory video frames are not sent to a server; pass the video file")
    data = _read_file(source, ref.label, MediaLoadError) if isinstance(source, (str, Path)) else source
    if not data:
        raise MediaLoadError(ref.label, "empty data (zero bytes)")
    return data_uri(data, f"{ref.kind}/*")


def parts_value(parts: Parts) -> str:
    """The wire value of one single-modality item (text, image, audio or video)."""
    if parts.media is not None:
        return media_value(parts.media)
    if parts.image is not None:
        return image_value(parts.image)
    return parts.text or ""


def float_wav(array: object, sampling_rate: int, label: str) -> bytes:
    """A mono WAV file (IEEE float32) of a waveform, made mono by the library's own rule (``media.mono_array``),
    so the server decodes exactly the samples an in-process embedding would use."""
    from ..media import mono_array

    wave = mono_array(array, label)
    channels = 1
    payload = np.ascontiguousarray(wave, dtype="<f4").tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + len(payload)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 3, channels, sampling_rate, sampling_rate * channels * 4,
                                    channels * 4, 32)
    return header + b"data" + struct.pack("<I", len(payload)) + payload
