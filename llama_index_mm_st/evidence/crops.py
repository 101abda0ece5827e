"""Regions of an image for single-vector image models (CLIP, SigLIP, VLM embedders): crops, re-embedded.

A single-vector model says how well a whole image matches; to say *where*, crops of the hit are
embedded with the same model and scored against the query vector (cosine). The search is coarse to
fine, in rounds, so the crops of every hit go to the model in one batch per round:

1. **coarse**: the whole image (its stored vector when the store gives it) and windows at ``scales``
   of it, side by side (``stride``; and one in the middle with ``centre``);
2. **refine**: around the best box, shifted by a fraction of its size in each direction and scaled
   up and down, the step halving each round (``refine_rounds``); the best box so far is kept.

Windows have the query example's aspect ratio when the query is an image (a query-by-example target
is found at its own shape), else the model's input's (square): the model sees the window whole.

Why crops, not the vision tower's patch tokens: crops work with any model behind ``embed`` (a
remote server's included), score on the model's own scale, and find a query-by-example target exactly;
patch tokens need the model's internals, and their similarity to a pooled query vector is not what
the model was trained for (``bench/evidence.py`` measures both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Generator, Optional, Sequence

import numpy as np
from PIL import Image

from .boxes import Box, clip_box, iou
from .template import template_boxes


@dataclass(frozen=True)
class CropSettings:
    """How hard the crop search works per hit (the cost is about ``crops_per_hit`` model calls)."""

    scales: tuple[float, ...] = (0.5,)
    """Coarse window sizes: each window's longer side as a fraction of the image's longer side (0.5: a 2 x 2
    layout of square windows covers any image up to 2:1)."""
    stride: float = 1.0
    """Coarse windows start this fraction of a window apart (1: side by side, 0.5: overlapping by half)."""
    centre: bool = False
    """Also a window of each scale in the middle of the image (where side-by-side windows meet)."""
    refine_rounds: int = 1
    """Rounds of local refinement around the best box (each: 6 crops per hit)."""
    refine_step: float = 0.25
    """The first round's shift, as a fraction of the box's size (and scale step); halved every round."""
    keep: int = 3
    """Most regions reported per hit."""
    min_side_px: int = 8
    """No window smaller than this many pixels a side."""
    confirm: float = 0.8
    """A query example found in the hit at this normalised correlation or more is a region as it is."""

    def __post_init__(self) -> None:
        if not self.scales or any(not 0 < s <= 1 for s in self.scales):
            raise ValueError(f"scales must be fractions in (0, 1], got {self.scales}")
        if self.refine_rounds < 0 or self.keep < 1 or not 0 < self.refine_step < 0.5 or not 0 < self.stride <= 1:
            raise ValueError("refine_rounds >= 0, keep >= 1, 0 < refine_step < 0.5 and 0 < stride <= 1 are required")

    def crops_per_hit(self) -> int:
        """Model calls per hit with a square image and window (more for other aspects)."""
        coarse = 1 + sum(_positions(s, self.stride) ** 2 + self.centre for s in self.scales)
        return coarse + 6 * self.refine_rounds  # an example found by its pixels costs 1 + 3 instead


def _positions(size: float, stride: float = 0.5) -> int:
    """Window starts along one axis ``stride`` windows apart: 0, ..., 1 - size."""
    if size >= 1:
        return 1
    return int(math.ceil((1 - size) / (size * stride) - 1e-9)) + 1


def window_size(window_aspect: float, image_aspect: float, scale: float) -> tuple[float, float]:
    """(width, height) in 0..1 of the image of a window of ``window_aspect`` (w/h, in pixels) whose longer
    side is ``scale`` times the image's longer side (at most the largest such window that fits)."""
    relative = window_aspect / image_aspect  # normalised width / normalised height
    width, height = (1.0, 1.0 / relative) if relative >= 1 else (relative, 1.0)  # the largest that fits
    longest = max(width * image_aspect, height) / max(image_aspect, 1.0)  # its longer side / the image's
    factor = min(1.0, scale / longest)
    return width * factor, height * factor


def coarse_boxes(window_aspect: float, image_aspect: float, scales: Sequence[float], stride: float = 0.5,
                 centre: bool = False) -> list[Box]:
    """The whole image, then windows at each scale ``stride`` windows apart, row by row (and one in the
    middle with ``centre``)."""
    boxes: list[Box] = [(0.0, 0.0, 1.0, 1.0)]
    for scale in scales:
        width, height = window_size(window_aspect, image_aspect, scale)
        xs, ys = _starts(width, stride), _starts(height, stride)
        boxes += [(x, y, x + width, y + height) for y in ys for x in xs]
        if centre:
            boxes.append(((1 - width) / 2, (1 - height) / 2, (1 + width) / 2, (1 + height) / 2))
    return _distinct(boxes)


def _starts(size: float, stride: float) -> list[float]:
    count = _positions(size, stride)
    if count == 1:
        return [max(0.0, (1 - size) / 2)]
    return [i * (1 - size) / (count - 1) for i in range(count)]


def refine_boxes(box: Box, step: float) -> list[Box]:
    """Neighbours of ``box``: shifted by ``step`` of its size left, right, up and down; scaled by
    1 + step and 1 - step about its centre (kept inside the image)."""
    x0, y0, x1, y1 = box
    width, height = x1 - x0, y1 - y0
    dx, dy = step * width, step * height
    moved = [(x0 - dx, y0, x1 - dx, y1), (x0 + dx, y0, x1 + dx, y1), (x0, y0 - dy, x1, y1 - dy),
             (x0, y0 + dy, x1, y1 + dy)]
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    for factor in (1 + step, 1 - step):
        w, h = min(1.0, width * factor), min(1.0, height * factor)
        if w / width < factor - 1e-9 and factor > 1:  # at the edge: growing would change the aspect
            continue
        moved.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
    return _distinct([clip_box(b) for b in moved if b != box])


def _distinct(boxes: Sequence[Box]) -> list[Box]:
    seen: list[Box] = []
    for box in boxes:
        if all(iou(box, other) < 0.999 for other in seen):
            seen.append(box)
    return seen


def crop(image: Image.Image, box: Box) -> Image.Image:
    """The pixels of ``box`` (0..1) of ``image``."""
    width, height = image.size
    x0, y0, x1, y1 = box
    left, top = int(round(x0 * width)), int(round(y0 * height))
    right, bottom = max(int(round(x1 * width)), left + 1), max(int(round(y1 * height)), top + 1)
    return image.crop((left, top, min(right, width), min(bottom, height)))


def cosine(vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Cosine of each row of ``vectors`` to ``query`` (-2 for a row of NaN: an input the model could not take)."""
    matrix = np.asarray(vectors, dtype=np.float64)
    target = np.asarray(query, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1) * (np.linalg.norm(target) or 1.0)
    values = (matrix @ target) / np.where(norms > 0, norms, 1.0)
    return np.nan_to_num(values, nan=-2.0)  # a row that failed to embed (NaN) ranks below every real one


CropRound = Generator[list[Image.Image], np.ndarray, list[tuple[Box, float]]]
"""A crop search: it yields the crops of a round and is sent their vectors (rows in order); it
returns the regions found, best first."""

WHOLE: Box = (0.0, 0.0, 1.0, 1.0)


def search_regions(image: Image.Image, query: np.ndarray, example: Optional[Image.Image] = None,
                   settings: CropSettings = CropSettings(), whole: Optional[np.ndarray] = None) -> CropRound:
    """The regions of ``image`` that match ``query`` best, each scored by the model (the crop's cosine
    to ``query``), best first, at most ``settings.keep``.

    With an ``example`` (the query image), round one embeds the whole image and the boxes where the
    example's own pixels are found (``template.template_boxes``); boxes whose correlation reaches
    ``settings.confirm`` are the regions, and the search stops there. Otherwise (a text query, or an
    example that is not in the hit) the coarse windows (the example's aspect ratio, or square) are
    embedded, then ``refine_rounds`` rounds around the best box. The regions are then the best box
    and other windows that score at least as well as the whole image, without overlapping a better one.

    ``whole``: the whole image's vector when the caller has it (the store keeps it), so it is not
    embedded again.
    """
    width, height = image.size
    proposals = template_boxes(image, example) if example is not None else []
    first = _distinct([WHOLE, *(box for box, _ in proposals)])
    asked = first if whole is None else first[1:]
    found = list(cosine((yield [crop(image, b) for b in asked]), query)) if asked else []
    scores = found if whole is None else [float(cosine(np.asarray([whole]), query)[0]), *found]
    confirmed = [(box, scores[first.index(box)]) for box, correlation in proposals
                 if correlation >= settings.confirm and box in first]
    if confirmed:
        confirmed.sort(key=lambda item: -item[1])
        return _keep(confirmed, settings.keep)
    whole_score = scores[0]
    aspect = example.size[0] / example.size[1] if example is not None else 1.0
    coarse = [b for b in coarse_boxes(aspect, width / height, settings.scales, settings.stride, settings.centre)
              if b not in first and _big_enough(b, width, height, settings.min_side_px)]
    boxes, scores = first + coarse, scores + (list(cosine((yield [crop(image, b) for b in coarse]), query)) if coarse else [])
    best = int(np.argmax(scores))
    best_box, best_score = boxes[best], scores[best]
    step = settings.refine_step
    for _ in range(settings.refine_rounds):
        if best_box == WHOLE:
            break  # the whole image is the best match: nothing smaller explains it better
        tried = [b for b in refine_boxes(best_box, step) if _big_enough(b, width, height, settings.min_side_px)]
        if tried:
            found = list(cosine((yield [crop(image, b) for b in tried]), query))
            boxes, scores = boxes + tried, scores + found
            top = int(np.argmax(found))
            if found[top] > best_score:
                best_box, best_score = tried[top], found[top]
        step /= 2
    others = [(b, s) for b, s in zip(boxes, scores) if s >= whole_score and b != best_box]
    return _keep([(best_box, best_score)] + sorted(others, key=lambda item: -item[1]), settings.keep)


def _big_enough(box: Box, width: int, height: int, min_side_px: int) -> bool:
    return min((box[2] - box[0]) * width, (box[3] - box[1]) * height) >= min_side_px


def _keep(candidates: list[tuple[Box, float]], keep: int) -> list[tuple[Box, float]]:
    """The candidates in their order, skipping any that overlaps an earlier kept one by over 0.3 IoU."""
    kept: list[tuple[Box, float]] = []
    for box, score in candidates:
        if all(iou(box, other) <= 0.3 for other, _ in kept):
            kept.append((box, score))
            if len(kept) == keep:
                break
    return kept
