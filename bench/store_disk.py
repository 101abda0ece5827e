"""Disk bytes an Edge store takes per point, against the estimate its disk guard uses (``store/backends/disk.py``).

For each storage layout, points are added in batches the way ``mmst index`` adds them; after every
batch the blocks the store's files allocate (``st_blocks``: the engine's files are sparse) are summed,
and the growth is compared with ``disk.point_bytes`` for the batch's points. Then ``optimize()`` runs
while a thread samples the allocation, and its peak growth is compared with what the segments held
before it (``OPTIMIZE_FACTOR``). The guard is safe when every measured/estimate ratio stays under
``MARGIN`` (the batch) and ``OPTIMIZE_FACTOR`` (optimize).

    python bench/store_disk.py                 # 10240 points per layout (late interaction: 256)
    python bench/store_disk.py --points 2048   # quicker
"""

from __future__ import annotations

import argparse
import os
import sys
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import header  # noqa: E402

REPO = str(Path(__file__).resolve().parents[1])
SAMPLER = """
import select, sys
from llama_index_mm_st.store.backends.disk import allocated_bytes
peak = 0
print("ready", flush=True)
while not select.select([sys.stdin], [], [], 0.05)[0]:
    peak = max(peak, allocated_bytes(sys.argv[1]))
print(max(peak, allocated_bytes(sys.argv[1])))
"""
WORDS = "the quick brown fox jumps over a lazy dog while seven red cars wait at the light".split()


def _text(rng: np.random.Generator, chars: int) -> str:
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < chars:
        words.append(WORDS[int(rng.integers(len(WORDS)))] + str(int(rng.integers(1000))))
    return " ".join(words)


def _unit(rng: np.random.Generator, dim: int) -> list[float]:
    v = rng.standard_normal(dim).astype(np.float32)
    return (v / np.linalg.norm(v)).tolist()


def image_nodes(rng: np.random.Generator, start: int, count: int, dim: int) -> list[Any]:
    """Images with a caption, as ``mmst index`` makes them: both vectors, reader metadata."""
    from llama_index.core.schema import ImageNode

    nodes = []
    for i in range(start, start + count):
        path = f"/data/photos/2024/trip/IMG_{i:06d}.jpg"
        nodes.append(ImageNode(
            id_=f"{i:08x}-0000-4000-8000-000000000000", image_path=path, text=_text(rng, 80),
            embedding=_unit(rng, dim), text_embedding=_unit(rng, dim),
            metadata={"file_path": path, "file_name": path.rsplit("/", 1)[1], "file_size": int(rng.integers(1 << 20)),
                      "sha256": f"{int(rng.integers(1 << 62)):064x}", "width": 4032, "height": 3024,
                      "mime_type": "image/jpeg", "captured_at": "2024-05-01T10:00:00", "camera": "Phone 12"},
        ))
    return nodes


def text_nodes(rng: np.random.Generator, start: int, count: int, dim: int) -> list[Any]:
    """Text chunks of about 1000 characters (a splitter's default size), text vector only."""
    from llama_index.core.schema import TextNode

    return [TextNode(id_=f"{i:08x}-0000-4000-8000-000000000000", text=_text(rng, 1000), embedding=_unit(rng, dim),
                     metadata={"file_path": f"/docs/manual_{i // 20}.md", "file_name": f"manual_{i // 20}.md"})
            for i in range(start, start + count)]


def page_nodes(rng: np.random.Generator, start: int, count: int, dim: int, tokens: int = 1030) -> list[Any]:
    """PDF pages for a ColPali-style model: a pooled vector and ``tokens`` x ``dim`` patch vectors."""
    from llama_index.core.schema import ImageNode

    from llama_index_mm_st.multivector import attach_multivector

    nodes = []
    for i in range(start, start + count):
        matrix = rng.standard_normal((tokens, dim)).astype(np.float32)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        node = ImageNode(id_=f"{i:08x}-0000-4000-8000-000000000000", image_path=f"/cache/page_{i}.png",
                         embedding=matrix.mean(axis=0).tolist(), metadata={"page": i % 30, "file_name": "report.pdf"})
        attach_multivector(node, matrix)
        nodes.append(node)
    return nodes


LAYOUTS: dict[str, tuple[Callable[..., list[Any]], int, dict[str, Any], int]] = {
    # name: (nodes, dim, store options, batch)
    "images 512-d, text+image": (image_nodes, 512, {"dense_vectors": ["text", "image"]}, 512),
    "text chunks 384-d, text only": (text_nodes, 384, {"dense_vectors": ["text"]}, 512),
    "images 768-d, 4 vectors, float16+int8": (image_nodes, 768, {"vector_datatype": "float16", "quantization": "int8"}, 512),
    "images 512-d, no WAL": (image_nodes, 512, {"dense_vectors": ["text", "image"], "wal": False}, 512),
    "pages 128-d x 1030 late interaction": (page_nodes, 128, {"dense_vectors": ["text", "image"],
                                                              "late_interaction": True}, 16),
}


def measure(name: str, points: int, root: Path) -> dict[str, float]:
    from llama_index_mm_st.store import MultimodalQdrantStore
    from llama_index_mm_st.store.backends import disk
    from llama_index_mm_st.store.backends.edge import EdgeBackend

    make, dim, options, batch = LAYOUTS[name]
    if make is page_nodes:
        points = max(batch, points // 40)
    estimates: list[int] = []
    original = EdgeBackend.upsert

    def recording(self: EdgeBackend, specs: Any, size: int, on_batch: Any = None) -> None:
        estimates.append(sum(disk.point_bytes(p, self._folder.schema) for p in specs))
        original(self, specs, size, on_batch)

    EdgeBackend.upsert = recording  # type: ignore[method-assign]
    rng = np.random.default_rng(0)
    try:
        store = MultimodalQdrantStore(path=str(root), dim=dim, **options)
        shard = Path(store.local_path) / "shard"
        ratios, grown, before = [], 0, disk.allocated_bytes(shard)
        for start in range(0, points, batch):
            store.add(make(rng, start, min(batch, points - start), dim))
            now = disk.allocated_bytes(shard)
            ratios.append((now - before) / estimates[-1])
            grown += now - before
            before = now
        segments = disk.allocated_bytes(shard / "segments")
        # The engine holds the GIL through optimize(): the allocation is sampled by another process.
        sampler = subprocess.Popen([sys.executable, "-c", SAMPLER, str(shard)], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": REPO})
        assert sampler.stdout is not None and sampler.stdout.readline().strip() == "ready"
        started = time.perf_counter()
        store.optimize()
        seconds = time.perf_counter() - started
        peak, _ = sampler.communicate("stop\n")
        peak_bytes = max(before, int(peak.strip()))
        store.close()
    finally:
        EdgeBackend.upsert = original  # type: ignore[method-assign]
    return {"points": points, "bytes_per_point": grown / points, "estimate_per_point": sum(estimates) / points,
            "batch_ratio_max": max(ratios), "batch_ratio_mean": float(np.mean(ratios)),
            "optimize_ratio": (peak_bytes - before) / max(1, segments), "optimize_s": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=10240)
    parser.add_argument("--dir", default=None, help="where the stores are built (default: a temporary folder)")
    args = parser.parse_args()
    from llama_index_mm_st.store.backends import disk

    print(header("store_disk", "cpu", None, f"load {os.getloadavg()[0]:.2f}"))
    print(f"guard: estimate x MARGIN {disk.MARGIN} + floor {disk.FLOOR_BYTES / 1e6:.0f} MB per batch; "
          f"optimize: OPTIMIZE_FACTOR {disk.OPTIMIZE_FACTOR} x segments + floor")
    print(f"{'layout':42} {'points':>7} {'B/point':>8} {'estimate':>9} {'batch max':>9} {'mean':>6} "
          f"{'optimize':>8} {'opt s':>6}")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for index, name in enumerate(LAYOUTS):
            r = measure(name, args.points, Path(tmp) / str(index))
            print(f"{name:42} {r['points']:7d} {r['bytes_per_point']:8.0f} {r['estimate_per_point']:9.0f} "
                  f"{r['batch_ratio_max']:9.2f} {r['batch_ratio_mean']:6.2f} {r['optimize_ratio']:8.2f} "
                  f"{r['optimize_s']:6.1f}")
    print("batch max / mean: measured growth of a batch over its estimate (safe below MARGIN); optimize: peak "
          "growth during optimize() over the segments' size before it (safe below OPTIMIZE_FACTOR)")


if __name__ == "__main__":
    main()
