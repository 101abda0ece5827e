"""Box geometry shared by the region localisers: overlap, suppression, and score maps to boxes.

Boxes are ``(x0, y0, x1, y1)`` in 0..1 of the image (x right, y down), as ``Region.box``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

Box = tuple[float, float, float, float]


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes (0 when either is empty)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def clip_box(box: Sequence[float]) -> Box:
    """The box moved (not shrunk) inside 0..1 where it fits, then cut to 0..1."""
    x0, y0, x1, y1 = (float(v) for v in box)
    for lo, hi, axis in ((x0, x1, 0), (y0, y1, 1)):
        size = min(hi - lo, 1.0)
        start = min(max(lo, 0.0), 1.0 - size)
        if axis == 0:
            x0, x1 = start, start + size
        else:
            y0, y1 = start, start + size
    return (x0, y0, x1, y1)


def suppress(boxes: Sequence[Box], scores: Sequence[float], overlap: float = 0.3, keep: int = 3) -> list[int]:
    """Greedy non-maximum suppression: indices of the best boxes, best first, none overlapping a kept
    one by more than ``overlap`` IoU. Equal scores keep the earlier box first (a stable order)."""
    order = sorted(range(len(boxes)), key=lambda i: -scores[i])
    kept: list[int] = []
    for index in order:
        if all(iou(boxes[index], boxes[other]) <= overlap for other in kept):
            kept.append(index)
            if len(kept) == keep:
                break
    return kept


def grid_cell_box(row: int, col: int, rows: int, cols: int) -> Box:
    """The box of one cell of a ``rows`` x ``cols`` grid laid over the whole image."""
    return (col / cols, row / rows, (col + 1) / cols, (row + 1) / rows)


def map_regions(scores: np.ndarray, threshold: float) -> list[tuple[Box, list[tuple[int, int]]]]:
    """The connected groups (4-neighbour) of cells of a (rows, cols) score map at or above
    ``threshold``, each as (the box around it, its cells), in the order of their first cell.

    The map covers the whole image, cell (r, c) being ``grid_cell_box(r, c, rows, cols)``."""
    grid = np.asarray(scores, dtype=np.float64)
    rows, cols = grid.shape
    above = grid >= threshold
    seen = np.zeros_like(above)
    found: list[tuple[Box, list[tuple[int, int]]]] = []
    for r in range(rows):
        for c in range(cols):
            if not above[r, c] or seen[r, c]:
                continue
            stack, cells = [(r, c)], []
            seen[r, c] = True
            while stack:
                y, x = stack.pop()
                cells.append((y, x))
                for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                    if 0 <= ny < rows and 0 <= nx < cols and above[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        stack.append((ny, nx))
            ys, xs = [y for y, _ in cells], [x for _, x in cells]
            found.append(((min(xs) / cols, min(ys) / rows, (max(xs) + 1) / cols, (max(ys) + 1) / rows), cells))
    return found
