"""Resident memory under long concurrent load, with and without batch-size bucketing (issue 11, item 7).

The load: one process, ``--tasks`` asyncio tasks (64), each looping ``aget_query_embedding`` on a
varied query followed by an async hybrid query on an embedded store, for ``--duration`` seconds
(60), with the tiny test CLIP at ``--precision`` (auto: bf16 on CPUs that have it). Printed: RSS at
start (model and store loaded), after warm-up (``--warmup`` s), at the end, and the growth over the
whole run, warm-up included, plus queries/s and the number of distinct input shapes the model saw (what
a per-shape kernel cache holds one entry for). Native caches outlive everything in a process, so each
setting runs in its own child process.

    python bench/memory.py                                # bucketing off, then on; 60 s each
    python bench/memory.py --duration 20 --precision bf16
    python bench/memory.py --only on                      # one setting
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CACHE, machine_record  # noqa: E402

MIB = 1024 * 1024
STORE_POINTS = 500
WORDS = ("red blue green photo chart invoice receipt valve pump seal quarterly revenue circle square "
         "cat dog street night river mountain scanned page table figure diagram report summary").split()


def rss_bytes() -> int:
    """Resident set size of this process, from /proc (Linux), else psutil."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import psutil

    return int(psutil.Process().memory_info().rss)


def tiny_clip() -> Path:
    from tests.fixtures.models import build_tiny_clip

    path = CACHE / "tiny_clip"
    if not (path / "config.json").exists():
        build_tiny_clip(path)
    return path


def queries(seed: int) -> list[str]:
    """Queries of 1 to 16 words: varied lengths, as real traffic has."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 16))) for _ in range(512)]


async def _load(embedding, store, tasks: int, seconds: float) -> int:  # type: ignore[no-untyped-def]
    from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode

    end = time.monotonic() + seconds
    done = 0

    async def worker(seed: int) -> None:
        nonlocal done
        texts = queries(seed)
        i = 0
        while time.monotonic() < end:
            text = texts[i % len(texts)]
            vector = await embedding.aget_query_embedding(text)
            await store.aquery(VectorStoreQuery(query_embedding=vector, query_str=text, similarity_top_k=5,
                                                mode=VectorStoreQueryMode.HYBRID))
            done += 1
            i += 1

    await asyncio.gather(*(worker(seed) for seed in range(tasks)))
    return done


def child(args: argparse.Namespace) -> dict:
    """One setting in this process: returns the figures as a dict."""
    from llama_index.core.schema import TextNode

    from llama_index_mm_st import MultimodalEmbedding, MultimodalQdrantStore

    embedding = MultimodalEmbedding(str(tiny_clip()), device="cpu", precision=args.precision, backend=args.backend,
                                    bucket_batches=args.bucket == "on")
    shapes: set[tuple[int, ...]] = set()

    def record_shape(module, args, kwargs):  # type: ignore[no-untyped-def]
        features = args[0] if args else kwargs.get("input", {})
        tensor = features.get("input_ids", features.get("pixel_values"))
        if tensor is not None:
            shapes.add(tuple(tensor.shape))

    embedding.model.register_forward_pre_hook(record_shape, with_kwargs=True)
    with tempfile.TemporaryDirectory() as folder:
        store = MultimodalQdrantStore("bench", path=folder, dim=embedding.dimension)
        nodes = [TextNode(text=text, id_=f"00000000-0000-4000-8000-{i:012d}") for i, text in enumerate(queries(99)[:STORE_POINTS])]
        store.add(embedding(nodes))
        start = rss_bytes()
        warm_done = asyncio.run(_load(embedding, store, args.tasks, args.warmup))
        warm = rss_bytes()
        measured_done = asyncio.run(_load(embedding, store, args.tasks, args.duration - args.warmup))
        end = rss_bytes()
        store.close()
    return {
        "bucket": args.bucket, "precision": embedding.precision, "start_mib": start / MIB, "warm_mib": warm / MIB,
        "end_mib": end / MIB, "growth_mib": (end - start) / MIB, "after_warmup_growth_mib": (end - warm) / MIB,
        "queries_per_s": (warm_done + measured_done) / args.duration, "shapes": len(shapes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load per setting, warm-up included")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds counted as warm-up (still in the growth)")
    parser.add_argument("--tasks", type=int, default=64)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"])
    parser.add_argument("--only", choices=["on", "off"], default=None, help="run one setting only")
    parser.add_argument("--bucket", choices=["on", "off"], default=None, help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()
    if args.warmup >= args.duration:
        parser.error("--warmup must be shorter than --duration")
    if args.bucket is not None:
        print(json.dumps(child(args)))
        return
    print(machine_record())
    print(f"load: {args.tasks} tasks x (aget_query_embedding + store.aquery), {args.duration:.0f} s, tiny CLIP, "
          f"precision {args.precision}")
    print(f"{'bucketing':>9} {'precision':>9} {'start MiB':>9} {'warm MiB':>9} {'end MiB':>9} "
          f"{'growth':>8} {'after warm-up':>13} {'queries/s':>9} {'input shapes':>12}")
    for setting in [args.only] if args.only else ["off", "on"]:
        command = [sys.executable, __file__, "--bucket", setting, "--duration", str(args.duration),
                   "--warmup", str(args.warmup), "--tasks", str(args.tasks), "--precision", args.precision, "--backend", args.backend]
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        if done.returncode != 0:
            sys.exit(f"the {setting} run failed:\n{done.stderr[-3000:]}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{row['bucket']:>9} {row['precision']:>9} {row['start_mib']:9.1f} {row['warm_mib']:9.1f} "
              f"{row['end_mib']:9.1f} {row['growth_mib']:+8.1f} {row['after_warmup_growth_mib']:+13.1f} "
              f"{row['queries_per_s']:9.0f} {row['shapes']:12d}")


if __name__ == "__main__":
    main()
