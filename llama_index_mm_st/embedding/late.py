"""The encoder of late-interaction models (ColPali, ColQwen2, ColModernVBert), through
sentence-transformers' ``MultiVectorEncoder``.

It runs the model's own query and document paths the way ``MultiVectorEncoder.encode_query`` /
``encode_document`` do (``preprocess`` with the task, forward, the scoring mask, then per-call token
pooling of documents), so in fp32 every token vector equals sentence-transformers'. What it adds is
the base encoder's: decoding in a thread pool with per-item errors, and the next batch prepared
while the model runs. Each item gets its multivector and, for single-vector consumers, its pooled
vector (``multivector.pooled``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Optional, Sequence

import numpy as np
import torch
from sentence_transformers.util import batch_to_device

from ..multivector import pooled
from ..types import Role
from .encoder import EncodeOutput, EncodeSettings, Encoder
from .profiles import ModelProfile


@dataclass
class LateBatch:
    """One forward pass: each item's token vectors and their pooled vector (rows in batch order)."""

    pooled: np.ndarray
    multivectors: list[np.ndarray]


def token_pooling(pool_factor: Optional[float]) -> Any:
    """sentence-transformers' hierarchical token pooling of documents (None: keep every token)."""
    if pool_factor is None or pool_factor <= 1:
        return None
    from sentence_transformers.multi_vector_encoder.modules import HierarchicalTokenPooling

    return HierarchicalTokenPooling(pool_factor=pool_factor)


class LateEncoder(Encoder):
    """Drives one loaded ``MultiVectorEncoder``; the ``Encoder`` pipeline with a per-token output."""

    def __init__(self, model: Any, profile: ModelProfile, settings: EncodeSettings,
                 prompt_names: dict[Role, str | None], workers: int, pool_factor: Optional[float] = None) -> None:
        if settings.truncate_dim:
            raise ValueError("truncate_dim does not apply to a late-interaction model (its token vectors are scored whole)")
        if settings.devices:
            raise ValueError("devices= (multi-process encoding) is not supported for late-interaction models yet")
        # Row bucketing pads features; a retrieval processor's flattened patches can't be padded that way.
        super().__init__(model, profile, replace(settings, bucket_batches=False), prompt_names, workers)
        self._text_kwargs = {}  # sentence-transformers passes nothing: the retrieval processor renders text itself
        self._text_padding = None
        self.pooling = token_pooling(pool_factor)

    def _new_output(self, count: int) -> EncodeOutput:
        output = super()._new_output(count)
        output.multivectors = [None] * count
        return output

    def _put(self, output: EncodeOutput, positions: Sequence[int], result: LateBatch) -> None:
        output.vectors[list(positions)] = result.pooled
        assert output.multivectors is not None  # set by _new_output
        for position, matrix in zip(positions, result.multivectors):
            output.multivectors[position] = matrix

    @torch.inference_mode()
    def _forward(self, features: dict[str, Any], role: Role) -> LateBatch:  # type: ignore[override]
        features = batch_to_device(features, self.model.device)
        out = self.model(features, task=role)
        masks = out["attention_mask"].bool()
        rows = [tokens[mask] for tokens, mask in zip(out["token_embeddings"], masks)]
        if self.pooling is not None and self.pooling.applies_to(role):
            rows = self.pooling.pool(rows, task=role)
        matrices = [row.float().cpu().numpy() for row in rows]
        return LateBatch(np.stack([pooled(matrix) for matrix in matrices]), matrices)
