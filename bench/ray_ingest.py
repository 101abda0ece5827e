"""``mmst index --ray`` against ``mmst index`` on the same folder: files/s, start-up included.

Setup (issue 15): the full-size ViT-B/32 CLIP architecture with random weights, N JPEGs at 640x480
(default 2,000), a fresh embedded store per run. Each side is one ``mmst index`` process, timed from
launch to exit: Python, model load, and for ``--ray`` a local Ray instance's start and stop.

    python bench/ray_ingest.py [--images 2000] [--repeats 1] [--actors 1]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CACHE, machine_record  # noqa: E402
from embed import build_clip_b32, make_jpegs  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CLI = "from llama_index_mm_st.cli import main; raise SystemExit(main())"


def cpu_model() -> str:
    """lscpu's model name (the CPU changes between sessions, so every result names it)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), "unknown")


def run_index(folder: Path, model: Path, store: Path, extra: list[str]) -> float:
    """Wall seconds of one ``mmst index`` process; its summary must show every file added."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.pop("RAY_ADDRESS", None)  # a local instance, started (and stopped) inside the timing
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CLI, "index", str(folder), "--store", str(store), "--model",
                           str(model), "--no-progress", *extra], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"mmst index {' '.join(extra)} failed:\n{done.stderr[-2000:]}")
    return seconds


def point_ids(store: Path) -> list[str]:
    from llama_index_mm_st.store import MultimodalQdrantStore

    with MultimodalQdrantStore("mmst", path=str(store)) as opened:
        return sorted(node.node_id for node in opened.get_nodes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=1, help="runs per side, alternating; the best is kept")
    parser.add_argument("--actors", type=int, default=1)
    args = parser.parse_args()

    model = build_clip_b32(CACHE / "clip-vit-b32-random")
    folder = CACHE / f"ray-jpegs-{args.images}"
    make_jpegs(folder, args.images)
    for path in folder.iterdir():  # warm the page cache for both sides alike
        path.read_bytes()
    times: dict[str, list[float]] = {"mmst index": [], "mmst index --ray": []}
    ids: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            for name, extra in (("mmst index", []), ("mmst index --ray", ["--ray", "--ray-actors", str(args.actors)])):
                store = Path(scratch) / f"{name.replace(' ', '_')}_{repeat}"
                times[name].append(run_index(folder, model, store, extra))
                ids[name] = point_ids(store)
    if ids["mmst index"] != ids["mmst index --ray"] or len(ids["mmst index"]) != args.images:
        raise SystemExit("the two stores differ: the comparison would be meaningless")
    local, ray = min(times["mmst index"]), min(times["mmst index --ray"])
    print(f"machine: {cpu_model()}; {machine_record()}")
    print(f"{args.images} JPEGs 640x480, ViT-B/32 CLIP (random weights), {args.actors} actor(s), best of {args.repeats}")
    print(f"mmst index        : {local:7.1f} s  {args.images / local:6.1f} files/s")
    print(f"mmst index --ray  : {ray:7.1f} s  {args.images / ray:6.1f} files/s  (Ray start-up and shutdown included)")
    print(f"ratio (ray time / in-process time): {ray / local:.2f}x")


if __name__ == "__main__":
    main()
