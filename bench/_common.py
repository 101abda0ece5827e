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
from typing import Callable

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
