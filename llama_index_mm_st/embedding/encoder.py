"""The encoding pipeline: one modality group in, vectors in input order out.

It does what ``SentenceTransformer.encode`` does (prompt, ``preprocess``, forward, truncate,
normalise) so results match it exactly in fp32, and adds what it lacks:

- images are resolved and decoded here, in a thread pool, with per-item error isolation;
- decoding and preprocessing of batch N+1 run in a background thread while the model runs batch N;
- text is sorted by length so batches carry little padding, then restored to input order;
- model-family quirks (``profiles.py``) are applied per call, never by mutating the model.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.util import batch_to_device
from tqdm.auto import tqdm

from ..concurrency import Prefetched
from ..errors import ImageLoadError, ItemFailure, UnsupportedModalityError
from ..fetch import FetchOptions
from ..images import DecodeOptions
from ..inputs import Parts
from ..types import Modality, Role
from .profiles import ModelProfile, text_processing_kwargs

_ST_MODALITY: dict[str, Any] = {"text": "text", "image": "image", "text+image": ("image", "text")}


@dataclass
class EncodeOutput:
    """Rows of ``vectors`` follow the input order; rows of failed items are zeros and listed in ``failures``."""

    vectors: np.ndarray
    failures: list[ItemFailure] = field(default_factory=list)


@dataclass(frozen=True)
class EncodeSettings:
    """Everything that shapes an encode call besides the inputs."""

    batch_size: int = 32
    normalize: bool = True
    truncate_dim: int | None = None
    decode: DecodeOptions = DecodeOptions()
    fetch: FetchOptions = FetchOptions()
    prefetch_depth: int = 2
    devices: tuple[str, ...] | None = None
    multi_process_min_items: int = 256


@dataclass
class _Prepared:
    positions: list[int]
    features: dict[str, Any] | None
    failures: list[ItemFailure]


def resolve_prompt(model: SentenceTransformer, role: Role, prompt_name: str | None) -> str | None:
    """The prompt ``encode_query``/``encode_document`` would use, or the named one if given."""
    name = prompt_name
    if name is None:
        name = role if role in model.prompts else model.default_prompt_name
    if name is None:
        return None
    if name not in model.prompts:
        raise ValueError(f"prompt name {name!r} is not one of the model's prompts {sorted(model.prompts)}")
    return model.prompts[name] or None


class Encoder:
    """Drives one loaded ``SentenceTransformer``; thread-safe for concurrent calls."""

    def __init__(
        self,
        model: SentenceTransformer,
        profile: ModelProfile,
        settings: EncodeSettings,
        prompt_names: dict[Role, str | None],
        workers: int,
    ) -> None:
        self.model = model
        self.profile = profile
        self.settings = settings
        self.prompts = {role: resolve_prompt(model, role, prompt_names.get(role)) for role in ("query", "document")}
        self._text_kwargs = text_processing_kwargs(model, profile)
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="mmst-decode")

    def supports(self, modality: Modality) -> bool:
        return self.model.supports(_ST_MODALITY[modality])

    def check_supported(self, modality: Modality) -> None:
        if not self.supports(modality):
            raise UnsupportedModalityError(
                f"this model cannot encode {modality!r} inputs; it supports {self.model.modalities}"
            )

    def encode(self, modality: Modality, items: Sequence[Parts], role: Role, *, stop_on_error: bool,
               progress: bool = False) -> EncodeOutput:
        """Encode items that all have ``modality``. With ``stop_on_error`` the first bad item raises
        ``ImageLoadError``; otherwise bad items are listed in the output's ``failures``."""
        self.check_supported(modality)
        dim = self.dimension()
        vectors = np.zeros((len(items), dim), dtype=np.float32)
        output = EncodeOutput(vectors)
        if not items:
            return output
        devices = self.settings.devices
        if devices and len(items) >= self.settings.multi_process_min_items:
            return self._encode_multi_process(modality, items, role, stop_on_error, output)
        batches = Prefetched(self._prepare(modality, items, role), depth=self.settings.prefetch_depth)
        with tqdm(total=len(items), disable=not progress, desc=f"Embedding {modality}") as bar:
            for batch in batches:
                if batch.failures and stop_on_error:
                    batches.close()
                    raise batch.failures[0].error
                output.failures.extend(batch.failures)
                if batch.features is not None:
                    vectors[batch.positions] = self._forward(batch.features, role)
                bar.update(len(batch.positions) + len(batch.failures))
        output.failures.sort(key=lambda failure: failure.position)
        return output

    def dimension(self) -> int:
        """Output dimension after ``truncate_dim``."""
        full = self.model.get_embedding_dimension()
        if full is None:
            raise ValueError("the model does not report its embedding dimension")
        truncate = self.settings.truncate_dim
        return min(full, truncate) if truncate else full

    def _order(self, modality: Modality, items: Sequence[Parts]) -> list[int]:
        if modality != "text":
            return list(range(len(items)))
        return sorted(range(len(items)), key=lambda i: -len(items[i].text or ""))

    def _prepare(self, modality: Modality, items: Sequence[Parts], role: Role) -> Iterator[_Prepared]:
        order = self._order(modality, items)
        size = self.settings.batch_size
        for start in range(0, len(order), size):
            positions = order[start : start + size]
            inputs, ok, failures = self._load(modality, [items[p] for p in positions], positions)
            features = self._preprocess(inputs, role) if inputs else None
            yield _Prepared(ok, features, failures)

    def _load(self, modality: Modality, chunk: Sequence[Parts], positions: Sequence[int]
              ) -> tuple[list[Any], list[int], list[ItemFailure]]:
        if modality == "text":
            return [item.text for item in chunk], list(positions), []
        results = list(self._pool.map(self._load_one, chunk))
        inputs, ok, failures = [], [], []
        for position, item, result in zip(positions, chunk, results):
            if isinstance(result, ImageLoadError):
                failures.append(ItemFailure(position, item.image.label if item.image else "text", result))
            else:
                inputs.append(result)
                ok.append(position)
        return inputs, ok, failures

    def _load_one(self, item: Parts) -> Any:
        """The model input of one item (its image decoded), or the ``ImageLoadError`` in its place."""
        try:
            image = item.image.load(self.settings.decode, self.settings.fetch)  # type: ignore[union-attr]
        except ImageLoadError as exc:
            return exc
        return image if item.text is None else {"text": item.text, "image": image}

    def _call_kwargs(self, role: Role) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"task": role}
        if self._text_kwargs:
            kwargs["processing_kwargs"] = {"text": dict(self._text_kwargs)}
        return kwargs

    def _preprocess(self, inputs: list[Any], role: Role) -> dict[str, Any]:
        return self.model.preprocess(inputs, prompt=self.prompts[role], **self._call_kwargs(role))

    @torch.inference_mode()
    def _forward(self, features: dict[str, Any], role: Role) -> np.ndarray:
        features = batch_to_device(features, self.model.device)
        embeddings = self.model(features, task=role)["sentence_embedding"]
        return self._finish(embeddings)

    def _finish(self, embeddings: torch.Tensor) -> np.ndarray:
        if self.settings.truncate_dim:
            embeddings = embeddings[..., : self.settings.truncate_dim]
        embeddings = embeddings.float()
        if self.settings.normalize:
            embeddings = torch.nn.functional.normalize(embeddings, p=2, dim=-1)
        return embeddings.cpu().numpy()

    def _encode_multi_process(self, modality: Modality, items: Sequence[Parts], role: Role,
                              stop_on_error: bool, output: EncodeOutput) -> EncodeOutput:
        """Spread a large group over ``settings.devices`` with sentence-transformers' process pool."""
        inputs, ok, failures = self._load(modality, items, range(len(items)))
        if failures and stop_on_error:
            raise failures[0].error
        output.failures.extend(failures)
        if inputs:
            embeddings = self.model.encode(
                inputs, prompt=self.prompts[role], batch_size=self.settings.batch_size,
                device=list(self.settings.devices or ()), convert_to_tensor=True, **self._call_kwargs(role),
            )
            output.vectors[ok] = self._finish(embeddings)
        return output

    def close(self) -> None:
        self._pool.shutdown(wait=False)

