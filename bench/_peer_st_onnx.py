"""Runs in the peer venv (bench/_peers.py): sentence-transformers' own ``CrossEncoder(backend="onnx")``.

The graph is exported once by sentence-transformers (optimum) into ``export_dir`` and loaded from
there after. stdin: {"model_dir", "export_dir", "pairs", "repeats", "batch_size", "threads"}.
stdout: {"seconds": best, "median", "scores", "versions"}.
"""

import json
import shutil
import statistics
import sys
import time
from pathlib import Path


def main() -> None:
    job = json.load(sys.stdin)
    import optimum.onnxruntime
    import sentence_transformers
    import torch
    from sentence_transformers import CrossEncoder

    torch.set_num_threads(job["threads"])
    export_dir = Path(job["export_dir"])
    if not (export_dir / "onnx" / "model.onnx").exists():
        shutil.rmtree(export_dir, ignore_errors=True)
        shutil.copytree(job["model_dir"], export_dir)
        CrossEncoder(str(export_dir), backend="onnx").save_pretrained(str(export_dir))
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = job["threads"]
    model = CrossEncoder(str(export_dir), backend="onnx",
                         model_kwargs={"provider": "CPUExecutionProvider", "session_options": options})
    pairs = [tuple(pair) for pair in job["pairs"]]

    def run() -> list:
        return model.predict(pairs, batch_size=job["batch_size"], show_progress_bar=False).tolist()

    scores = run()
    times = []
    for _ in range(job["repeats"]):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    versions = {"sentence-transformers": sentence_transformers.__version__, "onnxruntime": onnxruntime.__version__,
                "optimum": getattr(optimum.onnxruntime, "__version__", "optimum-onnx")}
    print(json.dumps({"seconds": min(times), "median": statistics.median(times), "scores": scores, "versions": versions}))


if __name__ == "__main__":
    main()
