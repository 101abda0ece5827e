"""Embedding requests: items -> the embedding's lane -> vectors, in the shapes the field reads.

Every route that embeds (OpenAI's ``/v1/embeddings``, TEI's ``/embed``) ends in ``EmbedService.embed``:
texts and prepared media bytes become ``Job``s keyed by (modality, role), the lane batches them with
other clients' items, and ``MultimodalEmbedding.embed(..., on_error="skip")`` runs each group, so one
client's corrupt image fails that client's request (400 naming its item) and nobody else's.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence

import numpy as np

from ..media import MediaLimits
from ..types import Modality, Role
from .errors import APIError, bad_item
from .items import MediaRules, Prepared, decode_for_model, prepare_media, text_cost
from .lanes import Job, Lane, Outcome, first_error
from .metrics import Metrics
from .settings import ServeSettings

SERVED_MODALITIES: tuple[Modality, ...] = ("text", "image", "audio", "video")
WINDOW_SANITY = 1_000_000
"""A declared text window above this is a tokenizer that declares none (``int(1e30)``)."""


@dataclass(frozen=True)
class Embedded:
    """A request's vectors in input order, and the tokens its texts took (0 for media)."""

    vectors: List[List[float]]
    tokens: int


class EmbedService:
    """The embedding model behind a lane."""

    def __init__(self, embedding: Any, settings: ServeSettings, metrics: Metrics) -> None:
        self.embedding = embedding
        self.settings = settings
        self.metrics = metrics
        self.rules = MediaRules(
            fetch=settings.fetch, max_pixels=embedding.decode_options.max_pixels,
            media=MediaLimits(max_duration_s=embedding.max_media_seconds, max_bytes=embedding.max_media_bytes),
            limits=settings.limits, text_window=_text_window(embedding),
        )
        self.lane = Lane("embedding", self._run_group, settings.limits, metrics)

    @property
    def modalities(self) -> list[str]:
        return [m for m in SERVED_MODALITIES if self.embedding.supports(m)]

    def check_modality(self, modality: str) -> None:
        if not self.embedding.supports(modality):
            raise APIError(400, f"the model {self.embedding.model_name} does not read {modality}; it reads "
                                + ", ".join(self.modalities), code="unsupported_modality", param="modality")

    async def prepare(self, values: Sequence[str], modality: Modality, param: str) -> List[Prepared]:
        """Texts as they are; media decoded from data URIs (or fetched) with their headers checked, and
        images decoded to pixels (``decode_for_model``)."""
        self.check_modality(modality)
        if modality == "text":
            return [Prepared(text, text_cost(text, self.rules)) for text in values]

        def prepare(i: int, value: str) -> Prepared:
            item = prepare_media(value, modality, f"{param}[{i}]", self.rules)
            if modality == "image":
                item = decode_for_model(item, f"{param}[{i}]", self.embedding.decode_options)
            return item

        return await asyncio.to_thread(lambda: [prepare(i, value) for i, value in enumerate(values)])

    async def embed(self, items: Sequence[Prepared], modality: Modality, role: Role, param: str,
                    indexed: bool = True) -> Embedded:
        """Vectors for prepared items; the first bad item is a 400 naming ``param[i]`` (``param`` itself when
        not ``indexed``: a search's one query)."""
        jobs = [Job((modality, role), item.payload, item.cost) for item in items]
        outcomes = await self.lane.run(jobs)
        self.metrics.items.labels(modality).inc(len(items))
        failed = first_error(outcomes)
        if failed is not None:
            position, error = failed
            if isinstance(error, APIError):
                raise error
            raise bad_item(f"{param}[{position}]" if indexed else param, getattr(error, "reason", None) or str(error))
        return Embedded([vector for vector, _ in outcomes], sum(tokens for _, tokens in outcomes))

    def _run_group(self, key: Any, payloads: List[Any]) -> List[Outcome]:
        modality, role = key
        result = self.embedding.embed(payloads, modality, role=role, on_error="skip")
        failed = {failure.position: failure.error for failure in result.failures}
        tokens = self._token_counts(payloads) if modality == "text" else [0] * len(payloads)
        # A late-interaction query vector (``PooledVector``) is a list already and keeps its token vectors.
        return [failed[i] if i in failed else (vector if isinstance(vector, list) else list(vector), tokens[i])
                for i, vector in enumerate(result.embeddings)]

    def _token_counts(self, texts: List[str]) -> List[int]:
        """Tokens per text by the model's own tokenizer (for ``usage``), at most the window; 0 without one."""
        from transformers import PreTrainedTokenizerBase

        tokenizer = getattr(self.embedding.model, "tokenizer", None)
        if not isinstance(tokenizer, PreTrainedTokenizerBase):  # a multimodal processor takes images first
            return [0] * len(texts)
        window = self.rules.text_window
        encoded = tokenizer(texts, truncation=window is not None, max_length=window)["input_ids"]
        return [len(ids) for ids in encoded]


def _text_window(embedding: Any) -> Optional[int]:
    window = getattr(embedding.model, "max_seq_length", None)
    return int(window) if isinstance(window, int) and 0 < window < WINDOW_SANITY else None


def shorten(vectors: List[List[float]], dimensions: Optional[int], normalized: bool, size: int) -> List[List[float]]:
    """Matryoshka truncation to ``dimensions`` (re-normalised when the model normalises), as OpenAI's
    ``dimensions`` does; more dimensions than the model has is a 400."""
    if dimensions is None or dimensions == size:
        return vectors
    if dimensions > size:
        raise APIError(400, f"dimensions={dimensions} is more than the model's {size}", code="invalid_dimensions",
                       param="dimensions")
    matrix = np.asarray(vectors, dtype=np.float64)[:, :dimensions]
    if normalized:
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        matrix = matrix / np.where(norms == 0, 1.0, norms)
    return matrix.tolist()


def encode_vector(vector: List[float], encoding_format: str) -> Any:
    """``float``: the list; ``base64``: little-endian float32 bytes, base64, as the OpenAI API sends them."""
    if encoding_format == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return vector
