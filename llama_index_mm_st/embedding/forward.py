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
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image
from sentence_transformers import SentenceTransformer
from sentence_transformers.util import batch_to_device

from ..onnx.cache import ExportFailed, GraphCache
from ..onnx.choice import BackendReport, DecisionStore, Measurement, Plan, best_of, explain, pick, torch_candidates
from ..onnx.export import EXPORTER_VERSION, OPSET, GraphSpec, export_fp32, quantize_int8
from ..onnx.fingerprint import checkpoint_directory, directory_fingerprint, stable_hash
from ..onnx.session import OnnxGraph, default_threads
from ..onnx.deps import runtime_versions
from ..types import Modality, Precision, Role
from .profiles import audio_sampling_rate

EXPORTED_MODALITIES: tuple[Modality, ...] = ("image", "audio", "text")
"""Modalities exported, in the order ``auto`` prefers to measure on (ingestion cost is mostly pixels)."""
MAX_PARAMETERS = 450_000_000
"""Larger models stay on torch: an fp32 graph over ONNX's 2 GB single-file limit needs external data."""
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


@dataclass(frozen=True)
class Selection:
    """The forward object, the report of why, and the precision the torch model must hold."""

    forward: Forward
    report: BackendReport
    torch_precision: Precision


class _Pipeline(torch.nn.Module):
    """What is traced: the model's pipeline for one modality (and role), taking tensors positionally."""

    def __init__(self, model: SentenceTransformer, names: Sequence[str], modality: str, role: Optional[str]) -> None:
        super().__init__()
        self.model, self.names, self.modality, self.role = model, list(names), modality, role

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        features: dict[str, Any] = dict(zip(self.names, tensors))
        features["modality"] = self.modality
        return self.model(features, task=self.role)["sentence_embedding"]


def select_forward(model: SentenceTransformer, checkpoint: Optional[str], plan: Plan, *,
                   batch_size: int, model_kwargs: Mapping[str, Any], late_interaction: bool = False,
                   cache: Optional[GraphCache] = None) -> Selection:
    """The forward pass ``plan`` asks for. ``model`` must hold fp32 weights (graphs are exported from them)."""
    requested = {"backend": plan.backend, "precision": plan.precision}
    torch_forward = TorchForward(model)
    if plan.onnx_precision is None:
        return Selection(torch_forward, BackendReport("torch", plan.torch_precision, plan.reason, requested),
                         plan.torch_precision)
    fallback_precision: Precision = "fp32" if plan.onnx_precision == "fp32" else plan.torch_precision
    blocker = _blocker(model, checkpoint, late_interaction)
    directory = checkpoint_directory(checkpoint) if checkpoint and blocker is None else None
    if blocker is None and directory is None:
        blocker = f"the checkpoint's files ({checkpoint}) can't be found to key the graph cache"
    if blocker is not None:
        return Selection(torch_forward, BackendReport("torch", fallback_precision, blocker, requested), fallback_precision)
    cache = cache or GraphCache()
    fingerprint = directory_fingerprint(directory, cache.memo)  # type: ignore[arg-type]
    roles: tuple[Optional[Role], ...] = ("query", "document") if _has_router(model) else (None,)
    graphs: dict[tuple[str, Optional[str]], OnnxGraph] = {}
    parts: dict[str, str] = {}
    for modality in [m for m in EXPORTED_MODALITIES if model.supports(_ST_MODALITY[m])]:
        for role in roles:
            label = modality if role is None else f"{modality} ({role})"
            try:
                entry = _graph_entry(cache, fingerprint, model, modality, role, plan.onnx_precision, model_kwargs)
                graphs[(modality, role)] = OnnxGraph(entry.path)
                parts[label] = f"onnx {plan.onnx_precision}: {entry.path}"
            except ExportFailed as failure:
                parts[label] = f"torch {fallback_precision}: the {modality} tower did not export ({failure.reason})"
    if not graphs:
        reason = "no part of the model exports to ONNX: " + "; ".join(f"{k}: {v}" for k, v in parts.items())
        return Selection(torch_forward, BackendReport("torch", fallback_precision, reason, requested, parts),
                         fallback_precision)
    onnx_forward = OnnxForward(graphs, torch_forward, by_role=roles != (None,))
    if not plan.measure:
        reason = f"backend={plan.backend!r}, precision={plan.precision!r} asks for ONNX Runtime {plan.onnx_precision}"
        return Selection(onnx_forward, BackendReport("onnx", plan.onnx_precision, reason, requested, parts),
                         fallback_precision)
    store = DecisionStore(cache)
    record = store.key(fingerprint, "embedding", sorted(parts), plan.precision, default_threads(),
                       batch_size, repr(sorted(model_kwargs.items())))
    report = store.load(record)
    if report is None:
        report = _measure(model, onnx_forward, plan, batch_size, requested, parts)
        store.save(record, report)
    if report.backend == "onnx":
        return Selection(onnx_forward, report, fallback_precision)
    return Selection(torch_forward, report, report.precision)


def _blocker(model: SentenceTransformer, checkpoint: Optional[str], late_interaction: bool) -> Optional[str]:
    """Why this model stays on torch without trying an export, or None."""
    if late_interaction:
        return "late-interaction models (ColPali family) run on torch"
    if checkpoint is None:
        return "a model given as an object has no checkpoint files to key the graph cache; pass its directory"
    parameters = sum(p.numel() for p in model.parameters())
    if parameters > MAX_PARAMETERS:
        return f"{parameters / 1e6:.0f}M parameters: larger than the {MAX_PARAMETERS / 1e6:.0f}M a single-file graph holds"
    if not any(model.supports(_ST_MODALITY[m]) for m in EXPORTED_MODALITIES):
        return f"it reads {model.modalities}, none of which is exported"
    return None


def _has_router(model: SentenceTransformer) -> bool:
    return any(type(module).__name__ == "Router" for module in model)


def _graph_entry(cache: GraphCache, fingerprint: str, model: SentenceTransformer, modality: str,
                 role: Optional[str], precision: str, model_kwargs: Mapping[str, Any]) -> Any:
    """The cached fp32 graph of one part (built and verified if needed), and its int8 form on request."""
    key = stable_hash([fingerprint, "sentence-transformers pipeline", modality, role, EXPORTER_VERSION, OPSET,
                       runtime_versions(), repr(sorted(model_kwargs.items()))])
    spec: list[GraphSpec] = []  # built once, only if a build is needed

    def graph_spec() -> GraphSpec:
        if not spec:
            spec.append(_spec(model, modality, role))
        return spec[0]

    fp32 = cache.get_or_build(key, lambda path: export_fp32(graph_spec(), path))
    if precision == "fp32":
        return fp32
    return cache.get_or_build(stable_hash([key, "int8"]), lambda path: quantize_int8(graph_spec(), fp32.path, path))


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


def _measure(model: SentenceTransformer, onnx_forward: OnnxForward, plan: Plan, batch_size: int,
             requested: Mapping[str, str], parts: Mapping[str, str]) -> BackendReport:
    """Time torch fp32, ONNX fp32 (and native bf16) on a probe batch of the first exported modality."""
    modality = next(m for m in EXPORTED_MODALITIES if any(key[0] == m for key in onnx_forward.graphs))
    rows = min(batch_size, PROBE_ROWS)
    features = model.preprocess(_sample_inputs(model, modality, rows)[0])
    role: Role = "document"

    def timed(forward: Any) -> tuple[float, np.ndarray]:
        with torch.inference_mode():
            seconds, output = best_of(lambda: forward(dict(features), role).float().cpu().numpy())
        return rows / seconds, output

    reference_speed, reference = timed(onnx_forward.fallback)
    measurements = [Measurement("torch fp32", reference_speed)]
    speed, output = timed(onnx_forward)
    measurements.append(Measurement("onnx fp32", speed, _min_cosine(output, reference)))
    for precision in torch_candidates(plan):
        if precision == "fp32":
            continue
        lowered = copy.deepcopy(model).to(dtype=torch.bfloat16)
        speed, output = timed(TorchForward(lowered))
        measurements.append(Measurement(f"torch {precision}", speed, _min_cosine(output, reference)))
        del lowered
    # ONNX fp32 passed the export's exactness check: its agreement is shown, not a gate.
    exact = [m if m.path != "onnx fp32" else Measurement(m.path, m.items_per_s) for m in measurements]
    chosen = pick(exact)
    chosen = next(m for m in measurements if m.path == chosen.path)
    backend, precision = chosen.path.split()
    probe = f"a probe batch of {rows} {UNITS[modality]}, {default_threads()} threads"
    return BackendReport(backend, precision, explain(chosen, measurements, UNITS[modality], probe),  # type: ignore[arg-type]
                         dict(requested), dict(parts), tuple(measurements))


def _min_cosine(output: np.ndarray, reference: np.ndarray) -> float:
    a, b = output.reshape(len(output), -1), reference.reshape(len(reference), -1)
    norms = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return float(np.min(np.sum(a * b, axis=1) / norms))
