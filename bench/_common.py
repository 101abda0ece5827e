"""Shared benchmark helpers: timing, machine record, cached random-weight checkpoints.

Benchmarks use full-size architectures with random weights (no model hub here): speed is the same
as with real weights. Everything they build is cached under ``.bench_cache/`` in the repo root.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import argparse

CACHE = Path(__file__).resolve().parent.parent / ".bench_cache"


def machine_record() -> str:
    """One line naming the machine and library versions, printed with every result."""
    import sentence_transformers
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    return (f"python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"transformers {transformers.__version__}, sentence-transformers {sentence_transformers.__version__}, "
            f"{os.cpu_count()} cpus {cpu}")


def best_of(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved(variants: "dict[str, Callable[[], object]]", repeats: int) -> "dict[str, list[float]]":
    """Wall times of each variant over ``repeats`` rounds run in turn, the order rotating each round (A B C,
    B C A, ...), after one warm-up call each: on shared cores a busy moment slows one round, not one
    variant, and no variant always runs first (after the last one's garbage)."""
    for fn in variants.values():
        fn()
    times: dict[str, list[float]] = {label: [] for label in variants}
    order = list(variants.items())
    for round_number in range(repeats):
        shift = round_number % len(order)
        for label, fn in order[shift:] + order[:shift]:
            start = time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - start)
    return times


def cpu_flags_summary() -> str:
    """The lscpu flags that decide the fast paths: vector width and native bf16/int8 dot products."""
    try:
        flags = next(line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("flags"))
    except (OSError, StopIteration):
        return "flags unknown"
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    present = [flag for flag in wanted if flag in flags]
    missing = [flag for flag in wanted if flag not in flags]
    return f"lscpu flags: {' '.join(present) or '-'} (no {' '.join(missing)})" if missing else f"lscpu flags: {' '.join(present)}"


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cpus"


def cpu_model() -> str:
    """The CPU's model name as lscpu/proc report it (platform.processor() is often empty on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def add_device_args(parser: "argparse.ArgumentParser", precision: bool = True) -> None:
    """``--device`` (and ``--precision``) for every benchmark, so one flag moves it to a GPU."""
    parser.add_argument("--device", default="cpu", help='torch device for the models: "cpu", "cuda", "cuda:1"...')
    if precision:
        parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"],
                            help='our components\' precision ("auto": bf16 where the hardware runs it fast)')


def header(bench: str, device: str, precision: "str | None", note: str = "") -> str:
    """The first line of every benchmark: what ran where, when, in which precision."""
    where = device
    if device.startswith("cuda"):
        import torch

        where = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    parts = [f"# bench/{bench}.py, {stamp}", f"device {where}", f"precision {precision or 'n/a'}",
             f"CPU {cpu_model()} x{os.cpu_count()}", f"python {platform.python_version()}"]
    return ", ".join(parts) + (f" ({note})" if note else "")
