"""Ctrl-C during ``mmst index`` is answered at once, even while the job is inside a step that would not
return (a model batch that never ends here): the process says so and exits 130, and the same command
then resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

STUCK_INDEXER = textwrap.dedent(
    """
    import sys, threading
    from llama_index_mm_st.embedding import MultimodalEmbedding
    from llama_index_mm_st.cli import main

    original = MultimodalEmbedding.embed_nodes
    calls = [0]

    def embed_nodes(self, parts, **kwargs):
        calls[0] += 1
        if calls[0] == 2:  # the first chunk is written; the second batch never ends
            print("stuck", flush=True)
            threading.Event().wait()
        return original(self, parts, **kwargs)

    MultimodalEmbedding.embed_nodes = embed_nodes
    from llama_index_mm_st.ingest import indexer
    indexer.NODES_PER_WRITE = 2
    sys.exit(main(sys.argv[1:]))
    """
)


def test_ctrl_c_inside_a_model_batch_exits_at_once_and_the_rerun_resumes(corpus, tmp_path, tiny_clip_dir, run_cli):
    store = tmp_path / "index"
    argv = ["index", str(corpus), "--store", str(store), "--model", str(tiny_clip_dir), "--no-progress"]
    job = subprocess.Popen([sys.executable, "-c", STUCK_INDEXER, *argv], cwd=REPO, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert job.stdout.readline().strip() == "stuck"
    job.send_signal(signal.SIGINT)
    started = time.perf_counter()
    _, err = job.communicate(timeout=60)  # before the fix it waited for the batch: here, forever
    stopped_after = time.perf_counter() - started
    assert job.returncode == 130, err
    assert err.strip().splitlines()[-1] == "mmst: interrupted; run the same command again to resume"
    print(f"stopped {stopped_after:.2f} s after Ctrl-C")  # about STOP_GRACE_S; not asserted (shared CPUs)

    code, out, err = run_cli(*argv)
    assert code == 0, err
    assert "unchanged (already indexed): " in out and "unchanged (already indexed): 0 files" not in out
