"""Audio and video references, read from caller inputs and nodes, loaded only when asked.

A ``MediaRef`` is to audio and video what ``inputs.ImageRef`` is to images: a label for errors and
an undecoded source (a path, an http(s) URL, the bytes of a file, or an in-memory waveform or frame
stack). Where a node keeps its media:

- LlamaIndex 0.14's ``Document.audio_resource`` / ``video_resource`` (path, URL or base64 data);
- the metadata keys ``audio_path``/``audio_url``/``video_path``/``video_url``, which is how the store
  keeps a media node (LlamaIndex reads a stored ``Document`` back as a plain ``TextNode``).

A sampled video frame is an image: a node whose image path (or URL) is a video and whose metadata has
``FRAME_TIME_KEY`` (seconds). ``VideoFrame`` is its undecoded source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Union

import numpy as np
from llama_index.core.schema import BaseNode

from .errors import ImageLoadError, MediaLoadError
from .inline import decode_base64, short_label
from .fetch import FetchOptions, fetch_bytes, url_of
from .media import IndexChooser, MediaLimits, VideoFrames, load_audio, load_frame, load_video, mono_array
from .types import MediaKind

FRAME_TIME_KEY = "frame_time_s"
"""Metadata key of a video frame node: the time of the frame in its video, in seconds."""
MEDIA_PATH_KEYS: Mapping[MediaKind, tuple[str, str]] = {
    "audio": ("audio_path", "audio_url"),
    "video": ("video_path", "video_url"),
}
"""Metadata keys (path, URL) through which a stored node keeps its media."""


@dataclass(frozen=True)
class AudioArray:
    """A waveform in memory and its sampling rate (Hz)."""

    array: Any = field(repr=False)
    sampling_rate: int


@dataclass(frozen=True)
class VideoArray:
    """Frames in memory (T, H, W, 3) uint8 and their rate (frames per second)."""

    frames: Any = field(repr=False)
    fps: float


@dataclass(frozen=True)
class VideoFrame:
    """The frame of a video (path or URL) at ``seconds``."""

    video: str
    seconds: float


@dataclass(frozen=True)
class InlineMedia:
    """A ``data:`` URI's base64 payload, decoded only when the item is loaded (a bad one fails that item)."""

    payload: str = field(repr=False)


MediaSourceValue = Union[str, Path, bytes, AudioArray, VideoArray, InlineMedia]


@dataclass(frozen=True)
class MediaRef:
    """One audio or video item, not yet decoded; ``label`` names it in errors."""

    kind: MediaKind
    label: str
    source: MediaSourceValue = field(compare=False)

    def _file(self, fetch: FetchOptions) -> Union[str, Path, bytes]:
        source = self.source
        if isinstance(source, InlineMedia):
            return decode_base64(source.payload, self.label, MediaLoadError)
        url = url_of(source, self.label, MediaLoadError)
        if url is not None:
            try:
                return fetch_bytes(url, fetch)
            except ImageLoadError as exc:  # the URL policy speaks of images; the reason holds for media
                raise MediaLoadError(self.label, exc.reason.replace("images", "media")) from None
        if isinstance(source, (AudioArray, VideoArray)):
            raise MediaLoadError(self.label, f"an in-memory {type(source).__name__} is not a file")
        return source

    def load_audio(self, sampling_rate: int, fetch: FetchOptions = FetchOptions(),
                   limits: MediaLimits = MediaLimits()) -> np.ndarray:
        """Mono float32 at ``sampling_rate``: decoded and resampled, or a caller's array checked and resampled."""
        from .media import resample

        if isinstance(self.source, AudioArray):
            wave = mono_array(self.source.array, self.label)
            rate = int(self.source.sampling_rate)
            if limits.max_duration_s is not None and len(wave) / rate > limits.max_duration_s:
                raise MediaLoadError(self.label, f"{len(wave) / rate:.1f} s is over the limit of "
                                                 f"{limits.max_duration_s:g} s")
            return resample(wave, rate, sampling_rate)
        if isinstance(self.source, VideoArray):
            raise MediaLoadError(self.label, "a frame array is video, not audio")
        return load_audio(self._file(fetch), self.label, sampling_rate, limits)

    def load_video(self, choose: IndexChooser | None = None, fetch: FetchOptions = FetchOptions(),
                   limits: MediaLimits = MediaLimits()) -> VideoFrames:
        """The frames ``choose`` picks (see ``media.load_video``), with the stream's header."""
        if isinstance(self.source, VideoArray):
            return _frames_from_array(self.source, self.label, choose)
        if isinstance(self.source, AudioArray):
            raise MediaLoadError(self.label, "a waveform is audio, not video")
        return load_video(self._file(fetch), self.label, choose, limits)


def _frames_from_array(source: VideoArray, label: str, choose: IndexChooser | None) -> VideoFrames:
    from .media import MediaInfo

    frames = np.asarray(source.frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
        raise MediaLoadError(label, f"video array of shape {frames.shape} and dtype {frames.dtype} is not "
                                    "(frames, height, width, 3) uint8")
    if not source.fps or source.fps <= 0:
        raise MediaLoadError(label, f"video fps must be positive, got {source.fps}")
    info = MediaInfo("video", len(frames) / source.fps, width=frames.shape[2], height=frames.shape[1],
                     fps=float(source.fps), frames=len(frames))
    indices = sorted({min(int(i), len(frames) - 1) for i in choose(info)}) if choose else list(range(len(frames)))
    return VideoFrames(frames[indices], indices, info)


def read_frame_pixels(frame: VideoFrame, label: str, fetch: FetchOptions) -> np.ndarray:
    """Decode one video frame; failures are ``ImageLoadError``s (a frame is an image to its callers)."""
    try:
        ref = MediaRef("video", label, url_of(frame.video, label, MediaLoadError) or Path(frame.video))
        source = ref._file(fetch)
        return load_frame(source, label, frame.seconds)
    except MediaLoadError as exc:
        raise ImageLoadError(label, exc.reason) from None


def _resource(node: BaseNode, kind: MediaKind) -> Any:
    return node.__dict__.get(f"{kind}_resource")


def node_media_ref(node: BaseNode) -> MediaRef | None:
    """The audio or video of a node (resource field first, then the store's metadata keys), or None."""
    label = f"node {node.node_id}"
    for kind in ("video", "audio"):
        resource = _resource(node, kind)  # type: ignore[arg-type]
        if resource is not None and (resource.data or resource.path or resource.url):
            if resource.data:
                return MediaRef(kind, f"{label} (inline base64)", decode_base64(resource.data, label, MediaLoadError))  # type: ignore[arg-type]
            if resource.path:
                return MediaRef(kind, str(resource.path), Path(resource.path))  # type: ignore[arg-type]
            return MediaRef(kind, short_label(str(resource.url)), str(resource.url))  # type: ignore[arg-type]
    for kind, (path_key, url_key) in MEDIA_PATH_KEYS.items():
        path, url = node.metadata.get(path_key), node.metadata.get(url_key)
        if isinstance(path, str) and path:
            return MediaRef(kind, path, Path(path))
        if isinstance(url, str) and url:
            return MediaRef(kind, short_label(url), url)
    return None


def media_input(kind: MediaKind, item: Any, position: int) -> MediaRef:
    """Resolve one caller input of ``kind``. ``position`` labels anonymous inputs (bytes, arrays)."""
    where = f"at position {position}"
    if isinstance(item, BaseNode):
        ref = node_media_ref(item)
        if ref is None or ref.kind != kind:
            raise MediaLoadError(f"node {item.node_id} ({where})", f"the node has no {kind}")
        return ref
    if isinstance(item, Path):
        return MediaRef(kind, str(item), item)
    if isinstance(item, str) and item.startswith("data:"):
        header, _, payload = item.partition(",")
        label = f"{kind} data URI {where}"
        if not header.endswith(";base64"):
            raise MediaLoadError(label, "only base64 data: URIs are supported")
        return MediaRef(kind, label, InlineMedia(payload))
    if isinstance(item, str):
        return MediaRef(kind, short_label(item), item)
    if isinstance(item, (bytes, bytearray, memoryview)):
        return MediaRef(kind, f"{kind} bytes {where}", bytes(item))
    if isinstance(item, dict):
        return MediaRef(kind, f"{kind} array {where}", _array_input(kind, item, where))
    if isinstance(item, np.ndarray) or type(item).__name__ == "Tensor":
        need = '{"array": waveform, "sampling_rate": hz}' if kind == "audio" else '{"array": frames, "fps": rate}'
        raise MediaLoadError(f"{kind} array {where}", f"a bare array has no rate; pass {need}")
    raise TypeError(f"{kind} input {where} has type {type(item).__name__}; accepted: {MEDIA_TYPES_HELP[kind]}")


MEDIA_TYPES_HELP: Mapping[MediaKind, str] = {
    "audio": 'a file path (str or Path), an http(s) URL (with allow_urls=True), a base64 data: URI, bytes of a file, '
             '{"array": waveform, "sampling_rate": hz}, or a node with an audio_resource',
    "video": 'a file path (str or Path), an http(s) URL (with allow_urls=True), a base64 data: URI, bytes of a file, '
             '{"array": frames (T, H, W, 3) uint8, "fps": rate}, or a node with a video_resource',
}


def _array_input(kind: MediaKind, item: Mapping[str, Any], where: str) -> Union[AudioArray, VideoArray]:
    rate_key = "sampling_rate" if kind == "audio" else "fps"
    unknown = set(item) - {"array", rate_key}
    if unknown or "array" not in item or rate_key not in item:
        raise TypeError(f"{kind} input {where} must have exactly the keys 'array' and '{rate_key}'; got {sorted(item)}")
    array = item["array"]
    if hasattr(array, "detach"):  # a torch tensor
        array = array.detach().cpu().numpy()
    if kind == "audio":
        return AudioArray(array, int(item[rate_key]))
    return VideoArray(array, float(item[rate_key]))




def media_resource_of(node: BaseNode) -> tuple[MediaKind, Any] | None:
    """(kind, resource) of a node's ``video_resource`` or ``audio_resource`` field, or None."""
    for kind in ("video", "audio"):
        resource = _resource(node, kind)  # type: ignore[arg-type]
        if resource is not None and (resource.data or resource.path or resource.url):
            return kind, resource  # type: ignore[return-value]
    return None


def to_media_node(node: BaseNode, relationships: Any = None) -> BaseNode:
    """The ``TextNode`` a store keeps for a node whose media is in a resource field: the path or URL moves
    to the metadata keys of ``MEDIA_PATH_KEYS`` (LlamaIndex reads a stored ``Document`` back as a
    ``TextNode`` and would lose the field). Inline media data is refused: a store keeps references."""
    from llama_index.core.schema import MetadataMode, TextNode

    found = media_resource_of(node)
    if found is None:
        return node
    kind, resource = found
    path_key, url_key = MEDIA_PATH_KEYS[kind]
    if not (resource.path or resource.url):
        raise ValueError(f"node {node.node_id}: its {kind} is inline data; a store keeps media by path or URL")
    metadata = dict(node.metadata)
    key, value = (path_key, str(resource.path)) if resource.path else (url_key, str(resource.url))
    metadata[key] = value
    hidden = [k for k in (key,) if k not in node.excluded_embed_metadata_keys]
    return TextNode(
        id_=node.id_, text=node.get_content(metadata_mode=MetadataMode.NONE), embedding=node.embedding,
        metadata=metadata,
        excluded_embed_metadata_keys=list(node.excluded_embed_metadata_keys) + hidden,
        excluded_llm_metadata_keys=list(node.excluded_llm_metadata_keys)
        + [k for k in (key,) if k not in node.excluded_llm_metadata_keys],
        relationships=dict(node.relationships) if relationships is None else relationships,
        metadata_template=node.metadata_template, metadata_separator=node.metadata_separator,
    )


def processor_sampling_rate(processor: Any) -> int | None:
    """The rate (Hz) a model's feature extractor expects audio at (CLAP: 48 kHz), if it has one."""
    extractor = getattr(processor, "feature_extractor", processor)
    rate = getattr(extractor, "sampling_rate", None)
    return int(rate) if isinstance(rate, (int, float)) and rate > 0 else None


def processor_frame_chooser(processor: Any) -> IndexChooser | None:
    """Which frames of a video a model's video processor would keep, asked of the processor itself (its
    ``sample_frames``, with its own fps and frame limits), so only those frames are decoded. The frames
    then go to the processor with ``do_sample_frames=False`` and metadata naming their indices, which
    gives the processor's own result (the parity tests check it). None when it keeps every frame."""
    video_processor = getattr(processor, "video_processor", None)
    if video_processor is None or not getattr(video_processor, "do_sample_frames", False):
        return None
    from transformers.video_utils import VideoMetadata

    def choose(info: Any) -> list[int]:
        metadata = VideoMetadata(total_num_frames=int(info.frames or 1), fps=info.fps, duration=info.duration_s,
                                 width=info.width, height=info.height)
        return [int(i) for i in video_processor.sample_frames(metadata)]

    return choose


def media_model_input(ref: MediaRef, sampling_rate: int | None, choose: IndexChooser | None,
                      fetch: FetchOptions = FetchOptions(), limits: MediaLimits = MediaLimits()) -> dict[str, Any]:
    """One media item as sentence-transformers takes it: ``{"array", "sampling_rate"}`` for audio (mono at
    the model's rate), ``{"array", "video_metadata"}`` for video (the chosen frames and which they are)."""
    if ref.kind == "audio":
        rate = sampling_rate or 16000
        return {"array": ref.load_audio(rate, fetch, limits), "sampling_rate": rate}
    clip = ref.load_video(choose, fetch, limits)
    return {"array": clip.frames, "video_metadata": clip.metadata()}
