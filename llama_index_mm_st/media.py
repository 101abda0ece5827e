"""Audio and video decoding with limits: files or bytes in, arrays out, never unbounded.

Decoding is PyAV's (``av``: FFmpeg's libraries, bundled in its wheels, so mp3, ogg, m4a, mp4, webm
and mkv decode with no system FFmpeg); resampling is ``soxr``'s, with the steps of transformers'
own ``load_audio`` soundfile path (downmix by the channel mean, ``soxr_hq``, pad or trim to
``ceil(n * rate / source_rate)``), so a file decodes here to the array sentence-transformers would
make of it. Both are optional extras (``[audio]``, ``[video]``); a missing one is a
``MissingDependencyError`` naming the extra.

Why our own checks: a zero-length, truncated or non-media file, a stream longer than the duration
limit or a file over the byte limit fails one item with a ``MediaLoadError`` naming it, before any
large allocation (duration and frame size are read from the container header first). Media are
checked against their own content, as images are: a WAV or AIFF whose header declares more data
than the file holds is named as truncated (``pcm``: FFmpeg only counts the bytes present), and so is
an MP4/MOV, Matroska/WebM or AVI whose structure runs past the end of the file (``containers``), content
that is not audio (or not video, a still image) is refused whatever the file is called, and video
has a frame-size limit (pixels per frame, read from the stream header before any frame is decoded)
and a bound on the bytes of the frames one load decodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, Callable, Sequence, Union

import numpy as np

from .defaults import DEFAULT_MAX_MEDIA_BYTES, DEFAULT_MAX_MEDIA_SECONDS, DEFAULT_MAX_PIXELS, DEFAULT_MAX_VIDEO_DECODED_BYTES
from .containers import overrun
from .errors import MediaLoadError, MissingDependencyError
from .files import file_error_reason, regular_file_size
from .pcm import declared_data

MediaSource = Union[str, Path, bytes]
"""A local path or the bytes of a whole file (URLs are fetched before they get here)."""

AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".ogg", ".m4a", ".opus", ".aac", ".aiff", ".aif", ".aifc"})
VIDEO_SUFFIXES = frozenset({".mp4", ".webm", ".mov", ".mkv", ".m4v", ".avi"})
PROBE_BYTES = 65_536
"""Bytes FFmpeg reads to find stream parameters when opening. Its default (5 MB) made opening a 5-second
WAV cost 31 ms, four times decoding it; 64 KiB costs 6 ms (bench/media.py's files), and every container we
read (WAV, FLAC, MP3, Ogg, MP4/MOV, WebM/MKV) declares its streams in its header."""
TRUNCATED_FRACTION = 0.9
"""Audio that decodes to (or a PCM file that holds) less than this share of the duration its header
declares is truncated."""
STILL_IMAGE_FORMATS = ("image2", "image2pipe")
"""FFmpeg's demuxers of still images, with every ``*_pipe`` one (``jpeg_pipe``, ``png_pipe``...)."""
MAX_CHANNELS = 16
"""A 2-D array with an axis at most this long is (channels, samples) or (samples, channels) audio."""


@dataclass(frozen=True)
class MediaLimits:
    """What a media item may cost (None: no limit): seconds of media, bytes of file, pixels of one
    video frame (the image limit by default: a frame is an image) and bytes of the RGB frames one
    video load decodes."""

    max_duration_s: float | None = DEFAULT_MAX_MEDIA_SECONDS
    max_bytes: int | None = DEFAULT_MAX_MEDIA_BYTES
    max_frame_pixels: int | None = DEFAULT_MAX_PIXELS
    max_decoded_bytes: int | None = DEFAULT_MAX_VIDEO_DECODED_BYTES


@dataclass(frozen=True)
class MediaInfo:
    """What a container header says. Video fields are None for audio and the other way round."""

    kind: str  # "audio" or "video"
    duration_s: float
    sample_rate: int | None = None
    channels: int | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    frames: int | None = None
    has_audio: bool = False
    container: str = ""  # FFmpeg's name of the format it found in the bytes ("wav", "matroska,webm", "jpeg_pipe")

    @property
    def still_image(self) -> bool:
        """A picture, not a video: what FFmpeg's image demuxers read (one frame, no duration)."""
        name = self.container
        return name in STILL_IMAGE_FORMATS or name.endswith("_pipe") or (name == "gif" and (self.frames or 0) <= 1)

    def content(self) -> str:
        """What the bytes hold, in words, for an error that refuses them."""
        if self.still_image:
            return f"a still image ({self.container.removesuffix('_pipe')})"
        if self.kind == "audio":
            return f"audio only ({self.container})"
        return f"a video {'with' if self.has_audio else 'without'} sound ({self.container})"


def _av() -> Any:
    try:
        import av  # noqa: PLC0415 - optional extra
    except ImportError:
        raise MissingDependencyError("av (PyAV)", "audio") from None
    return av


def _soxr() -> Any:
    try:
        import soxr  # noqa: PLC0415 - optional extra
    except ImportError:
        raise MissingDependencyError("soxr", "audio") from None
    return soxr


def damaged_errors() -> tuple[type[BaseException], ...]:
    """What PyAV raises on damaged, truncated or non-media data (FFmpeg errors are ``av.FFmpegError``)."""
    av = _av()
    return (av.FFmpegError, OSError, ValueError, IndexError, EOFError)


def _open(source: MediaSource, label: str, limits: MediaLimits) -> Any:
    """Open a container after the size checks; any failure is a ``MediaLoadError`` naming ``label``."""
    av = _av()
    if isinstance(source, bytes):
        if not source:
            raise MediaLoadError(label, "empty data (zero bytes)")
        size, handle = len(source), BytesIO(source)
    else:
        size = regular_file_size(source, label, MediaLoadError)
        handle = str(source)
    if size == 0:
        raise MediaLoadError(label, "empty file (zero bytes)")
    if limits.max_bytes is not None and size > limits.max_bytes:
        raise MediaLoadError(label, f"{size} bytes is over the limit of {limits.max_bytes}")
    cut = overrun(source)  # before FFmpeg, which opens a cut MP4 (index first) or MKV as a shorter good one
    if cut is not None:
        raise MediaLoadError(label, cut.reason())
    try:
        return av.open(handle, mode="r", metadata_errors="ignore", options={"probesize": str(PROBE_BYTES)})
    except OSError as exc:
        if not isinstance(exc, av.FFmpegError):
            raise MediaLoadError(label, file_error_reason(exc)) from None
        raise MediaLoadError(label, f"not a readable audio or video file ({_reason(exc)})") from None
    except damaged_errors() as exc:
        raise MediaLoadError(label, f"not a readable audio or video file ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    strerror = getattr(exc, "strerror", None)  # FFmpeg's words, without the path repeated
    if isinstance(strerror, str) and strerror:
        return strerror
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _info(container: Any, label: str) -> MediaInfo:
    video = container.streams.video[0] if container.streams.video else None
    audio = container.streams.audio[0] if container.streams.audio else None
    if video is None and audio is None:
        raise MediaLoadError(label, "the file has no audio or video stream")
    duration = _duration(container, video or audio)
    name = str(container.format.name)
    if video is not None:
        rate = video.average_rate or video.guessed_rate
        fps = float(rate) if rate else None
        frames = int(video.frames) if video.frames else (round(duration * fps) if fps and duration else None)
        return MediaInfo("video", duration, width=video.codec_context.width, height=video.codec_context.height,
                         fps=fps, frames=frames, has_audio=audio is not None,
                         sample_rate=audio.rate if audio is not None else None,
                         channels=audio.channels if audio is not None else None, container=name)
    return MediaInfo("audio", duration, sample_rate=int(audio.rate), channels=int(audio.channels), container=name)


def _header(container: Any, source: MediaSource, label: str, limits: MediaLimits) -> MediaInfo:
    """The header, checked: duration limit, and a PCM file's declared data against what it holds."""
    info = _info(container, label)
    _check_duration(info, label, limits)
    if info.kind == "audio":
        _check_declared(source, label)
    return info


def _check_declared(source: MediaSource, label: str) -> None:
    """A WAV/AIFF whose header declares more samples than the file holds: cut short, or a header that lies."""
    declared = declared_data(source)
    if declared is None or declared.present_bytes >= declared.declared_bytes:
        return
    if declared.present_s < TRUNCATED_FRACTION * declared.declared_s - 0.05:
        raise MediaLoadError(label, f"truncated: its {declared.container} header declares {_seconds(declared.declared_s)} "
                                    f"of audio, the file holds {_seconds(declared.present_s)} "
                                    f"({declared.present_bytes} of {declared.declared_bytes} data bytes)")


def _seconds(value: float) -> str:
    if value < 600:
        return f"{value:.2f} s"
    return f"{value:.0f} s ({value / 60:.0f} min)" if value < 7200 else f"{value:.0f} s ({value / 3600:.1f} h)"


def require_kind(info: MediaInfo, kind: str, label: str) -> None:
    """Refuse content that is not ``kind`` ("audio": a sound stream; "video": moving pictures),
    whatever the file is called: a JPEG named ``x.wav`` is a still image, not 0 s of audio."""
    if kind == "audio" and info.kind != "audio" and not info.has_audio:
        raise MediaLoadError(label, f"not audio: the file holds {info.content()}")
    if kind == "video" and (info.kind != "video" or info.still_image):
        raise MediaLoadError(label, f"not a video: the file holds {info.content()}")


def _check_frame_size(info: MediaInfo, label: str, limits: MediaLimits) -> None:
    """The frame-size limit, from the stream header: a frame is an image, with the image limit."""
    pixels = (info.width or 0) * (info.height or 0)
    if limits.max_frame_pixels is not None and pixels > limits.max_frame_pixels:
        raise MediaLoadError(label, f"{info.width}x{info.height} frames ({pixels} pixels) are over the limit of "
                                    f"{limits.max_frame_pixels} pixels per frame")


def _duration(container: Any, stream: Any) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return 0.0


def _check_duration(info: MediaInfo, label: str, limits: MediaLimits) -> None:
    if limits.max_duration_s is not None and info.duration_s > limits.max_duration_s:
        raise MediaLoadError(label, f"{info.duration_s:.1f} s is over the limit of {limits.max_duration_s:g} s")


def probe(source: MediaSource, label: str, limits: MediaLimits = MediaLimits()) -> MediaInfo:
    """Read the header and check it: kind, duration, rates, size, a PCM file's declared data, the
    frame size; no samples or frames decoded."""
    with _open(source, label, limits) as container:
        info = _header(container, source, label, limits)
    if info.kind == "video" and not info.still_image:
        _check_frame_size(info, label, limits)
    return info


# ---------------------------------------------------------------- audio


def load_audio(source: MediaSource, label: str, sampling_rate: int, limits: MediaLimits = MediaLimits()) -> np.ndarray:
    """Decode the first audio stream to mono float32 at ``sampling_rate`` (downmix, then resample)."""
    with _open(source, label, limits) as container:
        info = _header(container, source, label, limits)
        require_kind(info, "audio", label)
        stream = container.streams.audio[0]
        source_rate = int(stream.rate)
        chunks = []
        try:
            for frame in container.decode(stream):
                chunks.append(_planar_float(frame))
        except damaged_errors() as exc:
            raise MediaLoadError(label, f"damaged or truncated audio ({_reason(exc)})") from None
    decoded = sum(chunk.shape[1] for chunk in chunks)
    if not decoded:
        raise MediaLoadError(label, "no audio samples (empty or truncated stream)")
    if info.duration_s > 0 and decoded / source_rate < TRUNCATED_FRACTION * info.duration_s - 0.05:
        raise MediaLoadError(label, f"truncated: the header says {info.duration_s:.2f} s, "
                                    f"{decoded / source_rate:.2f} s decode")
    waveform = np.concatenate(chunks, axis=1)
    mono = waveform.mean(axis=0) if waveform.shape[0] > 1 else waveform[0]
    return resample(mono, source_rate, sampling_rate)


def _planar_float(frame: Any) -> np.ndarray:
    """One decoded audio frame as float32 (channels, samples), whatever its sample format."""
    array = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if not frame.format.is_planar:
        array = array.reshape(-1, channels).T
    kind = frame.format.name.rstrip("p")
    if kind in ("flt", "dbl"):
        return array.astype(np.float32, copy=False)
    scale = {"u8": 128.0, "s16": 32768.0, "s32": 2147483648.0, "s64": 9223372036854775808.0}[kind]
    offset = 128.0 if kind == "u8" else 0.0
    return ((array.astype(np.float64) - offset) / scale).astype(np.float32)


def resample(waveform: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Mono float32 at ``target_rate``: soxr "HQ", padded or trimmed as transformers' ``load_audio`` does."""
    if source_rate == target_rate:
        return np.ascontiguousarray(waveform, dtype=np.float32)
    if source_rate <= 0:
        raise ValueError(f"sampling rate must be positive, got {source_rate}")
    samples = math.ceil(waveform.shape[-1] * target_rate / source_rate)
    out = _soxr().resample(np.asarray(waveform, dtype=np.float32), source_rate, target_rate, quality="soxr_hq")
    out = np.pad(out, (0, max(0, samples - len(out))))[:samples]
    return np.ascontiguousarray(out, dtype=np.float32)


def mono_array(array: Any, label: str) -> np.ndarray:
    """A caller's waveform as mono float32: 1-D as it is; 2-D (channels, samples) or (samples, channels)
    with at most ``MAX_CHANNELS`` channels averaged. Anything else is refused with its shape, never
    passed on (a 2-D array handed to a feature extractor as is once tried to allocate 34 GiB)."""
    array = np.asarray(array)
    if array.dtype.kind not in "fiu" or array.size == 0:
        raise MediaLoadError(label, f"audio array of dtype {array.dtype} and size {array.size} is not a waveform")
    if array.ndim == 2 and min(array.shape) <= MAX_CHANNELS and max(array.shape) > MAX_CHANNELS:
        axis = 0 if array.shape[0] <= array.shape[1] else 1
        array = array.mean(axis=axis)
    if array.ndim != 1:
        raise MediaLoadError(
            label, f"audio array of shape {array.shape} is not mono (samples,) or (channels, samples) with at "
            f"most {MAX_CHANNELS} channels")
    if array.dtype.kind in "iu":
        raise MediaLoadError(label, f"audio array dtype {array.dtype}: pass float samples in [-1, 1]")
    if not np.isfinite(array).all():
        raise MediaLoadError(label, "audio array has NaN or infinite samples")
    return np.ascontiguousarray(array, dtype=np.float32)


# ---------------------------------------------------------------- video

IndexChooser = Callable[[MediaInfo], Sequence[int]]
"""Which frame indices to keep, given the header (a model's own sampler, or a fixed rate)."""


@dataclass(frozen=True)
class VideoFrames:
    """Decoded RGB frames (T, H, W, 3) uint8, the indices they had in the stream, and the header."""

    frames: np.ndarray
    indices: list[int]
    info: MediaInfo

    def metadata(self) -> dict[str, Any]:
        """The ``video_metadata`` a transformers video processor reads (fps, totals, which frames)."""
        return {"fps": self.info.fps, "total_num_frames": self.info.frames, "duration": self.info.duration_s,
                "frames_indices": list(self.indices), "height": self.info.height, "width": self.info.width}


def load_video(source: MediaSource, label: str, choose: IndexChooser | None = None,
               limits: MediaLimits = MediaLimits(), max_frames: int = 2048) -> VideoFrames:
    """Decode the frames ``choose`` picks (all when None, at most ``max_frames``), in stream order.

    Frames not picked are decoded (codecs need them) but never converted to RGB, which is most of the
    per-frame cost. The frame count of a stream that does not declare one comes from its duration.
    """
    with _open(source, label, limits) as container:
        info = _header(container, source, label, limits)
        require_kind(info, "video", label)
        _check_frame_size(info, label, limits)
        wanted = sorted({int(i) for i in choose(info)}) if choose is not None else None
        if wanted is not None and not wanted:
            raise MediaLoadError(label, "no frames to sample (zero-length video)")
        if wanted is None and info.frames is not None and info.frames > max_frames:
            raise MediaLoadError(label, f"{info.frames} frames is over the limit of {max_frames}")
        _check_decoded_bytes(info, len(wanted) if wanted is not None else min(info.frames or 1, max_frames),
                             label, limits)
        frames, indices = _decode_frames(container, label, wanted, max_frames, limits)
    if not frames:
        raise MediaLoadError(label, "no decodable video frames (empty or truncated stream)")
    if wanted is not None and len(frames) < len(wanted):
        # The header promised more frames than the stream holds: keep the last one for the missing
        # picks, as a decoder that seeks past the end would, and say so only if nothing decoded.
        frames += [frames[-1]] * (len(wanted) - len(frames))
        indices = list(wanted)
    return VideoFrames(np.stack(frames), indices, info)


def _check_decoded_bytes(info: MediaInfo, count: int, label: str, limits: MediaLimits) -> None:
    """The bound on decoded frames, before decoding: ``count`` RGB frames of the header's size."""
    needed = count * (info.width or 0) * (info.height or 0) * 3
    if limits.max_decoded_bytes is not None and needed > limits.max_decoded_bytes:
        raise MediaLoadError(label, f"{count} frames of {info.width}x{info.height} would decode to {needed} bytes, "
                                    f"over the limit of {limits.max_decoded_bytes}")


def _decode_frames(container: Any, label: str, wanted: list[int] | None, max_frames: int,
                   limits: MediaLimits) -> tuple[list[np.ndarray], list[int]]:
    keep = set(wanted) if wanted is not None else None
    last = wanted[-1] if wanted is not None else None
    frames: list[np.ndarray] = []
    indices: list[int] = []
    decoded = 0
    try:
        for index, frame in enumerate(container.decode(video=0)):
            if last is not None and index > last:
                break
            if keep is None or index in keep:
                if len(frames) >= max_frames:
                    raise MediaLoadError(label, f"more than {max_frames} frames")
                # A stream may change size after its header: each frame is checked before its RGB copy.
                pixels = frame.width * frame.height
                decoded += 3 * pixels
                if limits.max_frame_pixels is not None and pixels > limits.max_frame_pixels:
                    raise MediaLoadError(label, f"frame {index} is {frame.width}x{frame.height}, over the limit of "
                                                f"{limits.max_frame_pixels} pixels per frame")
                if limits.max_decoded_bytes is not None and decoded > limits.max_decoded_bytes:
                    raise MediaLoadError(label, f"its frames decode to more than {limits.max_decoded_bytes} bytes")
                frames.append(frame.to_ndarray(format="rgb24"))
                indices.append(index)
    except MediaLoadError:
        raise  # a limit, not damage (it is a ValueError too)
    except damaged_errors() as exc:
        if not frames:
            raise MediaLoadError(label, f"damaged or truncated video ({_reason(exc)})") from None
        # A damaged tail after good frames: the frames before it are the video we have.
    return frames, indices


def frame_times(info: MediaInfo, every_s: float, max_frames: int) -> list[float]:
    """Timestamps of frames sampled every ``every_s`` seconds from 0 (at least one; at most ``max_frames``,
    spread over the whole video when more would be due)."""
    if every_s <= 0:
        raise ValueError(f"frame interval must be positive, got {every_s}")
    count = max(1, min(max_frames, math.ceil(info.duration_s / every_s - 1e-9)))  # times before the end
    if count == max_frames and info.duration_s > every_s * (max_frames - 1):
        return [info.duration_s * i / max_frames for i in range(count)]
    return [round(i * every_s, 6) for i in range(count)]


def time_to_index(info: MediaInfo, seconds: float) -> int:
    """The index of the frame shown at ``seconds`` (clamped to the stream)."""
    fps = info.fps or 1.0
    last = (info.frames or 1) - 1
    return max(0, min(last, int(math.floor(seconds * fps + 1e-6))))


def load_frame(source: MediaSource, label: str, seconds: float, limits: MediaLimits = MediaLimits()) -> np.ndarray:
    """One RGB frame (H, W, 3) uint8: the frame shown at ``seconds``."""
    clip = load_video(source, label, lambda info: [time_to_index(info, seconds)], limits)
    return clip.frames[0]
