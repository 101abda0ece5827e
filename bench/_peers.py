"""Peers that cannot share our venv run in a second one, as subprocesses of the same bench run.

- fastembed 0.9 (the ONNX Runtime peer) pins huggingface-hub < 2, which transformers 5 can't use.
- sentence-transformers' own ``backend="onnx"`` needs optimum-onnx, whose only release pins
  transformers < 4.58, while sentence-transformers 6 needs transformers 5: it runs with
  sentence-transformers 5.x there (the same ``CrossEncoder`` API and optimum exporter).

Set it up once (about 1.5 GB; torch 2.13's small CPU wheel):

    python -m venv .bench_cache/peer-venv
    .bench_cache/peer-venv/bin/pip install "torch==2.13.0" "sentence-transformers>=5.1,<6" \\
        "transformers==4.57.6" "optimum-onnx[onnxruntime]==0.1.0" "fastembed==0.9.1"

or point ``MMST_BENCH_PEER_PYTHON`` at such an interpreter. Without it those rows say why they did not run.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Optional

from _common import CACHE

HERE = Path(__file__).resolve().parent


def peer_python() -> Optional[Path]:
    configured = os.environ.get("MMST_BENCH_PEER_PYTHON")
    candidate = Path(configured) if configured else CACHE / "peer-venv" / "bin" / "python"
    return candidate if candidate.exists() else None


def run_peer(script: str, payload: dict[str, Any], timeout: float = 7200) -> dict[str, Any]:
    """Run ``bench/<script>`` in the peer venv with ``payload`` on stdin; its last stdout line (JSON),
    or ``{"error": why}``."""
    python = peer_python()
    if python is None:
        return {"error": "no peer venv (see bench/_peers.py)"}
    env = {**os.environ, "PYTHONPATH": "", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([str(python), str(HERE / script)], input=json.dumps(payload), capture_output=True,
                          text=True, timeout=timeout, env=env)
    lines = [line for line in done.stdout.strip().splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"{script} failed: {tail[:300]}"}
    return json.loads(lines[-1])
