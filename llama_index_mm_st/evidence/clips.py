"""Evidence as files: each region cut out of its image or page (PNG), each span cut out of its recording
(WAV for audio, MP4 for video). ``mmst search --evidence --crops DIR`` writes them and names them.

Names are ``<prefix>-region<n>.png`` and ``<prefix>-span<n>.wav|.mp4`` (n from 1, per hit), so a
listing sorts by rank. Passages have no file (they are quoted in the output).
"""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
from PIL import Image

from ..fetch import FetchOptions
from ..inputs import read_node
from ..media import time_to_index
from .kinds import Evidence, Region, Span

AUDIO_RATE = 16_000
"""Clips of audio are written at this rate (mono, 16-bit PCM)."""


def region_image(image: Image.Image, region: Region) -> Image.Image:
    """The pixels of ``region`` of ``image``."""
    return image.crop(region.pixels(*image.size))


def write_clips(node: Any, evidence: Sequence[Evidence], folder: Union[str, Path], prefix: str,
                fetch: FetchOptions = FetchOptions()) -> list[Optional[Path]]:
    """Write each region and span of ``node``'s evidence into ``folder``; the path of each (None for a
    passage, or a piece whose image or recording could not be read), in the evidence's order."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    parts = read_node(node)
    image: Optional[Image.Image] = None
    paths: list[Optional[Path]] = []
    regions = spans = 0
    for piece in evidence:
        if isinstance(piece, Region) and parts.image is not None:
            if image is None:
                image = parts.image.load(fetch=fetch)
            regions += 1
            path = folder / f"{prefix}-region{regions}.png"
            region_image(image, piece).save(path)
            paths.append(path)
        elif isinstance(piece, Span):
            spans += 1
            paths.append(_write_span(node, parts, piece, folder / f"{prefix}-span{spans}", fetch))
        else:
            paths.append(None)
    return paths


def _write_span(node: Any, parts: Any, span: Span, stem: Path, fetch: FetchOptions) -> Optional[Path]:
    media = parts.media
    if media is None and parts.image is not None:  # a video frame: its video
        from ..media_refs import MediaRef

        video = getattr(node, "image_path", None) or node.metadata.get("file_path")
        media = MediaRef("video", str(video), Path(video)) if video else None
    if media is None:
        return None
    if media.kind == "audio":
        samples = media.load_audio(AUDIO_RATE, fetch)
        first, last = int(span.start_s * AUDIO_RATE), int(np.ceil(span.end_s * AUDIO_RATE))
        return write_wav(stem.with_suffix(".wav"), samples[first:last], AUDIO_RATE)
    return write_video_clip(stem.with_suffix(".mp4"), media, span, fetch)


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """Mono float samples in [-1, 1] as 16-bit PCM WAV (the standard library's writer)."""
    pcm = (np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return path


def write_video_clip(path: Path, media: Any, span: Span, fetch: FetchOptions) -> Path:
    """The frames of ``span`` re-encoded as an MP4 (H.264, at the video's own rate)."""
    import av

    clip = media.load_video(lambda info: range(time_to_index(info, span.start_s),
                                               max(time_to_index(info, span.end_s), time_to_index(info, span.start_s) + 1)),
                            fetch)
    fps = int(round(clip.info.fps or 10)) or 10
    frames = clip.frames
    height, width = frames.shape[1] - frames.shape[1] % 2, frames.shape[2] - frames.shape[2] % 2  # yuv420p: even sides
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array[:height, :width]), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path
