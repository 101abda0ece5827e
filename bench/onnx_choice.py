"""``backend="auto"``'s measured choice on this CPU: its margin, and how stable the decision is.

The ViT-B/32 CLIP of ``embed.py`` (random weights, full size) is loaded with ``backend="auto"``
``--decisions`` times; before each load the recorded decision for it is removed, so each load
measures from scratch (the graphs stay cached: exporting is not timed). Each decision prints the
paths' rates, each candidate's speedup over torch fp32 (median of the per-round ratios), its noise
(half their range), its margin (speedup - 1 - max(noise, 5 %): > 0 means it wins) and the path
taken, beside what the old rule (the fastest rate, no margin) would have taken. The summary says how
often the decision agreed with itself: the rule should keep torch rather than flip when the two
paths are within the noise.

Other processes loading the CPU widen the noise (that is the point of the rule): the load average is
printed before and after.

    PYTHONPATH=. python bench/onnx_choice.py [--decisions 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CACHE, cpu_flags_summary, header, load_average, machine_record  # noqa: E402
from embed import build_clip_b32  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decisions", type=int, default=5, help="decisions measured from scratch")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from llama_index_mm_st import MultimodalEmbedding
    from llama_index_mm_st.onnx.cache import GraphCache
    from llama_index_mm_st.onnx.fingerprint import directory_fingerprint
    from llama_index_mm_st.onnx.measure import MIN_GAIN, ROUNDS

    model_dir = build_clip_b32(CACHE / "clip-vit-b32-random")
    cache = GraphCache()
    decisions = cache.root / "decisions" / directory_fingerprint(model_dir, cache.memo)[:32]
    print(header("onnx_choice", "cpu", "auto"))
    print(machine_record())
    print(cpu_flags_summary())
    print(f"rule: {ROUNDS} interleaved rounds; a path other than torch fp32 needs speedup - 1 > max(noise, {MIN_GAIN:.0%})")
    print(f"at start: {load_average()}")
    MultimodalEmbedding(str(model_dir), backend="onnx")  # export (or find) the graphs once, untimed

    taken: Counter = Counter()
    print("\n| decision | torch fp32 img/s | onnx fp32 img/s | speedup | noise | margin | taken | by rate alone (rule 1) |")
    print("|---|---|---|---|---|---|---|---|")
    for number in range(1, args.decisions + 1):
        shutil.rmtree(decisions, ignore_errors=True)
        report = MultimodalEmbedding(str(model_dir)).describe()
        paths = {m["path"]: m for m in report["measurements"]}
        onnx, reference = paths["onnx fp32"], paths["torch fp32"]
        choice = f"{report['backend']} {report['precision']}"
        taken[choice] += 1
        fastest = max(paths.values(), key=lambda m: m["items_per_s"])["path"]  # what the old rule would take
        print(f"| {number} | {reference['items_per_s']:.1f} | {onnx['items_per_s']:.1f} | {onnx['speedup']:.3f}x | "
              f"{onnx['noise']:.3f} | {onnx['margin']:+.3f} | {choice} | {fastest} |")
        extra = [p for p in paths if p not in ("torch fp32", "onnx fp32")]
        for path in extra:
            m = paths[path]
            print(f"|   | | {path}: {m['items_per_s']:.1f} | {m['speedup']:.3f}x | {m['noise']:.3f} | {m['margin']:+.3f} | |")
    print(f"\nat end: {load_average()}")
    print("decisions: " + ", ".join(f"{path} {count}/{args.decisions}" for path, count in taken.most_common()))
    print(f"last reason: {report['reason']}")


if __name__ == "__main__":
    main()
