"""Bucketed batch shapes, so CPU kernel caches stay small under dynamic batching.

CPU kernels (oneDNN, in bf16 above all) build and keep a kernel per input shape. Dynamic batching
gives every batch size from 1 to the cap and every text length, so a long concurrent load fills that
cache with dozens of shapes and resident memory grows by 100+ MB. Batches are padded to a few
shapes (rows to a power of two up to ``ROW_STEP``, then to a multiple of it; text to the lengths of
``text_length_bucket``) and the padding is dropped from the output; ``bench/memory.py`` measures the
effect.
"""

from __future__ import annotations

from typing import Any

import torch
from sentence_transformers import SentenceTransformer


ROW_STEP = 8
"""Above this many rows, batches are padded to a multiple of it rather than to a power of two."""


def bucket_rows(rows: int, cap: int) -> int:
    """The row count a batch of ``rows`` is padded to: the next power of two up to ``ROW_STEP``, then
    the next multiple of ``ROW_STEP``, at most ``cap``.

    Why: CPU kernels (oneDNN, in bf16 above all) build and keep a kernel per input shape. Dynamic
    batching gives every batch size from 1 to the cap, so a long concurrent load fills that cache with
    dozens of shapes and resident memory grows by 100+ MB; with buckets there are
    log2(ROW_STEP) + cap / ROW_STEP shapes (7 for the default cap of 32). Padding to a power of two
    all the way up wasted up to half of a forward pass (17 rows ran as 32: measured 1.9x slower than
    17 exact on ViT-B/32's text tower), which a server's partial batches paid on every request.
    """
    if rows >= cap:
        return rows
    if rows <= ROW_STEP:
        return min(cap, 1 << (rows - 1).bit_length())
    return min(cap, -(-rows // ROW_STEP) * ROW_STEP)


TEXT_LENGTH_STEP = 4
"""Shortest step between text length buckets (in tokens)."""


def text_length_bucket(length: int, window: int) -> int:
    """The token length a text batch is padded to: a multiple of 4 below 32 tokens, then of an eighth of
    the next power of two (8 up to 64, 16 up to 128, ...), at most the model's ``window``.

    Why this rule: kernel caches keep one entry per shape, so lengths need buckets too (a bf16 server
    without them grew by 100+ MB: ``bench/memory.py``), but padding is paid in full: ViT-B/32 text
    batches of 25 and 18 tokens padded to 32 and 24 ran 1.4x slower than unpadded, in fp32 and bf16
    alike; with these steps (28 and 20) 1.1x, with memory as flat as before. 24 buckets cover a
    512-token window."""
    step = max(TEXT_LENGTH_STEP, 1 << max(0, length.bit_length() - 3))
    return min(window, -(-length // step) * step)


_TEXT_PAD_VALUES = {"attention_mask": 0, "token_type_ids": 0}


def right_padding(model: SentenceTransformer) -> tuple[int, int] | None:
    """(pad token id, longest sequence) when extra right padding is what the tokenizer itself adds to the
    shorter texts of a batch (masked out, so no embedding changes); None when that is not known."""
    tokenizer = getattr(model, "tokenizer", None)
    pad_id = getattr(tokenizer, "pad_token_id", None)
    window = getattr(model, "max_seq_length", None)
    if pad_id is None or not window or getattr(tokenizer, "padding_side", "right") != "right":
        return None
    return int(pad_id), int(window)


def pad_text_columns(features: dict[str, Any], pad_id: int, window: int) -> dict[str, Any]:
    """Right-pad ``input_ids`` (with ``pad_id``) and the mask (with 0) to ``text_length_bucket``'s length."""
    ids, mask = features.get("input_ids"), features.get("attention_mask")
    if not isinstance(ids, torch.Tensor) or not isinstance(mask, torch.Tensor) or ids.dim() != 2:
        return features
    length = ids.shape[1]
    target = text_length_bucket(length, window)
    if target <= length:
        return features
    padded = dict(features)
    for key, value in features.items():
        if isinstance(value, torch.Tensor) and value.dim() == 2 and value.shape == ids.shape:
            fill = pad_id if key == "input_ids" else _TEXT_PAD_VALUES.get(key)
            if fill is None:
                return features  # a per-token tensor we do not know how to pad: leave the batch as it is
            padded[key] = torch.nn.functional.pad(value, (0, target - length), value=fill)
    return padded


def batch_rows(features: dict[str, Any]) -> int:
    """Rows of a batch whose tensors are all one row per input (CLIP, SigLIP, text); 0 otherwise, e.g.
    for VLM image features that flatten patches of every image into one tensor: those are left alone."""
    tensors = [value for value in features.values() if isinstance(value, torch.Tensor)]
    if not tensors or any(value.dim() == 0 for value in tensors):
        return 0
    rows = int(tensors[0].shape[0])
    return rows if all(int(value.shape[0]) == rows for value in tensors) else 0


def pad_rows(features: dict[str, Any], rows: int, target: int) -> dict[str, Any]:
    """``features`` with every per-row tensor extended to ``target`` rows by repeating its last row
    (a real input, so the padding never meets an edge case of the model); other entries unchanged."""
    if target <= rows:
        return features
    padded: dict[str, Any] = {}
    for key, value in features.items():
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == rows:
            filler = value[-1:].expand(target - rows, *value.shape[1:])
            value = torch.cat([value, filler], dim=0)
        padded[key] = value
    return padded
