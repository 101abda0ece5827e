"""``backend="auto"``'s measurement: interleaved rounds, a margin, and the rule that keeps torch.

One probe timed once decides nothing on a shared CPU: a busy moment on one side looks like a 15 %
win (measured: "ONNX Runtime fp32 fastest, 24.4 against 21.1 images/s" while another process
loaded the CPU; quietly the two were 25.0 and 24.9). So:

- every path runs once to warm up, then ``ROUNDS`` rounds, each path once per round, the order
  rotated each round (A B C, B C A, ...): a busy moment slows one round of every path, not one path;
- each candidate's **speedup** is the median over rounds of (torch fp32's time / its time in the
  same round), and its **noise** is how far that ratio moved between rounds (half its range);
- torch fp32 (the reference) is kept unless a candidate's speedup beats 1 by more than its noise,
  and by at least ``MIN_GAIN``; among those that do, the largest speedup wins. Lossy candidates
  must also agree with torch fp32 (``MIN_AGREEMENT``); exact ones (ONNX fp32) need not.

Pure apart from the clock it is given, so the rule is tested with a fake one.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Collection, Mapping, Optional, Sequence

MIN_AGREEMENT = 0.999
"""A lossy path (torch bf16) is an ``auto`` candidate only at or above this agreement with torch fp32."""
ROUNDS = 5
"""Interleaved timing rounds per decision (after one warm-up run of each path)."""
MIN_GAIN = 0.05
"""A candidate must be at least this much faster than torch fp32 (5 %) even when the rounds agree
exactly: a smaller gain is not worth leaving the reference path for."""
REFERENCE = "torch fp32"


@dataclass(frozen=True)
class Measurement:
    """One path's timing on the probe."""

    path: str
    items_per_s: float
    """Probe rows over the median round time."""
    agreement: Optional[float] = None
    """Against torch fp32 on the probe (min row cosine, or score correlation); None for torch fp32 itself."""
    speedup: Optional[float] = None
    """Median over rounds of torch fp32's time / this path's time in the same round; None for the reference."""
    noise: Optional[float] = None
    """How far that ratio moved between rounds (half its range): the gain must exceed it."""

    @property
    def margin(self) -> Optional[float]:
        """The gain over torch fp32 left after the noise and ``MIN_GAIN`` (> 0: it wins); None for the reference."""
        if self.speedup is None:
            return None
        return self.speedup - 1.0 - max(self.noise or 0.0, MIN_GAIN)


def time_rounds(runs: Mapping[str, Callable[[], Any]], rounds: int = ROUNDS,
                clock: Callable[[], float] = time.perf_counter) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """(seconds per round of each path, each path's output from its warm-up run). Rounds rotate the order."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    outputs = {path: run() for path, run in runs.items()}
    times: dict[str, list[float]] = {path: [] for path in runs}
    order = list(runs)
    for index in range(rounds):
        shift = index % len(order)
        for path in order[shift:] + order[:shift]:
            start = clock()
            runs[path]()
            times[path].append(clock() - start)
    return times, outputs


def measurements(times: Mapping[str, Sequence[float]], rows: int,
                 agreements: Mapping[str, Optional[float]]) -> list[Measurement]:
    """Each path's rate, and for the candidates their paired speedup over torch fp32 and its noise."""
    reference = times[REFERENCE]
    found = [Measurement(REFERENCE, rows / statistics.median(reference))]
    for path, seconds in times.items():
        if path == REFERENCE:
            continue
        ratios = [ref / max(own, 1e-12) for ref, own in zip(reference, seconds, strict=True)]
        found.append(Measurement(path, rows / statistics.median(seconds), agreements.get(path),
                                 statistics.median(ratios), (max(ratios) - min(ratios)) / 2))
    return found


def pick(measured: Sequence[Measurement], exact: Collection[str] = ("onnx fp32",),
         min_agreement: float = MIN_AGREEMENT) -> Measurement:
    """Torch fp32 unless an eligible candidate wins by more than its noise (see the module docstring);
    then the eligible winner with the largest speedup."""
    reference = next(m for m in measured if m.path == REFERENCE)
    winners = [m for m in measured
               if m.path != REFERENCE and (m.margin or 0.0) > 0
               and (m.path in exact or (m.agreement is not None and m.agreement >= min_agreement))]
    return max(winners, key=lambda m: m.speedup or 0.0) if winners else reference


def measure(runs: Mapping[str, Callable[[], Any]], rows: int, unit: str, probe: str,
            agreement: Callable[[Any, Any], float], rounds: int = ROUNDS,
            clock: Callable[[], float] = time.perf_counter) -> tuple[Measurement, list[Measurement], str]:
    """Time every path of ``runs`` (``"torch fp32"``: the reference) in interleaved rounds on one probe
    of ``rows`` items; (the chosen path, all measurements, the sentence that says why)."""
    if REFERENCE not in runs:
        raise ValueError(f"the runs must include the reference path {REFERENCE!r}")
    times, outputs = time_rounds(runs, rounds, clock)
    agreements = {path: agreement(output, outputs[REFERENCE]) for path, output in outputs.items() if path != REFERENCE}
    measured = measurements(times, rows, agreements)
    chosen = pick(measured)
    return chosen, measured, explain(chosen, measured, unit, f"{rounds} interleaved rounds of {probe}")


def explain(chosen: Measurement, measured: Sequence[Measurement], unit: str, probe: str) -> str:
    """One sentence: what ``auto`` took, by what margin against what, on what probe."""
    def rated(m: Measurement) -> str:
        text = f"{m.path} {m.items_per_s:.1f} {unit}/s"
        if m.speedup is not None:
            text += f" ({m.speedup:.2f}x +/- {m.noise or 0.0:.2f}"
            text += f", cosine {m.agreement:.5f})" if m.agreement is not None else ")"
        return text

    others = ", ".join(rated(m) for m in measured if m is not chosen)
    if chosen.path == REFERENCE:
        return (f"auto measured {REFERENCE} fastest within the noise: {rated(chosen)}; no other path beat it by more "
                f"than its noise and {MIN_GAIN:.0%}: {others or 'none measured'} ({probe})")
    return (f"auto measured {chosen.path} fastest: {rated(chosen)}, a margin of {chosen.margin:.2f} over the noise "
            f"and {MIN_GAIN:.0%}; against {others} ({probe})")


def min_cosine(output: Any, reference: Any) -> float:
    """The smallest row cosine between two output arrays (embeddings, hidden states)."""
    import numpy as np

    a, b = np.asarray(output).reshape(len(output), -1), np.asarray(reference).reshape(len(reference), -1)
    norms = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return float(np.min(np.sum(a * b, axis=1) / norms))
