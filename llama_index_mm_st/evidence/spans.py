"""Moments of a recording that match: windows scored by the model, and frame hits merged.

**Windows** (audio, and video embedded whole by a video model): the recording is cut into windows of
``window_s`` seconds (the query example's length when the query is audio or video, else the model's
own window: CLAP reads 10 s), each embedded and scored against the query vector (cosine), in rounds:

1. **coarse**: windows at a stride of half a window (at most ``max_windows``, spread evenly beyond);
2. **refine**: the best window moved by half the last step either way, the step halving each round
   until it is under ``min_step_s``;
3. **extend**: the windows just before and after the span, of the same length, join it while they
   score closer to the best window than to the recording's median window (a long moment is a run of
   windows).

Other coarse windows that pass the same bar and do not overlap the span are further spans.

**Frames** (a video indexed as timestamped frames, for image models): the hit frame's run of
adjacent frames whose scores pass the same bar is its span; each end lies halfway between the last
matching frame and the first one that does not (so it is right to half a frame step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generator, Sequence

import numpy as np

from .crops import cosine

Window = tuple[float, float]


@dataclass(frozen=True)
class WindowSettings:
    max_windows: int = 24
    """Most coarse windows per hit (a long recording's windows are spread over it)."""
    stride: float = 0.5
    """Coarse windows start this fraction of a window apart."""
    beam: int = 2
    """The best this many coarse windows are each refined (one model call per round for all)."""
    min_step_s: float = 0.25
    """Refinement stops when its step is under this."""
    max_extend: int = 8
    """Most windows a span grows by on each side."""
    keep: int = 3
    """Most spans per hit."""
    confirm: float = 0.8
    """A query example found in the recording at this correlation or more is a span as it is."""


def coarse_windows(duration_s: float, window_s: float, max_windows: int, stride: float = 0.5) -> list[Window]:
    """Windows of ``window_s`` at a stride of ``stride`` windows over ``[0, duration_s]`` (the last one
    ends at the end), at most ``max_windows`` of them, evenly spread."""
    if duration_s <= window_s:
        return [(0.0, duration_s)]
    stride = window_s * stride
    count = int(np.ceil((duration_s - window_s) / stride - 1e-9)) + 1
    count = min(count, max_windows)
    last = duration_s - window_s
    starts = [last * i / (count - 1) for i in range(count)] if count > 1 else [0.0]
    return [(round(s, 6), round(s + window_s, 6)) for s in starts]


def _bar(best: float, scores: Sequence[float]) -> float:
    """Closer to the best window than to the median one."""
    return (best + float(np.median(scores))) / 2


SpanSearch = Generator[list[Window], np.ndarray, list[tuple[float, float, float]]]
"""Yields the windows of a round, is sent their vectors; returns (start_s, end_s, score), best first."""


def search_spans(duration_s: float, window_s: float, query: np.ndarray, settings: WindowSettings = WindowSettings(),
                 proposals: Sequence[tuple[float, float]] = ()) -> SpanSearch:
    """The spans of a recording of ``duration_s`` that match ``query``, as the module describes.

    ``proposals``: (start_s, correlation) where the query example itself was found
    (``audio_template.match_offsets``); those at ``settings.confirm`` or more are the spans, each a
    window long and scored by the model, and the search stops there."""
    window_s = min(window_s, duration_s)
    confirmed = [(start, min(start + window_s, duration_s)) for start, correlation in proposals
                 if correlation >= settings.confirm]
    if confirmed:
        scores = cosine((yield confirmed), query)
        return sorted([(a, b, float(s)) for (a, b), s in zip(confirmed, scores)], key=lambda item: -item[2])
    coarse = coarse_windows(duration_s, window_s, settings.max_windows, settings.stride)
    scores = list(cosine((yield coarse), query))
    if len(coarse) == 1:
        return [(coarse[0][0], coarse[0][1], scores[0])]
    order = sorted(range(len(coarse)), key=lambda i: (-scores[i], i))[: max(1, settings.beam)]
    beams = [(coarse[i][0], float(scores[i])) for i in order]
    step = (coarse[1][0] - coarse[0][0]) / 2
    tried = {round(w[0], 6) for w in coarse}
    while step >= settings.min_step_s:
        moves = [[s for s in (start - step, start + step)
                  if 0 <= s <= duration_s - window_s and round(s, 6) not in tried] for start, _ in beams]
        flat = list(dict.fromkeys(round(s, 6) for group in moves for s in group))
        if flat:
            found = dict(zip(flat, cosine((yield [(s, s + window_s) for s in flat]), query)))
            tried.update(flat)
            beams = [max([(start, score)] + [(s, float(found[round(s, 6)])) for s in group], key=lambda b: b[1])
                     for (start, score), group in zip(beams, moves)]
        step /= 2
    start, score = max(beams, key=lambda b: b[1])
    bar = _bar(score, scores)
    span_start, span_end = start, start + window_s
    before_open = after_open = True
    for _ in range(settings.max_extend):
        if not (before_open or after_open):
            break
        nexts = []
        if before_open and span_start > 1e-6:
            nexts.append((max(0.0, span_start - window_s), span_start))
        if after_open and span_end < duration_s - 1e-6:
            nexts.append((span_end, min(duration_s, span_end + window_s)))
        if not nexts:
            break
        found = cosine((yield nexts), query)
        before_open = after_open = False
        for (a, b), value in zip(nexts, found):
            if value >= bar:
                if b <= span_start + 1e-9:
                    span_start, before_open = a, True
                else:
                    span_end, after_open = b, True
    spans = [(span_start, span_end, score)]
    for (a, b), value in sorted(zip(coarse, scores), key=lambda item: -item[1]):
        if len(spans) >= settings.keep:
            break
        if value >= bar and all(b <= s or a >= e for s, e, _ in spans):
            spans.append((a, b, float(value)))
    return spans


def frame_span(times: Sequence[float], scores: Sequence[float], hit: int, duration_s: float | None = None
               ) -> tuple[float, float, float]:
    """The span of the frame hit ``hit`` (an index into ``times``, sorted ascending): its run of
    adjacent frames scoring at least the bar (closer to the hit frame's score than to the video's
    median frame), its ends halfway to the neighbouring frames outside the run. Returns
    (start_s, end_s, best score in the run)."""
    values = np.asarray(scores, dtype=np.float64)
    bar = _bar(float(values[hit]), values) if len(values) > 2 else float(values[hit])
    first = last = hit
    while first > 0 and values[first - 1] >= bar:
        first -= 1
    while last < len(values) - 1 and values[last + 1] >= bar:
        last += 1
    start = (times[first - 1] + times[first]) / 2 if first > 0 else 0.0
    if last < len(times) - 1:
        end = (times[last] + times[last + 1]) / 2
    else:
        step = times[last] - times[last - 1] if last > 0 else 0.0
        end = times[last] + step / 2 if duration_s is None else duration_s
    return float(start), float(max(end, start)), float(values[first:last + 1].max())
