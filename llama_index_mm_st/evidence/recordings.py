"""Audio and video hits as windows a model can embed: decoded once per hit, cut per window.

The window length is the query example's own length when the query is a recording of the hit's
kind (query by example: a window the size of what is looked for), else the model's window (its
feature extractor's ``max_length_s``: CLAP reads 10 s), else ``DEFAULT_WINDOW_S``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ..fetch import FetchOptions
from ..media import MediaLimits, time_to_index
from ..media_refs import MediaRef
from ..types import MediaKind

DEFAULT_WINDOW_S: dict[MediaKind, float] = {"audio": 10.0, "video": 5.0}
DEFAULT_SAMPLING_RATE = 16_000
"""Audio is decoded at the model's rate, or this one for a model that does not say (a remote one)."""
VIDEO_FPS = 2.0
"""Frames per second a video hit is decoded at for its windows (fewer for a long one)."""
MAX_VIDEO_FRAMES = 240
"""Most frames decoded per video hit."""
MIN_CLIP_FRAMES = 2


def local_model(embedding: Any) -> Any:
    """An in-process embedding's sentence-transformers model (None for a remote one)."""
    model = getattr(embedding, "model", None)
    return model if hasattr(model, "preprocess") and hasattr(model, "__getitem__") else None


def model_processor(embedding: Any) -> Any:
    """The processor of an in-process embedding's model (None for a remote one)."""
    model = local_model(embedding)
    return getattr(model[0], "processor", None) if model is not None else None


def model_sampling_rate(embedding: Any) -> Optional[int]:
    from ..media_refs import processor_sampling_rate

    processor = model_processor(embedding)
    return processor_sampling_rate(processor) if processor is not None else None


def model_window_s(embedding: Any, kind: MediaKind) -> Optional[float]:
    """The length of audio the model reads at once (its feature extractor's ``max_length_s``)."""
    if kind != "audio":
        return None
    extractor = getattr(model_processor(embedding), "feature_extractor", None)
    seconds = getattr(extractor, "max_length_s", None)
    if isinstance(seconds, (int, float)) and seconds > 0:
        return float(seconds)
    samples, rate = getattr(extractor, "nb_max_samples", None), getattr(extractor, "sampling_rate", None)
    if isinstance(samples, int) and isinstance(rate, (int, float)) and samples > 0 and rate > 0:
        return samples / rate
    return None


@dataclass(frozen=True)
class AudioTrack:
    """A decoded audio hit: mono samples at ``rate``."""

    samples: np.ndarray
    rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.rate

    def window(self, start_s: float, end_s: float) -> dict[str, Any]:
        """The window as an embedding input (``{"array", "sampling_rate"}``)."""
        first, last = int(round(start_s * self.rate)), int(round(end_s * self.rate))
        return {"array": self.samples[first:max(last, first + 1)], "sampling_rate": self.rate}


@dataclass(frozen=True)
class VideoTrack:
    """A decoded video hit: frames at ``times`` (seconds), and the video's duration."""

    frames: np.ndarray
    times: np.ndarray
    duration_s: float
    fps: float

    def window(self, start_s: float, end_s: float) -> dict[str, Any]:
        """The frames in ``[start_s, end_s)`` as an embedding input (``{"array", "fps"}``), at least two."""
        inside = np.nonzero((self.times >= start_s - 1e-6) & (self.times < end_s - 1e-6))[0]
        if len(inside) < MIN_CLIP_FRAMES:
            centre = (start_s + end_s) / 2
            nearest = np.argsort(np.abs(self.times - centre), kind="stable")[:MIN_CLIP_FRAMES]
            inside = np.sort(nearest)
        return {"array": self.frames[inside], "fps": self.fps}


def load_audio_track(ref: MediaRef, rate: int, fetch: FetchOptions, limits: MediaLimits = MediaLimits()) -> AudioTrack:
    return AudioTrack(ref.load_audio(rate, fetch, limits), rate)


def load_video_track(ref: MediaRef, fetch: FetchOptions, limits: MediaLimits = MediaLimits()) -> VideoTrack:
    """The video at ``VIDEO_FPS`` (at most ``MAX_VIDEO_FRAMES`` frames, spread over it)."""
    chosen: dict[str, Any] = {}

    def choose(info: Any) -> list[int]:
        duration = max(float(info.duration_s or 0.0), 1e-3)
        count = max(MIN_CLIP_FRAMES, min(MAX_VIDEO_FRAMES, int(np.ceil(duration * VIDEO_FPS))))
        times = [duration * i / count for i in range(count)]
        chosen["duration"], chosen["fps"] = duration, count / duration
        return [time_to_index(info, t) for t in times]

    clip = ref.load_video(choose, fetch, limits)
    fps = clip.info.fps or 1.0
    times = np.array([index / fps for index in clip.indices], dtype=np.float64)
    return VideoTrack(clip.frames, times, float(chosen.get("duration", clip.info.duration_s)), float(chosen.get("fps", fps)))


def recording_length_s(ref: MediaRef, fetch: FetchOptions) -> float:
    """A query example's length in seconds (decoded at a low rate for audio; read from the header for video)."""
    if ref.kind == "audio":
        return len(ref.load_audio(DEFAULT_SAMPLING_RATE, fetch)) / DEFAULT_SAMPLING_RATE
    return float(ref.load_video(lambda info: [0], fetch).info.duration_s)
