"""Regions of a page for late-interaction models (ColPali, ColQwen2): MaxSim, taken apart per patch.

A page's MaxSim is a sum over the query's token vectors of each one's best dot product with any of
the page's stored rows. Credit each query token's term to the row that won it, and a row's credit is
its share of the score: summed over the rows that are image patches, laid on the model's own patch
grid, that is a map of where the page matched, from the stored multivector and the query's tokens
alone (no OCR, no model call). Cells at or above ``THRESHOLD`` of the map's best cell form regions
(connected groups), each scored by the credit it holds (in MaxSim units), best first.

Which stored row is which patch (``PatchLayout``) comes from the model's processor, run on the page
without the model: the document's token ids (after the model's scoring mask, as the embedding keeps
them) say which rows are image tokens, in raster order over the grid, and the grid is the model's:

- ColPali (PaliGemma): a fixed square grid (32 x 32 at 448 px) over the page resized whole;
- ColQwen2 (Qwen2-VL): a dynamic grid, ``image_grid_thw`` in 14 px patches merged ``merge_size`` x
  ``merge_size``, over the page resized whole (aspect ratio kept).

A row that holds several patches (token pooling) credits every patch it holds (``PatchLayout.cells``
maps a row to its patches). Which patches a pooled row holds is not stored, so for a pooled index the
page's unpooled token vectors are computed once (one forward pass of the page, in-process) and each
joins the stored row it is nearest to (``pooled_layout``): the cluster it was pooled into, in nearly
every case. A layout whose row count still differs from the stored multivector's is not used (no
regions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .boxes import Box, map_regions

THRESHOLD = 0.5
"""A cell belongs to a region when its credit is at least this share of the best cell's."""


@dataclass(frozen=True)
class PatchLayout:
    """The patch grid of a page (``rows`` x ``cols``) and, for each stored row, the cells it covers
    (``r * cols + c``; empty for a text or special token)."""

    rows: int
    cols: int
    cells: tuple[tuple[int, ...], ...]

    @property
    def tokens(self) -> int:
        return len(self.cells)


def row_credit(query: np.ndarray, document: np.ndarray) -> np.ndarray:
    """Each document row's share of MaxSim: the sum of the query tokens' best scores it won (ties go
    to the first row). The credits sum to ``multivector.maxsim(query, document)``."""
    scores = np.asarray(query, np.float32) @ np.asarray(document, np.float32).T
    winners = scores.argmax(axis=1)
    credit = np.zeros(document.shape[0], dtype=np.float64)
    np.add.at(credit, winners, scores[np.arange(len(winners)), winners])
    return credit


def credit_map(credit: np.ndarray, layout: PatchLayout) -> np.ndarray:
    """The (rows, cols) map of patch credit; a row that covers several cells credits each of them."""
    grid = np.zeros(layout.rows * layout.cols, dtype=np.float64)
    for value, cells in zip(credit, layout.cells):
        for cell in cells:
            grid[cell] += value
    return grid.reshape(layout.rows, layout.cols)


def late_regions(query: np.ndarray, document: np.ndarray, layout: PatchLayout, page: Optional[int] = None,
                 keep: int = 3) -> list[tuple[Box, float]]:
    """Regions of the page where ``query``'s tokens found their matches, best first: (box, credit)."""
    if layout.tokens != len(document):
        return []
    grid = credit_map(row_credit(query, document), layout)
    best = float(grid.max())
    if best <= 0:
        return []
    found = [(box, float(sum(grid[r, c] for r, c in cells))) for box, cells in map_regions(grid, THRESHOLD * best)]
    found.sort(key=lambda item: -item[1])
    return found[:keep]


# ---------------------------------------------------------------- the layout, from the model's processor


def layout_for(model: Any, image: Any) -> Optional[PatchLayout]:
    """The ``PatchLayout`` a late-interaction ``MultiVectorEncoder`` gives ``image`` as a document, from
    its processor and scoring mask (no forward pass); None for a processor whose grid is not known here."""
    processor = getattr(model[0], "processor", None)
    image_token = getattr(processor, "image_token", None)
    if processor is None or image_token is None:
        return None
    features = model.preprocess([image], task="document")
    masked = model[-1]({key: value.clone() if hasattr(value, "clone") else value for key, value in features.items()},
                       task="document") if hasattr(model[-1], "skiplist_tasks") else features
    keep = masked["attention_mask"][0].bool()
    ids = features["input_ids"][0][keep].tolist()
    image_id = processor.tokenizer.convert_tokens_to_ids(image_token)
    count = sum(1 for token in ids if token == image_id)
    grid = _grid(features, processor, count)
    if grid is None:
        return None
    rows, cols = grid
    cells: list[tuple[int, ...]] = []
    next_cell = 0
    for token in ids:
        if token == image_id:
            cells.append((next_cell,))
            next_cell += 1
        else:
            cells.append(())
    return PatchLayout(rows, cols, tuple(cells))


def _grid(features: dict[str, Any], processor: Any, count: int) -> Optional[tuple[int, int]]:
    """(rows, cols) of the merged patch grid, checked against the number of image tokens."""
    thw = features.get("image_grid_thw")
    if thw is not None:
        merge = int(getattr(getattr(processor, "image_processor", None), "merge_size", 2) or 1)
        _, height, width = (int(v) for v in thw[0])
        rows, cols = height // merge, width // merge
    else:
        side = int(round(math.sqrt(count)))
        rows, cols = side, side
    return (rows, cols) if rows * cols == count and count > 0 else None


def pooled_layout(layout: PatchLayout, unpooled: np.ndarray, stored: np.ndarray) -> PatchLayout:
    """The layout of a pooled multivector: each unpooled token (rows of ``unpooled``, in ``layout``'s
    order) joins the ``stored`` row nearest to it by cosine, with its cells."""
    if len(unpooled) != layout.tokens:
        raise ValueError(f"{len(unpooled)} unpooled token vectors for a layout of {layout.tokens} tokens")
    a = np.asarray(unpooled, np.float32)
    b = np.asarray(stored, np.float32)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    nearest = (a @ b.T).argmax(axis=1)
    cells: list[list[int]] = [[] for _ in range(len(b))]
    for row, owner in enumerate(nearest):
        cells[int(owner)].extend(layout.cells[row])
    return PatchLayout(layout.rows, layout.cols, tuple(tuple(sorted(c)) for c in cells))


def unpooled_tokens(model: Any, image: Any) -> np.ndarray:
    """The page's token vectors before pooling (the model's own document path, fp32), rows as the layout's."""
    vectors = model.encode_document([image], convert_to_numpy=True)
    return np.asarray(vectors[0], dtype=np.float32)
