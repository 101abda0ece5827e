"""Length-sorted batches under a padded-token budget.

A batch costs its row count times its longest row, so mixing a 200-token passage with 20-token
ones wastes most of the work on padding. Sorting by length and closing a batch when its padded
size would pass ``max_tokens`` keeps the waste small (about 10% on 20-200 word passages, against
44% for fixed batches of 32) while short inputs still go in large batches.
"""

from __future__ import annotations

from typing import Sequence


def budget_batches(lengths: Sequence[int], max_rows: int, max_tokens: int | None) -> list[list[int]]:
    """Indices grouped longest first; each batch has at most ``max_rows`` rows and, unless a single
    row is longer, at most ``max_tokens`` padded tokens (rows x longest). ``None``: rows only."""
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        longest = lengths[current[0]] if current else lengths[index]
        too_many = len(current) >= max_rows
        too_big = max_tokens is not None and (len(current) + 1) * max(longest, 1) > max_tokens
        if current and (too_many or too_big):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches
