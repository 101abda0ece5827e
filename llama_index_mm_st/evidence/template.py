"""Where an example image appears inside a larger one: normalised cross-correlation over scales.

For a query by example, the strongest evidence is the example itself, pasted, scaled or re-encoded
in the hit (a logo in a photo, a figure on a page, a frame in a video). Matching grey levels at a
range of scales finds it in a few milliseconds, without the model; the crop search then embeds the
boxes it proposes, so the model still scores every region reported. It proposes nothing useful for
a merely similar picture (the crop search's own windows cover that case).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .boxes import Box, suppress

WORK_SIDE = 128
"""The hit image is matched at this many pixels on its longer side."""
SCALE_STEP = 1.1
"""Template widths step by this factor, from ``MIN_SIDE_PX`` pixels to the whole image."""
MIN_SIDE_PX = 8


def _grey(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(image.convert("L").resize(size, Image.Resampling.BILINEAR), dtype=np.float64)


def fast_length(n: int) -> int:
    """The smallest 2^a 3^b 5^c at or above ``n``: an FFT of a prime length is many times slower."""
    best = 1 << max(0, (n - 1).bit_length())
    power5 = 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            value = power35
            while value < n:
                value *= 2
            best = min(best, value)
            power35 *= 3
        power5 *= 5
    return best


class Matcher:
    """One grey image, ready to correlate with templates of any size: its integral images and its
    spectrum (one FFT size for every template, so the image is transformed once)."""

    def __init__(self, image: np.ndarray) -> None:
        self.image = image
        height, width = image.shape
        self.shape = (fast_length(2 * height - 1), fast_length(2 * width - 1))
        self.spectrum = np.fft.rfft2(image, self.shape)
        self.sums = np.pad(image, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
        self.squares = np.pad(image * image, ((1, 0), (1, 0))).cumsum(0).cumsum(1)

    def _window(self, integral: np.ndarray, height: int, width: int) -> np.ndarray:
        return (integral[height:, width:] - integral[:-height, width:] - integral[height:, :-width]
                + integral[:-height, :-width])

    def ncc(self, template: np.ndarray) -> np.ndarray:
        """Normalised cross-correlation of ``template`` at every valid position (a flat window or a
        flat template scores 0)."""
        th, tw = template.shape
        ih, iw = self.image.shape
        centred = template - template.mean()
        norm = float(np.sqrt((centred ** 2).sum()))
        if norm < 1e-6:
            return np.zeros((ih - th + 1, iw - tw + 1))
        spectrum = self.spectrum * np.fft.rfft2(centred[::-1, ::-1], self.shape)
        correlation = np.fft.irfft2(spectrum, self.shape)[th - 1:ih, tw - 1:iw]
        count = th * tw
        sums, squares = self._window(self.sums, th, tw), self._window(self.squares, th, tw)
        variance = np.maximum(squares - sums * sums / count, 0.0)
        denominator = np.sqrt(variance) * norm
        return np.where(denominator > 1e-6 * count, correlation / np.maximum(denominator, 1e-12), 0.0)


def ncc_map(image: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Normalised cross-correlation of ``template`` at every valid position of ``image`` (grey, float)."""
    return Matcher(image).ncc(template)


def template_boxes(image: Image.Image, template: Image.Image, keep: int = 3) -> list[tuple[Box, float]]:
    """The boxes (0..1) where ``template`` best matches inside ``image``, at any scale of the template
    (its aspect ratio kept), with their correlation (-1..1), best first and not overlapping.

    A coarse pass over every scale at ``WORK_SIDE`` pixels, then each of the best ``keep`` is matched
    again at a finer resolution in its neighbourhood (``refine_box``)."""
    coarse = _coarse_boxes(image, template, keep)
    refined = [refine_box(image, template, box, score) for box, score in coarse]
    refined.sort(key=lambda item: -item[1])
    return refined


FINE_SIDE = 96
"""In the fine pass the template is matched at this many pixels on its longer side (or its own size)."""
FINE_SCALES = (0.9, 0.95, 1.0, 1.05, 1.1)
FINE_MARGIN = 0.25
"""The fine pass searches the coarse box grown by this fraction of its size on every side."""


def refine_box(image: Image.Image, template: Image.Image, box: Box, score: float) -> tuple[Box, float]:
    """The coarse match ``box`` matched again around itself at a finer resolution and at nearby
    scales; the coarse box stays when nothing better is found."""
    width, height = image.size
    x0, y0, x1, y1 = box[0] * width, box[1] * height, box[2] * width, box[3] * height
    bw, bh = x1 - x0, y1 - y0
    left, top = max(0.0, x0 - FINE_MARGIN * bw), max(0.0, y0 - FINE_MARGIN * bh)
    right, bottom = min(float(width), x1 + FINE_MARGIN * bw), min(float(height), y1 + FINE_MARGIN * bh)
    factor = min(1.0, FINE_SIDE / max(bw, bh, 1.0))
    region = image.crop((int(left), int(top), int(np.ceil(right)), int(np.ceil(bottom))))
    rw, rh = max(1, round(region.size[0] * factor)), max(1, round(region.size[1] * factor))
    matcher = Matcher(_grey(region, (rw, rh)))
    best = (box, score)
    for scale in FINE_SCALES:
        tw, th = int(round(bw * factor * scale)), int(round(bh * factor * scale))
        if tw < 3 or th < 3 or tw > rw or th > rh:
            continue
        scores = matcher.ncc(_grey(template, (tw, th)))
        y, x = np.unravel_index(int(np.argmax(scores)), scores.shape)
        if scores[y, x] > best[1]:
            px0, py0 = int(left) + x / factor, int(top) + y / factor
            found = (px0 / width, py0 / height, (px0 + tw / factor) / width, (py0 + th / factor) / height)
            best = (tuple(min(1.0, max(0.0, v)) for v in found), float(scores[y, x]))  # type: ignore[assignment]
    return best


def _coarse_boxes(image: Image.Image, template: Image.Image, keep: int) -> list[tuple[Box, float]]:
    width, height = image.size
    factor = WORK_SIDE / max(width, height)
    work_w, work_h = max(1, round(width * factor)), max(1, round(height * factor))
    matcher = Matcher(_grey(image, (work_w, work_h)))
    aspect = template.size[0] / template.size[1]
    found: list[tuple[Box, float]] = []
    side = float(MIN_SIDE_PX)
    while True:
        tw, th = (side, side / aspect) if aspect >= 1 else (side * aspect, side)
        tw_i, th_i = int(round(tw)), int(round(th))
        if tw_i > work_w or th_i > work_h:
            break
        if min(tw_i, th_i) >= 3:
            scores = matcher.ncc(_grey(template, (tw_i, th_i)))
            y, x = np.unravel_index(int(np.argmax(scores)), scores.shape)
            found.append(((x / work_w, y / work_h, (x + tw_i) / work_w, (y + th_i) / work_h), float(scores[y, x])))
        side *= SCALE_STEP
    kept = suppress([b for b, _ in found], [s for _, s in found], overlap=0.3, keep=keep)
    return [found[k] for k in kept]
