"""One selection of the forward path for every model kind: export, decide (or recall the decision), build.

A model kind (the embedding's Sentence Transformers pipeline, a text cross-encoder, BLIP's two
towers) describes itself once as a ``ModelKind``: the parts it exports, how to build its torch and
its ONNX forward objects, and the probe ``auto`` times. ``select`` then runs the same steps for each:

1. a plan without ONNX (``backend="torch"``, a GPU, bf16 asked for, no onnxruntime): torch, as planned;
2. a model that can't be exported (``kind.blocker``), or whose files can't key the cache: torch;
3. each part's verified graph from the cache (exported once); a part that fails stays on torch;
4. no graph at all: torch, naming each part's reason;
5. ONNX asked for explicitly: ONNX, not measured;
6. ``auto``: the decision recorded for this checkpoint on this machine and these versions, or a new
   measurement (``measure.py``: interleaved rounds, a margin over the noise), then recorded.

This module knows forward objects only through the ``ModelKind`` callables; it loads no model code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Mapping, Optional, Sequence, TypeVar

from ..types import Precision
from .cache import ExportFailed, GraphCache
from .choice import BackendReport, DecisionStore, Plan, torch_candidates
from .export import GraphSpec
from .graphs import cached_graph, checkpoint_fingerprint
from .measure import measure, min_cosine
from .session import OnnxGraph, default_threads

F = TypeVar("F")
"""A model kind's forward object (the embedding's forward pass, a scorer's scores, BLIP's towers)."""


@dataclass(frozen=True)
class Part:
    """One exported piece of a model: its name in reports, what keys its graph, and how to trace it."""

    label: str
    """As reports name it: ``"image"``, ``"text (query)"``, ``"vision"``, ``"scores"``."""
    key: Sequence[Any]
    """What the graph is, in the cache key (with the checkpoint's fingerprint and the versions)."""
    spec: Callable[[], GraphSpec]
    """What to trace; called only when the graph must be built."""
    noun: str
    """What failed, in a fallback's reason: ``"the image tower"``, ``"the cross-encoder"``."""


@dataclass(frozen=True)
class Probe:
    """What ``auto`` times: one run per path on one fixed batch, ``"torch fp32"`` (the reference) included."""

    rows: int
    unit: str
    """What a row is, plural: ``"images"``, ``"pairs"``."""
    description: str
    """The probe, for the decision's reason: ``"a probe batch of 8 images"``."""
    runs: Mapping[str, Callable[[], Any]]
    agreement: Callable[[Any, Any], float] = min_cosine


@dataclass(frozen=True)
class ModelKind(Generic[F]):
    """How one kind of model is selected (see the module docstring)."""

    what: str
    """The kind, naming its recorded decisions: ``"embedding"``, ``"cross-encoder"``, ``"blip itm"``."""
    parts: Sequence[Part]
    torch: Callable[[Precision], F]
    """The torch forward object for a precision (the precision the model's weights will hold)."""
    onnx: Callable[[Mapping[str, OnnxGraph], F], F]
    """The ONNX forward object from the parts' graphs (by label; a failed part is missing) and the torch
    forward those parts fall back to."""
    probe: Callable[[F, F, Sequence[Precision]], Probe]
    """The probe from (torch fp32's forward, ONNX's forward, the lower torch precisions to time too)."""
    parameters: int
    blocker: str = ""
    """Why this model stays on torch without trying an export ("" when nothing stops it)."""
    decision_key: Sequence[Any] = field(default_factory=tuple)
    """What else a recorded decision depends on (the batch size the probe was sized by)."""


@dataclass(frozen=True)
class Selection(Generic[F]):
    """The forward object, the report of why, and the precision the torch model must hold."""

    forward: F
    report: BackendReport
    torch_precision: Precision


def select(kind: ModelKind[F], checkpoint: Optional[str], plan: Plan, model_kwargs: Mapping[str, Any],
           cache: Optional[GraphCache] = None) -> Selection[F]:
    """The forward path ``plan`` asks for, for a model of ``kind`` loaded from ``checkpoint`` (None: a model
    given as an object). The model must hold fp32 weights when ONNX is tried (graphs are exported from them)."""
    requested = {"backend": plan.backend, "precision": plan.precision}
    if plan.onnx_precision is None:
        return Selection(kind.torch(plan.torch_precision),
                         BackendReport("torch", plan.torch_precision, plan.reason, requested), plan.torch_precision)
    fallback: Precision = "fp32" if plan.onnx_precision == "fp32" else plan.torch_precision
    torch_forward = kind.torch(fallback)

    def on_torch(reason: str, parts: Mapping[str, str] = {}) -> Selection[F]:  # noqa: B006 - read only
        return Selection(torch_forward, BackendReport("torch", fallback, reason, requested, dict(parts)), fallback)

    cache = cache or GraphCache()
    fingerprint, blocker = None, kind.blocker
    if not blocker:
        fingerprint, blocker = checkpoint_fingerprint(checkpoint, cache, kind.parameters)
    if fingerprint is None:
        return on_torch(blocker)
    graphs: dict[str, OnnxGraph] = {}
    parts: dict[str, str] = {}
    for part in kind.parts:
        try:
            entry = cached_graph(cache, fingerprint, part.key, plan.onnx_precision, part.spec, model_kwargs)
            graphs[part.label] = OnnxGraph(entry.path)
            parts[part.label] = f"onnx {plan.onnx_precision}: {entry.path}"
        except ExportFailed as failure:
            parts[part.label] = f"torch {fallback}: {part.noun} did not export ({failure.reason})"
    if not graphs:
        return on_torch("no part of the model exports to ONNX: " + "; ".join(f"{k}: {v}" for k, v in parts.items()),
                        parts)
    onnx_forward = kind.onnx(graphs, torch_forward)
    if not plan.measure:
        reason = f"backend={plan.backend!r}, precision={plan.precision!r} asks for ONNX Runtime {plan.onnx_precision}"
        return Selection(onnx_forward, BackendReport("onnx", plan.onnx_precision, reason, requested, parts), fallback)
    report = decide(kind, cache, fingerprint, plan, requested, parts, torch_forward, onnx_forward, model_kwargs)
    if report.backend == "onnx":
        return Selection(onnx_forward, report, fallback)
    return Selection(kind.torch(report.precision), report, report.precision)


def decide(kind: ModelKind[F], cache: GraphCache, fingerprint: str, plan: Plan, requested: Mapping[str, str],
           parts: Mapping[str, str], torch_forward: F, onnx_forward: F,
           model_kwargs: Mapping[str, Any]) -> BackendReport:
    """``auto``'s decision recorded for this checkpoint, machine and versions, or a new measurement (then recorded)."""
    store = DecisionStore(cache)
    record = store.key(fingerprint, kind.what, sorted(parts), plan.precision, default_threads(),
                       repr(sorted(model_kwargs.items())), *kind.decision_key)
    report = store.load(record)
    if report is None:
        lower = [p for p in torch_candidates(plan) if p != "fp32"]
        probe = kind.probe(torch_forward, onnx_forward, lower)
        chosen, measured, reason = measure(probe.runs, probe.rows, probe.unit,
                                           f"{probe.description}, {default_threads()} threads", probe.agreement)
        backend, precision = chosen.path.split()
        report = BackendReport(backend, precision, reason, dict(requested), dict(parts), tuple(measured))  # type: ignore[arg-type]
        store.save(record, report, kind.what)
    return report
