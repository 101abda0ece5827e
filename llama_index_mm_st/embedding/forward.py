"""The encoder's forward pass on torch or on ONNX Runtime: the one seam between the two backends.

``Encoder._forward`` hands a batch of features (what ``SentenceTransformer.preprocess`` made,
bucketed) to a forward object and gets the sentence embeddings back; everything around it (input
resolution, decoding, prompts, truncation, bucketing, per-item errors, normalisation) is the same
code on both backends.

What is exported is the model's whole Sentence Transformers pipeline for one modality (the
transformer and any Pooling/Dense/Normalize modules after it), traced from
``model({..., "modality": m})["sentence_embedding"]``, so a graph gives exactly what the torch
forward gives. One graph per modality the model reads (text, image, audio); a model with a
``Router`` (different query and document modules) gets one per role too. A part that does not
export, or whose graph does not reproduce torch (``onnx.export.verify``), stays on torch.
``embedding_kind`` describes all this to ``onnx.selection.select``, which chooses the path.
"""

from __future__ import annotations

import copy
from functools import partial
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image
from sentence_transformers import SentenceTransformer
from sentence_transformers.util import batch_to_device

from ..onnx.cache import ExportFailed
from ..onnx.export import GraphSpec
from ..onnx.selection import ModelKind, Part, Probe
from ..onnx.session import OnnxGraph
from ..runtime import torch_dtype
from ..types import Modality, Precision, Role
from .profiles import audio_sampling_rate

EXPORTED_MODALITIES: tuple[Modality, ...] = ("image", "audio", "text")
"""Modalities exported, in the order ``auto`` prefers to measure on (ingestion cost is mostly pixels)."""
PROBE_ROWS = 8
UNITS = {"image": "images", "audio": "clips", "text": "texts"}
_ST_MODALITY = {"text": "text", "image": "image", "audio": "audio"}


class TorchForward:
    """The torch forward pass: the model's own pipeline."""

    backend = "torch"

    def __init__(self, model: SentenceTransformer) -> None:
        self.model = model

    def __call__(self, features: dict[str, Any], role: Role) -> torch.Tensor:
        features = batch_to_device(features, self.model.device)
        half = _half_dtype(self.model)
        if half is not None:
            features = cast_floating(features, half)
        return self.model(features, task=role)["sentence_embedding"]


class OnnxForward:
    """ONNX Runtime graphs per (modality, role); a batch of a modality without a graph runs on torch."""

    backend = "onnx"

    def __init__(self, graphs: Mapping[tuple[str, Optional[str]], OnnxGraph], fallback: TorchForward,
                 by_role: bool) -> None:
        self.graphs = dict(graphs)
        self.fallback = fallback
        self.by_role = by_role

    def __call__(self, features: dict[str, Any], role: Role) -> torch.Tensor:
        graph = self.graphs.get((features.get("modality", "text"), role if self.by_role else None))
        if graph is None:
            return self.fallback(features, role)
        return torch.from_numpy(graph.run(features))


Forward = Union[TorchForward, OnnxForward]


class _Pipeline(torch.nn.Module):
    """What is traced: the model's pipeline for one modality (and role), taking tensors positionally."""

    def __init__(self, model: SentenceTransformer, names: Sequence[str], modality: str, role: Optional[str]) -> None:
        super().__init__()
        self.model, self.names, self.modality, self.role = model, list(names), modality, role

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        features: dict[str, Any] = dict(zip(self.names, tensors))
        features["modality"] = self.modality
        return self.model(features, task=self.role)["sentence_embedding"]


def embedding_kind(model: SentenceTransformer, *, batch_size: int, late_interaction: bool = False) -> ModelKind[Forward]:
    """The embedding as ``onnx.selection.select`` takes it: one part per modality the model reads (and
    per role, for a model with a ``Router``), probed on a batch of its first exported modality."""
    roles: tuple[Optional[Role], ...] = ("query", "document") if _has_router(model) else (None,)
    places: dict[str, tuple[str, Optional[str]]] = {}
    parts = []
    for modality in [m for m in EXPORTED_MODALITIES if model.supports(_ST_MODALITY[m])]:
        for role in roles:
            label = modality if role is None else f"{modality} ({role})"
            places[label] = (modality, role)
            parts.append(Part(label, ["sentence-transformers pipeline", modality, role],
                              partial(_spec, model, modality, role), f"the {modality} tower"))

    def onnx(graphs: Mapping[str, OnnxGraph], fallback: Forward) -> Forward:
        return OnnxForward({places[label]: graph for label, graph in graphs.items()}, fallback,  # type: ignore[arg-type]
                           by_role=roles != (None,))

    def probe(torch_fp32: Forward, onnx_forward: Forward, lower: Sequence[Precision]) -> Probe:
        return _probe(model, onnx_forward, batch_size, lower)  # type: ignore[arg-type]

    return ModelKind("embedding", parts, lambda precision: TorchForward(model), onnx, probe,
                     parameters=sum(p.numel() for p in model.parameters()),
                     blocker=_blocker(model, late_interaction), decision_key=(batch_size,))


def _blocker(model: SentenceTransformer, late_interaction: bool) -> str:
    """Why this model stays on torch without trying an export ("" if nothing stops it)."""
    if late_interaction:
        return "late-interaction models (ColPali family) run on torch"
    if not any(model.supports(_ST_MODALITY[m]) for m in EXPORTED_MODALITIES):
        return f"it reads {model.modalities}, none of which is exported"
    return ""


def _has_router(model: SentenceTransformer) -> bool:
    return any(type(module).__name__ == "Router" for module in model)


def _spec(model: SentenceTransformer, modality: str, role: Optional[str]) -> GraphSpec:
    export_inputs, *check_inputs = _sample_inputs(model, modality)
    sample = _tensors(model, export_inputs)
    return GraphSpec(_Pipeline(model, list(sample), modality, role).eval(), sample,
                     [_tensors(model, inputs) for inputs in check_inputs])


def _tensors(model: SentenceTransformer, inputs: list[Any]) -> dict[str, torch.Tensor]:
    features = model.preprocess(inputs)
    odd = sorted(k for k, v in features.items() if k != "modality" and not isinstance(v, torch.Tensor))
    if odd:
        raise ExportFailed(f"the processor gives inputs that are not tensors ({', '.join(odd)})")
    return {k: v for k, v in features.items() if isinstance(v, torch.Tensor)}


def _sample_inputs(model: SentenceTransformer, modality: str, rows: Optional[int] = None) -> list[list[Any]]:
    """Inputs of varied batch sizes and lengths: the first is traced, the others check the trace.
    With ``rows``: one batch of that many (the ``auto`` probe)."""
    rng = np.random.default_rng(0)
    if modality == "text":
        words = "a photo of two dogs playing in the snow near an old red barn at sunset".split()
        make = lambda n: [" ".join(words[: 3 + (5 * i) % len(words)]) for i in range(n)]  # noqa: E731
        return [make(rows)] if rows else [make(2), ["x"], make(3)]
    if modality == "image":
        def make(n: int) -> list[Image.Image]:
            return [Image.fromarray(rng.integers(0, 256, (48 + 37 * i, 64 + 23 * i, 3), dtype=np.uint8))
                    for i in range(n)]
        return [make(rows)] if rows else [make(2), make(1), make(3)]
    rate = audio_sampling_rate(model) or 48_000
    clip = lambda seconds: {"array": rng.standard_normal(int(rate * seconds)).astype(np.float32),  # noqa: E731
                            "sampling_rate": rate}
    if rows:
        return [[clip(1.0 + i % 3) for i in range(rows)]]
    # one clip longer than any model's window, so a trace that baked in "no clip is long" is caught
    return [[clip(1.0), clip(2.0)], [clip(0.5)], [clip(0.7), clip(3.0), clip(12.0)]]


def _probe(model: SentenceTransformer, onnx_forward: OnnxForward, batch_size: int, lower: Sequence[Precision]) -> Probe:
    """torch fp32, ONNX fp32 (and native bf16, on a copy of the model) on a probe batch of the first
    exported modality: ingestion cost is mostly pixels."""
    modality = next(m for m in EXPORTED_MODALITIES if any(key[0] == m for key in onnx_forward.graphs))
    rows = min(batch_size, PROBE_ROWS)
    features = model.preprocess(_sample_inputs(model, modality, rows)[0])

    def run(forward: Any) -> Any:
        def once() -> np.ndarray:
            with torch.inference_mode():
                return forward(dict(features), "document").float().cpu().numpy()
        return once

    runs = {"torch fp32": run(onnx_forward.fallback), "onnx fp32": run(onnx_forward)}
    runs.update({f"torch {p}": run(TorchForward(copy.deepcopy(model).to(dtype=torch_dtype(p)))) for p in lower})
    return Probe(rows, UNITS[modality], f"a probe batch of {rows} {UNITS[modality]}", runs)


def _half_dtype(model: Any) -> Optional[torch.dtype]:
    """The model's dtype when it runs in bf16 or fp16, else None (fp32 inputs are passed as they are)."""
    parameter = next(iter(model.parameters()), None)
    dtype = parameter.dtype if parameter is not None else torch.float32
    return dtype if dtype in (torch.bfloat16, torch.float16) else None


def cast_floating(features: dict[str, Any], dtype: torch.dtype) -> dict[str, Any]:
    """Float inputs (pixels, audio features) in the model's half precision. Processors hand out fp32,
    and some towers never cast them (CLAP's audio batch norm fails on a bf16 model: "mixed dtype");
    sentence-transformers' own ``encode`` fails the same way. Integer inputs (ids, masks) stay."""
    return {key: value.to(dtype) if isinstance(value, torch.Tensor) and value.is_floating_point()
            and value.dtype != dtype else value for key, value in features.items()}
