"""MaxSim reranking with a late-interaction model (ColPali, ColQwen2, ColModernVBert).

Each query token takes its best match among a candidate's token vectors and the matches are
summed: the score the model was trained for. Candidates are encoded through the model's document
path (``MultiVectorEncoder.encode_document``), queries through its query path; a candidate that
already carries its multivector (a result of a late-interaction ``MultimodalQdrantStore`` built with
the same model) is scored from it, with no encoding at all (``score_multivectors``).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ...images import DecodeOptions
from ...multivector import maxsim
from ...runtime import resolve_precision
from ...types import Precision
from .base import LoadedParts, PairModality, ScorerAbilities, compute_context

LATE_PAIRS: frozenset[PairModality] = frozenset({("text", "image"), ("text", "text"), ("image", "image"),
                                                 ("image", "text")})
"""A retrieval model reads a page by its pixels (a page with words is scored as its image) or a text."""


def _model_input(side: LoadedParts) -> Any:
    return side.image if side.image is not None else side.text


class LateInteractionScorer:
    """Scores (query, candidate) pairs by MaxSim with a sentence-transformers ``MultiVectorEncoder``."""

    def __init__(self, model: Any, precision: Precision = "auto", name: str = "") -> None:
        self.model = model
        self.name = name or str(getattr(model, "model_card_data", None) and model.model_card_data.base_model
                                or "late-interaction")
        self.pairs = LATE_PAIRS
        self.decode_options = DecodeOptions()
        self.precision = resolve_precision(precision, str(model.device))
        self.dimension = int(model.get_embedding_dimension())

    @property
    def abilities(self) -> ScorerAbilities:
        return ScorerAbilities(multivector_dim=self.dimension)

    def _encode(self, inputs: list[Any], role: str, batch_size: int) -> list[np.ndarray]:
        encode = self.model.encode_query if role == "query" else self.model.encode_document
        with torch.inference_mode(), compute_context(self.model.device, self.precision):
            rows = encode(inputs, batch_size=batch_size, convert_to_numpy=False)
        return [row.float().cpu().numpy() for row in rows]

    def query_tokens(self, query: LoadedParts) -> np.ndarray:
        """The query's token vectors (its text, else its image)."""
        return self._encode([_model_input(query)], "query", 1)[0]

    def score(self, query: LoadedParts, documents: Sequence[LoadedParts], batch_size: int) -> list[float]:
        tokens = self.query_tokens(query)
        scores = [0.0] * len(documents)
        # The model takes one modality per call: images, then texts.
        for is_image in (True, False):
            positions = [i for i, d in enumerate(documents) if (d.image is not None) == is_image]
            if not positions:
                continue
            pages = self._encode([_model_input(documents[i]) for i in positions], "document", batch_size)
            for position, page in zip(positions, pages):
                scores[position] = maxsim(tokens, page)
        return scores

    def score_multivectors(self, query: LoadedParts, multivectors: Sequence[np.ndarray]) -> list[float]:
        """MaxSim against stored multivectors (rows of this model's ``dimension``): no candidate encoding."""
        tokens = self.query_tokens(query)
        return [maxsim(tokens, matrix) for matrix in multivectors]
