"""Export a torch module to an ONNX graph, prove it reproduces torch, and quantize it to int8.

The exporter is ``torch.onnx.export(..., dynamo=False)`` (TorchScript tracing), opset 18, for every
family: it needs nothing beyond torch, exports a tiny tower in under a second and ViT-B/32 in
seconds, and its graphs match torch within a few 1e-6. The dynamo exporter gave the same numbers on
CLIP but needs ``onnxscript`` and took about 20x longer; optimum's exporters (what
sentence-transformers' own ``backend="onnx"`` uses) pin transformers < 4.58, which sentence-transformers
6 can't run with.

Tracing records one path through the code, so a trace can silently bake in a shape or a branch
(a batch size, a sequence length, CLAP's fusion switch). Every export is therefore run on its
export sample *and* on check samples of other batch sizes and lengths, against torch; a graph that
differs is refused (``ExportFailed``) and the family stays on torch.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .cache import ExportFailed
from .choice import min_cosine
from .session import OnnxGraph, runtime_errors

OPSET = 18
EXPORTER_VERSION = 1
"""Bumped whenever what we export, or how, changes: it is part of every cache key."""
EXPORTER = "torch.onnx.export (TorchScript tracing, dynamo=False), opset 18"
FP32_TOLERANCE = 1e-4
"""Largest |ONNX - torch| accepted at export, relative to the output's scale (max |torch|, at least 1).
Measured exports differ by about 1e-6; a wrong trace differs by 1e-1."""
INT8_MIN_COSINE = 0.9
"""An int8 graph whose rows fall below this cosine to torch is broken, not merely lossy: refused."""
EXPORT_ERRORS: tuple[type[BaseException], ...] = (
    RuntimeError, TypeError, ValueError, NotImplementedError, AttributeError, KeyError, IndexError,
)
"""What tracing or exporting raises on code it can't follow (``torch.onnx.OnnxExporterError`` is a RuntimeError)."""


@dataclass
class GraphSpec:
    """One graph to export: ``module(*tensors)`` in ``sample``'s key order gives one float tensor."""

    module: torch.nn.Module
    sample: Mapping[str, torch.Tensor]
    checks: Sequence[Mapping[str, torch.Tensor]] = field(default_factory=list)
    dynamic_dims: Mapping[str, Sequence[int]] = field(default_factory=dict)
    """Per input, the dims that vary (default: dim 0, plus dim 1 of 2-D integer inputs: token sequences)."""


def export_fp32(spec: GraphSpec, path: Path) -> dict[str, Any]:
    """Export ``spec`` to ``path`` and verify it; the metadata to keep with it. Raises ``ExportFailed``."""
    names = list(spec.sample)
    module = spec.module.eval()
    axes = {name: {dim: f"{name}_{dim}" for dim in spec.dynamic_dims.get(name, _default_dims(tensor))}
            for name, tensor in spec.sample.items()}
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes on shape asserts; the checks below are the test
            torch.onnx.export(
                module, tuple(spec.sample[name] for name in names), str(path), input_names=names,
                output_names=["output"], dynamic_axes={**axes, "output": {0: "batch"}},
                opset_version=OPSET, dynamo=False, do_constant_folding=True,
            )
    except EXPORT_ERRORS as exc:
        raise ExportFailed(f"torch.onnx.export failed ({type(exc).__name__}: {_first_line(exc)})") from exc
    worst = verify(spec, path)
    return {"inputs": names, "exporter": EXPORTER, "max_abs_diff": worst}


def verify(spec: GraphSpec, path: Path) -> float:
    """The largest difference from torch over the export and check samples; ``ExportFailed`` past tolerance."""
    graph = _load(path)
    worst = 0.0
    for sample in (spec.sample, *spec.checks):
        expected = _torch_output(spec.module, sample)
        got = _run(graph, sample)
        if got.shape != expected.shape:
            raise ExportFailed(f"the graph gives shape {got.shape} where torch gives {expected.shape}")
        diff = float(np.max(np.abs(got - expected))) if expected.size else 0.0
        scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
        if not diff <= FP32_TOLERANCE * scale:
            raise ExportFailed(f"the exported graph differs from torch by {diff:.3g} on a batch of "
                               f"{_rows(sample)} (the trace does not generalise)")
        worst = max(worst, diff)
    return worst


def quantize_int8(spec: GraphSpec, fp32_path: Path, path: Path, reduce_range: bool) -> dict[str, Any]:
    """Dynamic int8 quantization of an fp32 graph (weights int8 per channel, activations quantized per
    batch), with its measured agreement to torch fp32 over the spec's samples.

    ``reduce_range`` (7-bit weights) is for CPUs without VNNI: their u8 x s8 kernels (VPMADDUBSW) can
    saturate 16-bit sums on full-range weights. On all-MiniLM-L6-v2 it raised the worst cosine to fp32
    from 0.972 to 0.979 on such a CPU (mean 0.991 either way); per-tensor weights fell to 0.67-0.89."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # the quantizer logs every tensor it skips on the root logger
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(str(fp32_path), str(path), weight_type=QuantType.QInt8, per_channel=True,
                             reduce_range=reduce_range)
    except EXPORT_ERRORS + runtime_errors() as exc:
        raise ExportFailed(f"int8 quantization failed ({type(exc).__name__}: {_first_line(exc)})") from exc
    finally:
        logging.disable(previous)
    graph = _load(path)
    cosines, diffs = [], []
    expected = np.zeros(0)
    for sample in (spec.sample, *spec.checks):
        expected = _torch_output(spec.module, sample)
        got = _run(graph, sample)
        cosines.append(min_cosine(got, expected))
        diffs.append(float(np.max(np.abs(got - expected))) if expected.size else 0.0)
    cosine = min(cosines) if cosines else 1.0
    if expected.ndim > 1 and expected.shape[-1] > 1 and cosine < INT8_MIN_COSINE:  # vectors, not single scores
        raise ExportFailed(f"the int8 graph's outputs fall to cosine {cosine:.3f} against fp32")
    return {"quantization": f"onnxruntime quantize_dynamic, QInt8 weights per channel, reduce_range={reduce_range}",
            "int8_min_cosine": cosine, "int8_max_abs_diff": max(diffs)}


def _default_dims(tensor: torch.Tensor) -> list[int]:
    if tensor.ndim == 2 and not torch.is_floating_point(tensor):
        return [0, 1]
    return [0]


def _load(path: Path) -> OnnxGraph:
    try:
        return OnnxGraph(path)
    except runtime_errors() as exc:
        raise ExportFailed(f"ONNX Runtime cannot load the exported graph ({_first_line(exc)})") from exc


def _run(graph: OnnxGraph, sample: Mapping[str, torch.Tensor]) -> np.ndarray:
    try:
        return graph.run(sample)
    except ValueError as exc:
        raise ExportFailed(f"the exported graph cannot run a batch of {_rows(sample)} ({exc})") from exc


def _torch_output(module: torch.nn.Module, sample: Mapping[str, torch.Tensor]) -> np.ndarray:
    with torch.no_grad():
        return module(*sample.values()).float().cpu().numpy()


def _rows(sample: Mapping[str, torch.Tensor]) -> int:
    return int(next(iter(sample.values())).shape[0]) if sample else 0


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:300] if lines else type(error).__name__
