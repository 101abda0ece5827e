"""Which backend runs the forward pass: the request's rules, the measured choice of ``"auto"``, its record.

``backend="auto"`` is measured, not guessed. On a CPU it times the candidates on a probe batch in
interleaved rounds and keeps torch fp32 unless another path wins by more than the noise it measured
(``measure.py`` holds the rule). The candidates:

- torch fp32 (the reference), ONNX Runtime fp32 (exact: verified at export within 1e-4, about 1e-6 measured);
- torch bf16 only where the CPU runs bf16 natively (AVX512-BF16, AMX) and its outputs keep cosine
  >= ``MIN_AGREEMENT`` to fp32 on the probe (emulated bf16 runs at 0.15x fp32 on AVX2: never a candidate).

On a GPU, with an explicit bf16/fp16 precision, or without onnxruntime installed, ``"auto"`` is torch
without measuring, and says why. The decision is remembered on disk per (checkpoint, versions, CPU,
threads, decision rule), so later processes (Ray workers, a server's restarts) take the same path
without measuring, and a new CPU, a new thread count or an upgraded library measures again.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Optional, Sequence

from ..types import Backend, Precision
from .cache import GraphCache
from .deps import EXTRA, onnxruntime_available, runtime_versions, version_of
from .fingerprint import stable_hash, write_text_atomic
from .measure import MIN_AGREEMENT, REFERENCE, Measurement, min_cosine  # noqa: F401 - the rule's names, kept importable here

logger = logging.getLogger("llama_index_mm_st.onnx")

BACKENDS: tuple[Backend, ...] = ("auto", "torch", "onnx")
DECISION_RULE = 2
"""Bumped when how ``auto`` measures or decides changes: part of every recorded decision's key, so a
decision taken by an older rule (rule 1: one probe, best of three, no margin) is measured again."""
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
        data["measurements"] = [{**asdict(m), "margin": m.margin} for m in self.measurements]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BackendReport":
        return cls(data["backend"], data["precision"], data["reason"], dict(data.get("requested", {})),
                   dict(data.get("parts", {})), tuple(Measurement(**{k: v for k, v in m.items() if k != "margin"})
                         for m in data.get("measurements", ())))


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


def decision_versions() -> dict[str, str]:
    """The versions a measured decision depends on: the graph's (``runtime_versions``), this package's
    (its forward code and probes) and Python's."""
    import platform

    return {**runtime_versions(), "llama-index-mm-st": version_of("llama-index-mm-st"),
            "python": platform.python_version()}


def _load_average() -> Optional[float]:
    """The one-minute load when a decision was measured (recorded beside it: a busy machine explains a
    wide noise); None where the platform has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


class DecisionStore:
    """``auto``'s measured decisions, under ``<cache>/decisions/<checkpoint fingerprint>/<key>.json``."""

    def __init__(self, cache: GraphCache) -> None:
        self.root = cache.root / "decisions"

    def key(self, fingerprint: str, *parts: object) -> Path:
        """Where the decision for ``parts`` on this machine is kept: the key holds the CPU, every version
        that shapes the paths (torch, transformers, sentence-transformers, ONNX Runtime, this package,
        Python) and the decision rule, so a change of any of them measures again."""
        key = stable_hash([fingerprint, decision_versions(), cpu_signature(), DECISION_RULE, *parts])
        return self.root / fingerprint[:32] / f"{key}.json"

    def load(self, path: Path) -> Optional[BackendReport]:
        try:
            return BackendReport.from_dict(json.loads(path.read_text(encoding="utf-8"))["report"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, path: Path, report: BackendReport, what: str) -> None:
        record = {"report": report.to_dict(), "what": what, "cpu": cpu_signature(), "measured_at": time.time(),
                  "versions": decision_versions(), "load_average": _load_average()}
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
