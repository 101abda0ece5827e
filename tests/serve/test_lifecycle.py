"""``mmst serve`` as a process over an index ``mmst index`` built: it serves the index's own model, its
``/v1/search`` answers the rows ``mmst search --json`` prints, and on SIGTERM it finishes the requests in
flight while new ones get 503, then exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.serve.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
BIG = 800  # texts per in-flight request: long enough on the tiny CLIP to still be running at SIGTERM


def _wait_for(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def _index_and_search(tiny_clip_dir: Path, image_files: dict, tmp_path: Path, capsys) -> tuple[Path, list]:  # type: ignore[no-untyped-def]
    import json
    import shutil

    from llama_index_mm_st.cli import main

    folder = tmp_path / "corpus"
    folder.mkdir()
    for name in ("png", "jpeg"):
        shutil.copy(image_files[name], folder / image_files[name].name)
    (folder / "notes.txt").write_text("Part QX-7731 is the replacement valve.\n")
    (folder / "guide.md").write_text("Circles are round and squares have four sides.\n")
    store = tmp_path / "index"
    assert main(["index", str(folder), "--store", str(store), "--model", str(tiny_clip_dir), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["search", "round circles", "--store", str(store), "--json", "--top-k", "4"]) == 0
    return store, json.loads(capsys.readouterr().out)


def test_sigterm_finishes_in_flight_requests_and_refuses_new_ones(tiny_clip_dir: Path, image_files: dict,
                                                                 tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    store, printed = _index_and_search(tiny_clip_dir, image_files, tmp_path, capsys)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "MMST_API_KEY": "lifecycle-key"}
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_index_mm_st.cli", "serve", "--store", str(store), "--port", str(port),
         "--device", "cpu", "--drain-seconds", "1.5", "--log-level", "warning",
         "--max-queue-wait", "600"],  # admission by estimated wait is not what this test is about (busy CPUs)
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    headers = {"Authorization": "Bearer lifecycle-key"}
    try:
        assert _wait_for(lambda: _status(base + "/health") in (200, 503), 120), "the port never opened"
        assert _wait_for(lambda: _status(base + "/health") == 200, 120), "the server never became ready"
        served = httpx.post(base + "/v1/search", headers=headers, json={"query": "round circles", "top_k": 4}).json()
        assert served["results"] == printed  # the rows mmst search --json prints, score for score

        async def scenario():  # type: ignore[no-untyped-def]
            async with httpx.AsyncClient(timeout=120) as client:
                big = [asyncio.create_task(client.post(base + "/v1/embeddings", headers=headers,
                                                       json={"input": [f"text number {i} of {j}" for i in range(BIG)]}))
                       for j in range(3)]
                for _ in range(200):  # until the server has them in hand
                    metrics = (await client.get(base + "/metrics")).text
                    if "mmst_requests_in_flight 3.0" in metrics:
                        break
                    await asyncio.sleep(0.02)
                process.send_signal(signal.SIGTERM)
                await asyncio.sleep(0.3)
                late = await client.post(base + "/v1/embeddings", headers=headers, json={"input": ["late"]})
                health = await client.get(base + "/health")
                return await asyncio.gather(*big), late, health

        finished, late, health = asyncio.run(scenario())
        assert [r.status_code for r in finished] == [200, 200, 200]
        assert all(len(r.json()["data"]) == BIG for r in finished)
        assert late.status_code == 503 and late.json()["error"]["code"] == "stopping"
        assert late.headers["Retry-After"] == "1"
        assert health.status_code == 503 and health.json()["status"] == "stopping"
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    stderr = process.stderr.read() if process.stderr else ""
    assert "lifecycle-key" not in stderr
