"""Where an example clip occurs inside a longer video: its frames' small grey thumbnails, correlated
over time (the video counterpart of ``audio_template``). Both are decoded at the same rate
(``recordings.VIDEO_FPS``), so an offset is a whole number of sampled frames; the window search then
scores the proposed span with the model."""

from __future__ import annotations

import numpy as np
from PIL import Image

THUMB = 16


def thumbnails(frames: np.ndarray) -> np.ndarray:
    """(frames, THUMB * THUMB) grey thumbnails of (T, H, W, 3) uint8 frames."""
    return np.stack([np.asarray(Image.fromarray(frame).convert("L").resize((THUMB, THUMB), Image.Resampling.BILINEAR),
                                dtype=np.float64).ravel() for frame in frames])


def match_frames(video: np.ndarray, times: np.ndarray, example: np.ndarray, keep: int = 3) -> list[tuple[float, float]]:
    """(start_s, correlation -1..1) of the best places of ``example``'s frames in ``video``'s (both (T, H, W, 3)
    at one rate; ``times`` the video frames' seconds), best first, none within half the example of a better one."""
    long, short = thumbnails(video), thumbnails(example)
    count = len(short)
    if count > len(long) or count == 0:
        return []
    pattern = (short - short.mean()).ravel()
    norm = float(np.linalg.norm(pattern))
    if norm < 1e-9:
        return []
    scores = np.empty(len(long) - count + 1)
    for offset in range(len(scores)):
        window = long[offset:offset + count].ravel()
        centred = window - window.mean()
        denominator = float(np.linalg.norm(centred)) * norm
        scores[offset] = float(centred @ pattern) / denominator if denominator > 1e-9 else 0.0
    chosen: list[int] = []
    for index in np.argsort(-scores, kind="stable"):
        if all(abs(int(index) - other) >= max(1, count // 2) for other in chosen):
            chosen.append(int(index))
            if len(chosen) == keep:
                break
    return [(float(times[index]), float(scores[index])) for index in chosen]
