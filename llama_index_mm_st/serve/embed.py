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
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..media import MediaLimits
from ..text_limits import bound_text, char_limit, declared_window
from ..types import Modality, Role
from .errors import APIError, bad_item
from .items import MediaRules, Prepared, decode_for_model, prepare_media, text_cost
from .lanes import Job, Lane, Outcome, first_error
from .metrics import Metrics
from .settings import ServeSettings

SERVED_MODALITIES: tuple[Modality, ...] = ("text", "image", "audio", "video")
NODES = "nodes"
"""The lane group of whole nodes (``inputs.NodeParts``, images decoded) that the documents API writes:
``MultimodalEmbedding.embed_nodes`` sets each node's vectors by the store's rule, as ``mmst index`` does."""


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
        # Queries (a search's, or a client's with input_type "query") go ahead of queued documents: someone is
        # waiting on each, while a bulk ingestion only waits a batch longer.
        outcomes = await self.lane.run(jobs, urgent=role == "query")
        self.metrics.items.labels(modality).inc(len(items))
        failed = first_error(outcomes)
        if failed is not None:
            position, error = failed
            if isinstance(error, APIError):
                raise error
            where = f"{param}[{position}]" if indexed else param
            if isinstance(error, NonFiniteOutput):
                raise non_finite(where, "embedding")
            raise bad_item(where, getattr(error, "reason", None) or str(error))
        return Embedded([vector for vector, _ in outcomes], sum(tokens for _, tokens in outcomes))

    def _run_group(self, key: Any, payloads: List[Any]) -> List[Outcome]:
        modality, role = key
        if modality == NODES:
            kept, failures = self.embedding.embed_nodes(payloads, on_error="skip")
            refused = {failure.position: failure.error for failure in failures}
            return [refused.get(i, parts) for i, parts in enumerate(payloads)]
        result = self.embedding.embed(payloads, modality, role=role, on_error="skip")
        failed = {failure.position: failure.error for failure in result.failures}
        for position, vector in enumerate(result.embeddings):
            if vector is not None and position not in failed and not np.isfinite(vector).all():
                failed[position] = NonFiniteOutput()
        tokens = self._token_counts(payloads, failed) if modality == "text" else [0] * len(payloads)
        # A late-interaction query vector (``PooledVector``) is a list already and keeps its token vectors.
        return [failed[i] if i in failed else (vector if isinstance(vector, list) else list(vector), tokens[i])
                for i, vector in enumerate(result.embeddings)]

    def _token_counts(self, texts: List[str], failed: Dict[int, BaseException]) -> List[int]:
        """Tokens per text by the model's own tokenizer (for ``usage``), at most the window; 0 without one
        and for a failed text. Counted on the text as the model was given it (cut to ``char_limit``)."""
        from transformers import PreTrainedTokenizerBase

        tokenizer = getattr(self.embedding.model, "tokenizer", None)
        counted = [i for i in range(len(texts)) if i not in failed]
        if not isinstance(tokenizer, PreTrainedTokenizerBase) or not counted:  # a processor takes images first
            return [0] * len(texts)
        window = self.rules.text_window
        limit = char_limit(window)
        try:  # the model read these texts; a tokenizer that still refuses one costs the usage count, not the worker
            encoded = tokenizer([bound_text(texts[i], limit) for i in counted], truncation=window is not None,
                                max_length=window)["input_ids"]
        except (TypeError, ValueError):
            return [0] * len(texts)
        counts = [0] * len(texts)
        for i, ids in zip(counted, encoded):
            counts[i] = len(ids)
        return counts


class NonFiniteOutput(ValueError):
    """The model gave an item a NaN or infinite number: its fault, not the input's (named by ``non_finite``)."""


def non_finite(param: str, what: str) -> APIError:
    """A 500 naming the item whose output is not finite: JSON cannot carry it (and base64 would hide it)."""
    return APIError(500, f"{param}: the model produced a {what} that is not finite (NaN or infinity) for this item; "
                         "this is a fault of the model or its precision, not of the request", code="non_finite_output",
                    param=param)


def _text_window(embedding: Any) -> Optional[int]:
    """The tokens of a text the embedding reads (``MultimodalEmbedding.text_window``), or what its model declares."""
    window = getattr(embedding, "text_window", None)
    return window if isinstance(window, int) else declared_window(getattr(embedding, "model", None))


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
