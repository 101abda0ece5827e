"""Runs in the peer venv (bench/_peers.py): fastembed on a local ONNX graph, timed.

stdin: {"kind": "image"|"text", "model_name", "model_dir", "inputs": [...], "repeats", "threads",
"batch_size", "out": a .npy path}. stdout: {"seconds": best, "median": ..., "fastembed": version}.
"""

import json
import statistics
import sys
import time

import numpy as np


def main() -> None:
    job = json.load(sys.stdin)
    import fastembed
    from fastembed import ImageEmbedding, TextEmbedding

    kind = ImageEmbedding if job["kind"] == "image" else TextEmbedding
    model = kind(job["model_name"], specific_model_path=job["model_dir"], threads=job["threads"])

    def run() -> np.ndarray:
        return np.array(list(model.embed(job["inputs"], batch_size=job["batch_size"])))

    vectors = run()
    times = []
    for _ in range(job["repeats"]):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    np.save(job["out"], vectors)
    print(json.dumps({"seconds": min(times), "median": statistics.median(times), "fastembed": fastembed.__version__}))


if __name__ == "__main__":
    main()
