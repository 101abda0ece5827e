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
from typing import Any, Iterator, Sequence, Union

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.util import batch_to_device
from tqdm.auto import tqdm

from ..concurrency import Prefetched
from ..errors import ImageLoadError, ItemFailure, UnsupportedModalityError
from ..fetch import FetchOptions
from ..images import DecodeOptions
from ..inputs import ImageRef
from ..types import Modality, Role
from .profiles import ModelProfile, text_processing_kwargs

EncodeItem = Union[str, ImageRef, tuple[str, ImageRef]]
"""Text, an image reference, or a (text, image) pair, by modality."""

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
    bucket_batches: bool = True
    """Pad each forward pass up to a power of two rows (at most ``batch_size``), and text up to a multiple
    of ``TEXT_LENGTH_BUCKET`` tokens, and drop the padding: see ``bucket_rows``. Off, every batch size and
    text length that dynamic batching produces is a new input shape."""


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
        self._text_padding = None if self._text_kwargs else right_padding(model)
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="mmst-decode")

    def supports(self, modality: Modality) -> bool:
        return self.model.supports(_ST_MODALITY[modality])

    def check_supported(self, modality: Modality) -> None:
        if not self.supports(modality):
            raise UnsupportedModalityError(
                f"this model cannot encode {modality!r} inputs; it supports {self.model.modalities}"
            )

    def encode(self, modality: Modality, items: Sequence[EncodeItem], role: Role, *, stop_on_error: bool,
               progress: bool = False) -> EncodeOutput:
        """Encode same-modality items. With ``stop_on_error`` the first bad item raises ``ImageLoadError``."""
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

    def _order(self, modality: Modality, items: Sequence[EncodeItem]) -> list[int]:
        if modality != "text":
            return list(range(len(items)))
        return sorted(range(len(items)), key=lambda i: -len(items[i]))  # type: ignore[arg-type]

    def _prepare(self, modality: Modality, items: Sequence[EncodeItem], role: Role) -> Iterator[_Prepared]:
        order = self._order(modality, items)
        size = self.settings.batch_size
        for start in range(0, len(order), size):
            positions = order[start : start + size]
            inputs, ok, failures = self._load(modality, [items[p] for p in positions], positions)
            features = self._preprocess(inputs, role) if inputs else None
            yield _Prepared(ok, features, failures)

    def _load(self, modality: Modality, chunk: Sequence[EncodeItem], positions: Sequence[int]
              ) -> tuple[list[Any], list[int], list[ItemFailure]]:
        if modality == "text":
            return list(chunk), list(positions), []
        results = list(self._pool.map(self._load_one, chunk))
        inputs, ok, failures = [], [], []
        for position, item, result in zip(positions, chunk, results):
            if isinstance(result, ImageLoadError):
                failures.append(ItemFailure(position, _label(item), result))
            else:
                inputs.append(result)
                ok.append(position)
        return inputs, ok, failures

    def _load_one(self, item: EncodeItem) -> Any:
        try:
            if isinstance(item, tuple):
                text, ref = item
                return {"text": text, "image": ref.load(self.settings.decode, self.settings.fetch)}
            return item.load(self.settings.decode, self.settings.fetch)  # type: ignore[union-attr]
        except ImageLoadError as exc:
            return exc

    def _call_kwargs(self, role: Role) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"task": role}
        if self._text_kwargs:
            kwargs["processing_kwargs"] = {"text": dict(self._text_kwargs)}
        return kwargs

    def _preprocess(self, inputs: list[Any], role: Role) -> dict[str, Any]:
        return self.model.preprocess(inputs, prompt=self.prompts[role], **self._call_kwargs(role))

    @torch.inference_mode()
    def _forward(self, features: dict[str, Any], role: Role) -> np.ndarray:
        rows = _rows(features)
        if self.settings.bucket_batches and rows:
            features = pad_rows(features, rows, bucket_rows(rows, self.settings.batch_size))
            if self._text_padding is not None and features.get("modality") == "text":
                features = pad_text_columns(features, *self._text_padding)
        features = batch_to_device(features, self.model.device)
        embeddings = self.model(features, task=role)["sentence_embedding"]
        if rows:
            embeddings = embeddings[:rows]
        return self._finish(embeddings)

    def _finish(self, embeddings: torch.Tensor) -> np.ndarray:
        if self.settings.truncate_dim:
            embeddings = embeddings[..., : self.settings.truncate_dim]
        embeddings = embeddings.float()
        if self.settings.normalize:
            embeddings = torch.nn.functional.normalize(embeddings, p=2, dim=-1)
        return embeddings.cpu().numpy()

    def _encode_multi_process(self, modality: Modality, items: Sequence[EncodeItem], role: Role,
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


def _label(item: EncodeItem) -> str:
    if isinstance(item, tuple):
        return item[1].label
    if isinstance(item, ImageRef):
        return item.label
    return repr(item[:40])


def bucket_rows(rows: int, cap: int) -> int:
    """The row count a batch of ``rows`` is padded to: the next power of two, at most ``cap``.

    Why: CPU kernels (oneDNN, in bf16 above all) build and keep a kernel per input shape. Dynamic
    batching gives every batch size from 1 to the cap, so a long concurrent load fills that cache with
    dozens of shapes and resident memory grows by 100+ MB; with buckets there are log2(cap) + 1 shapes.
    Padding costs at most one forward pass's worth of rows below the cap, and a loaded server runs
    full batches anyway (``bench/memory.py`` measures both).
    """
    if rows >= cap:
        return rows
    return min(cap, 1 << (rows - 1).bit_length())


TEXT_LENGTH_BUCKET = 16
"""Text batches are padded to a multiple of this many tokens (capped at the model's window)."""
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
    """Right-pad ``input_ids`` (with ``pad_id``) and the mask (with 0) to the next length bucket."""
    ids, mask = features.get("input_ids"), features.get("attention_mask")
    if not isinstance(ids, torch.Tensor) or not isinstance(mask, torch.Tensor) or ids.dim() != 2:
        return features
    length = ids.shape[1]
    target = min(window, -(-length // TEXT_LENGTH_BUCKET) * TEXT_LENGTH_BUCKET)
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


def _rows(features: dict[str, Any]) -> int:
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
