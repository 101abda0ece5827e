"""Which backend runs the forward pass: the request's rules, the measured choice of ``"auto"``, its record.

``backend="auto"`` is measured, not guessed. On a CPU it times the candidates on a probe batch,
best of ``REPEATS`` after a warm-up, and takes the fastest *exact* one:

- torch fp32 (the reference), ONNX Runtime fp32 (exact: verified at export within 1e-4, about 1e-6 measured);
- torch bf16 only where the CPU runs bf16 natively (AVX512-BF16, AMX) and its outputs keep cosine
  >= ``MIN_AGREEMENT`` to fp32 on the probe (emulated bf16 runs at 0.15x fp32 on AVX2: never a candidate).

On a GPU, with an explicit bf16/fp16 precision, or without onnxruntime installed, ``"auto"`` is torch
without measuring, and says why. The decision is remembered on disk per (checkpoint, versions, CPU,
threads), so later processes (Ray workers, a server's restarts) take the same path without measuring.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Literal, Mapping, Optional, Sequence

from ..types import Backend, Precision
from .cache import GraphCache
from .deps import EXTRA, onnxruntime_available, runtime_versions
from .fingerprint import stable_hash, write_text_atomic

logger = logging.getLogger("llama_index_mm_st.onnx")

BACKENDS: tuple[Backend, ...] = ("auto", "torch", "onnx")
MIN_AGREEMENT = 0.999
"""A lossy path (torch bf16) is an ``auto`` candidate only at or above this agreement with torch fp32."""
REPEATS = 3
REFERENCE = "torch fp32"
Runs = Literal["torch", "onnx"]


@dataclass(frozen=True)
class Plan:
    """A validated request: what ONNX would run (None: not tried), torch's precision, and whether to measure."""

    backend: Backend
    precision: Precision
    device: str
    onnx_precision: Optional[Literal["fp32", "int8"]]
    torch_precision: Precision
    measure: bool
    reason: str = ""
    """Why ONNX is not tried, when it isn't."""


@dataclass(frozen=True)
class Measurement:
    path: str
    items_per_s: float
    agreement: Optional[float] = None
    """Against torch fp32 on the probe (min row cosine); None for torch fp32 itself."""


@dataclass(frozen=True)
class BackendReport:
    """Which path a component took and why (``MultimodalEmbedding.describe()``, ``mmst info``)."""

    backend: Runs
    precision: Precision
    reason: str
    requested: Mapping[str, str] = field(default_factory=dict)
    parts: Mapping[str, str] = field(default_factory=dict)
    """Per exported part (a modality, a tower): the path it runs on, and the graph or why not."""
    measurements: Sequence[Measurement] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["measurements"] = [asdict(m) for m in self.measurements]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BackendReport":
        return cls(data["backend"], data["precision"], data["reason"], dict(data.get("requested", {})),
                   dict(data.get("parts", {})), tuple(Measurement(**m) for m in data.get("measurements", ())))


def plan(backend: str, precision: str, device: str) -> Plan:
    """Validate a (backend, precision) request for ``device``; errors name the valid choices."""
    from ..runtime import resolve_precision

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    kind = device.split(":")[0]
    if precision == "int8" and backend == "torch":
        raise ValueError("precision='int8' is ONNX Runtime's dynamic quantization: pass backend='onnx' or 'auto'")
    torch_precision = resolve_precision("auto" if precision == "int8" else precision, device)
    if backend == "torch":
        return Plan(backend, precision, device, None, torch_precision, False, "backend='torch' was asked for")  # type: ignore[arg-type]
    if backend == "onnx":
        if kind != "cpu":
            raise ValueError(f"backend='onnx' runs on the CPU (ONNX Runtime's CPU provider), not on {device!r}; "
                             "on a GPU use backend='torch' or 'auto'")
        if precision in ("bf16", "fp16"):
            raise ValueError(f"ONNX Runtime runs fp32 (exact) or int8 here; precision={precision!r} needs backend='torch'")
        from .deps import import_onnxruntime

        import_onnxruntime()  # MissingDependencyError naming the extra
        onnx = "int8" if precision == "int8" else "fp32"
        return Plan(backend, precision, device, onnx, "fp32" if onnx == "fp32" else torch_precision, False)  # type: ignore[arg-type]
    # auto
    if kind != "cpu":
        return _torch_only(precision, device, torch_precision, f"on {device} torch runs {torch_precision}")
    if precision in ("bf16", "fp16"):
        return _torch_only(precision, device, torch_precision, f"precision={precision!r} runs on torch")
    if not onnxruntime_available():
        return _torch_only(precision, device, torch_precision,
                           f"onnxruntime is not installed (pip install 'llama-index-mm-st[{EXTRA}]')")
    if precision == "int8":
        return Plan("auto", "int8", device, "int8", torch_precision, False)
    return Plan("auto", precision, device, "fp32", torch_precision, True)  # type: ignore[arg-type]


def _torch_only(precision: str, device: str, torch_precision: Precision, reason: str) -> Plan:
    return Plan("auto", precision, device, None, torch_precision, False, reason)  # type: ignore[arg-type]


def torch_candidates(plan: Plan) -> list[Precision]:
    """The torch precisions ``auto`` measures: fp32 always (the reference), bf16 where the CPU runs it natively."""
    from ..runtime import cpu_has_fast_bf16

    found: list[Precision] = ["fp32"]
    if plan.precision == "auto" and cpu_has_fast_bf16():
        found.append("bf16")
    return found


def best_of(run: Callable[[], Any], repeats: int = REPEATS) -> tuple[float, Any]:
    """(seconds of the fastest of ``repeats`` runs after one warm-up, the last output)."""
    output = run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        output = run()
        best = min(best, time.perf_counter() - start)
    return best, output


def pick(measurements: Sequence[Measurement], exact: Collection[str], min_agreement: float = MIN_AGREEMENT) -> Measurement:
    """The fastest measured path that is exact (torch fp32, or a path in ``exact``) or agrees with
    torch fp32 at least ``min_agreement``."""
    eligible = [m for m in measurements
                if m.agreement is None or m.path in exact or m.agreement >= min_agreement]
    if not eligible:
        raise ValueError("no measured path is exact or agrees with torch fp32")
    return max(eligible, key=lambda m: m.items_per_s)


def measure(runs: Mapping[str, Callable[[], Any]], rows: int, unit: str, probe: str,
            agreement: Callable[[Any, Any], float]) -> tuple[Measurement, list[Measurement], str]:
    """Time every path of ``runs`` ("torch fp32" first: the reference) on one probe of ``rows`` items;
    (the chosen path, all measurements, the sentence that says why). ONNX fp32 passed its exactness
    check at export, so its agreement is shown, not a gate; other paths must reach ``MIN_AGREEMENT``."""
    reference_seconds, reference = best_of(runs[REFERENCE])
    measurements = [Measurement(REFERENCE, rows / reference_seconds)]
    for path, run in runs.items():
        if path != REFERENCE:
            seconds, output = best_of(run)
            measurements.append(Measurement(path, rows / seconds, agreement(output, reference)))
    chosen = pick(measurements, exact={"onnx fp32"})
    return chosen, measurements, explain(chosen, measurements, unit, probe)


def min_cosine(output: Any, reference: Any) -> float:
    """The smallest row cosine between two output arrays (embeddings, hidden states)."""
    import numpy as np

    a, b = np.asarray(output).reshape(len(output), -1), np.asarray(reference).reshape(len(reference), -1)
    norms = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return float(np.min(np.sum(a * b, axis=1) / norms))


def explain(chosen: Measurement, measurements: Sequence[Measurement], unit: str, probe: str) -> str:
    """One sentence: what ``auto`` took, against what, on what probe."""
    others = [m for m in measurements if m is not chosen]
    parts = [f"{m.path} {m.items_per_s:.1f}" + (f" (cosine {m.agreement:.5f})" if m.agreement is not None else "")
             for m in others]
    against = f" against {', '.join(parts)}" if parts else ""
    return f"auto measured {chosen.path} fastest: {chosen.items_per_s:.1f} {unit}/s{against} ({probe})"


def cpu_signature() -> str:
    """This CPU, for keying measurements: model name, flags and logical cores (read without torch)."""
    model, flags = "", ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not model:
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = value.strip()
    except OSError:
        import platform

        model = platform.processor() or platform.machine()
    return stable_hash([model, sorted(flags.split()), os.cpu_count()])


class DecisionStore:
    """``auto``'s measured decisions, under ``<cache>/decisions/<checkpoint fingerprint>/<key>.json``."""

    def __init__(self, cache: GraphCache) -> None:
        self.root = cache.root / "decisions"

    def key(self, fingerprint: str, *parts: object) -> Path:
        key = stable_hash([fingerprint, runtime_versions(), cpu_signature(), *parts])
        return self.root / fingerprint[:32] / f"{key}.json"

    def load(self, path: Path) -> Optional[BackendReport]:
        try:
            return BackendReport.from_dict(json.loads(path.read_text(encoding="utf-8"))["report"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, path: Path, report: BackendReport, what: str) -> None:
        record = {"report": report.to_dict(), "what": what, "cpu": cpu_signature(), "measured_at": time.time()}
        write_text_atomic(path, json.dumps(record, indent=1, sort_keys=True))

    def recorded(self, fingerprint: str) -> list[dict[str, Any]]:
        """Every decision recorded for a checkpoint on this CPU, newest first (for ``mmst info``)."""
        found = []
        for path in (self.root / fingerprint[:32]).glob("*.json"):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if record.get("cpu") == cpu_signature():
                found.append(record)
        return sorted(found, key=lambda r: -float(r.get("measured_at", 0)))


def recorded_choices(checkpoint: str, what: str = "embedding", cache: Optional[GraphCache] = None) -> list[BackendReport]:
    """``auto``'s decisions recorded for a checkpoint (a directory, or a hub id in the local cache) on
    this CPU, newest first; empty when it has not been measured here. Loads no model code."""
    from .fingerprint import checkpoint_directory, directory_fingerprint

    cache = cache or GraphCache()
    directory = checkpoint_directory(checkpoint)
    if directory is None:
        return []
    records = DecisionStore(cache).recorded(directory_fingerprint(directory, cache.memo))
    return [BackendReport.from_dict(r["report"]) for r in records if r.get("what") == what]


def log_choice(what: str, report: BackendReport) -> None:
    """One line per component: which path it runs on and why (INFO; a WARNING when ONNX was asked for
    explicitly and the model, or a part of it, stayed on torch)."""
    fallback = [f"{part}: {how}" for part, how in report.parts.items() if how.startswith("torch")]
    missed = report.requested.get("backend") == "onnx" and (fallback or report.backend == "torch")
    level = logging.WARNING if missed else logging.INFO
    logger.log(level, "%s runs on %s %s: %s%s", what, report.backend, report.precision, report.reason,
               f" ({'; '.join(fallback)})" if fallback else "")
