"""The encoding pipeline: one modality group in, vectors in input order out.

It does what ``SentenceTransformer.encode`` does (prompt, ``preprocess``, forward, truncate,
normalise) so results match it exactly in fp32, and adds what it lacks:

- images are resolved and decoded here, in a thread pool, with per-item error isolation;
- decoding and preprocessing of batch N+1 run in a background thread while the model runs batch N;
- text is sorted by length so batches carry little padding, then restored to input order;
- model-family quirks (``profiles.py``) are applied per call, never by mutating the model.
"""

from __future__ import annotations

import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from tqdm.auto import tqdm

from ..concurrency import Prefetched
from ..errors import EncodeError, ItemError, ItemFailure, UnsupportedModalityError
from ..fetch import FetchOptions
from ..images import DecodeOptions
from ..inputs import Parts
from ..media import MediaLimits
from ..media_refs import media_model_input
from ..text_limits import bound_text, char_limit, declared_window
from ..types import Modality, Role
from .buckets import batch_rows, bucket_rows, pad_rows, pad_text_columns, right_padding
from .forward import Forward, TorchForward
from .profiles import ModelProfile, audio_sampling_rate, text_processing_kwargs, video_frame_chooser

_ST_MODALITY: dict[str, Any] = {"text": "text", "image": "image", "text+image": ("image", "text"),
                                 "audio": "audio", "video": "video"}

MODEL_FAILURES: tuple[type[BaseException], ...] = (RuntimeError, ValueError, IndexError, TypeError)
"""What a processor or a forward pass raises on an input it cannot take (torch errors are RuntimeErrors)."""
TEXT_LABEL_CHARS = 40
"""How much of a text names it in an error."""


@dataclass
class EncodeOutput:
    """Rows of ``vectors`` follow the input order; rows of failed items are zeros and listed in ``failures``."""

    vectors: np.ndarray
    failures: list[ItemFailure] = field(default_factory=list)
    multivectors: list[np.ndarray | None] | None = None
    """Late-interaction models only: each item's token/patch vectors (``vectors`` then holds their pooled vector)."""


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
    media: MediaLimits = MediaLimits()
    bucket_batches: bool = True
    """Pad each forward pass up to a few row counts (at most ``batch_size``: ``bucket_rows``) and text up
    to a few lengths (``text_length_bucket``), and drop the padding. Off, every batch size and text
    length that dynamic batching produces is a new input shape."""


@dataclass
class _Prepared:
    """One batch ready for the model: positions, model inputs and their labels, and the features
    (None when preprocessing the batch as a whole failed with ``error``)."""

    positions: list[int]
    inputs: list[Any]
    labels: list[str]
    features: dict[str, Any] | None
    failures: list[ItemFailure]
    error: BaseException | None = None
    modality: Modality = "text"


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
        forward: Forward | None = None,
    ) -> None:
        self.model = model
        self.forward_pass: Forward = forward or TorchForward(model)
        """Runs one batch of features through the model: torch or ONNX Runtime (``forward.py``)."""
        self.profile = profile
        self.settings = settings
        self.prompts = {role: resolve_prompt(model, role, prompt_names.get(role)) for role in ("query", "document")}
        self._text_kwargs = text_processing_kwargs(model, profile)
        self.text_window = self._text_kwargs.get("max_length") or declared_window(model)
        """Tokens of a text the model reads; a text is cut to ``text_limits.char_limit`` of it before tokenising."""
        self._text_chars = char_limit(self.text_window)
        self._text_padding = None if self._text_kwargs else right_padding(model)
        self._sampling_rate = audio_sampling_rate(model)
        self._choose_frames = video_frame_chooser(model)
        self._workers = max(1, workers)
        self._pool_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._shut_pool: weakref.finalize | None = None

    def _decode_pool(self) -> ThreadPoolExecutor:
        """The decode threads, started on first use (again after ``close``). They are shut by ``close``,
        or when this encoder is garbage collected (a finalizer holds the pool, never the encoder)."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="mmst-decode")
                self._shut_pool = weakref.finalize(self, self._pool.shutdown, wait=False)
            return self._pool

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
        output = self._new_output(len(items))
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
                if batch.inputs:
                    output.failures.extend(self._run_batch(batch, role, output, stop_on_error))
                bar.update(len(batch.positions) + len(batch.failures))
        output.failures.sort(key=lambda failure: failure.position)
        return output

    def _new_output(self, count: int) -> EncodeOutput:
        return EncodeOutput(np.zeros((count, self.dimension()), dtype=np.float32))

    def _put(self, output: EncodeOutput, positions: Sequence[int], result: Any) -> None:
        """Write one forward pass's result (``_forward``'s return value) at the items' positions."""
        output.vectors[list(positions)] = result

    def _run_batch(self, batch: _Prepared, role: Role, output: EncodeOutput, stop_on_error: bool) -> list[ItemFailure]:
        """Run one batch. If the model or its processor refuses it, run its items one at a time to name
        the item it can't take: bisecting a deterministic failure, not retrying a transient one."""
        try:
            if batch.error is not None:
                raise batch.error
            self._put(output, batch.positions, self._forward(batch.features, role))  # type: ignore[arg-type]
            return []
        except MODEL_FAILURES:
            if stop_on_error and len(batch.inputs) == 1:
                raise
        failures = []
        for position, model_input, label in zip(batch.positions, batch.inputs, batch.labels):
            try:
                self._put(output, [position], self._forward(self._preprocess([model_input], role, batch.modality), role))
            except MODEL_FAILURES as exc:
                error = EncodeError(label, f"the model cannot take it ({type(exc).__name__}: {_first_line(exc)})")
                if stop_on_error:
                    raise error from exc
                failures.append(ItemFailure(position, label, error))
        return failures

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
            labels = [_label(items[p]) for p in ok]
            features, error = None, None
            if inputs:
                try:
                    features = self._preprocess(inputs, role, modality)
                except MODEL_FAILURES as exc:  # the consumer finds the item that caused it
                    error = exc
            yield _Prepared(ok, inputs, labels, features, failures, error, modality)

    def _load(self, modality: Modality, chunk: Sequence[Parts], positions: Sequence[int]
              ) -> tuple[list[Any], list[int], list[ItemFailure]]:
        if modality == "text":
            return [bound_text(item.text or "", self._text_chars) for item in chunk], list(positions), []
        results = list(self._decode_pool().map(self._load_one, chunk))
        inputs, ok, failures = [], [], []
        for position, item, result in zip(positions, chunk, results):
            if isinstance(result, ItemError):
                failures.append(ItemFailure(position, _label(item), result))
            else:
                inputs.append(result)
                ok.append(position)
        return inputs, ok, failures

    def _load_one(self, item: Parts) -> Any:
        """The model input of one item (its image or media decoded), or the ``ItemError`` in its place."""
        try:
            if item.media is not None:
                return self._load_media(item)
            image = item.image.load(self.settings.decode, self.settings.fetch)  # type: ignore[union-attr]
        except ItemError as exc:
            return exc
        return image if item.text is None else {"text": bound_text(item.text, self._text_chars), "image": image}

    def _load_media(self, item: Parts) -> dict[str, Any]:
        """Audio: mono at the model's rate, as sentence-transformers' ``{"array", "sampling_rate"}``.
        Video: only the frames the model's processor would sample, with the metadata that says which."""
        return media_model_input(item.media, self._sampling_rate, self._choose_frames,  # type: ignore[arg-type]
                                 self.settings.fetch, self.settings.media)

    def _call_kwargs(self, role: Role, modality: Modality = "text") -> dict[str, Any]:
        kwargs: dict[str, Any] = {"task": role}
        processing: dict[str, Any] = {}
        if self._text_kwargs:
            processing["text"] = dict(self._text_kwargs)
        if modality == "video" and self._choose_frames is not None:
            processing["video"] = {"do_sample_frames": False}  # the frames given are the processor's own pick
        if processing:
            kwargs["processing_kwargs"] = processing
        return kwargs

    def _preprocess(self, inputs: list[Any], role: Role, modality: Modality = "text") -> dict[str, Any]:
        return self.model.preprocess(inputs, prompt=self.prompts[role], **self._call_kwargs(role, modality))

    @torch.inference_mode()
    def _forward(self, features: dict[str, Any], role: Role) -> np.ndarray:
        rows = batch_rows(features)
        if self.settings.bucket_batches and rows:
            features = pad_rows(features, rows, bucket_rows(rows, self.settings.batch_size))
            if self._text_padding is not None and features.get("modality") == "text":
                features = pad_text_columns(features, *self._text_padding)
        embeddings = self.forward_pass(features, role)
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
                device=list(self.settings.devices or ()), convert_to_tensor=True, **self._call_kwargs(role, modality),
            )
            output.vectors[ok] = self._finish(embeddings)
        return output

    def close(self) -> None:
        """Shut the decode threads now (work already handed to them finishes); a later call starts new ones."""
        with self._pool_lock:
            shut, self._pool, self._shut_pool = self._shut_pool, None, None
        if shut is not None:
            shut()


def _label(item: Parts) -> str:
    """How an item is named in errors: its media's or image's label, or the start of its text."""
    if item.media is not None:
        return item.media.label
    if item.image is not None:
        return item.image.label
    text = item.text or ""
    return f"text {text[:TEXT_LABEL_CHARS]!r}" + ("..." if len(text) > TEXT_LABEL_CHARS else "")


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__

