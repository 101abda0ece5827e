"""The documents API (``mmst index FOLDER --server URL`` into a running ``mmst serve``) against ``mmst index``
(the in-process ingestion job, ``ingest.Indexer``) on the same folder: files/s, and the ratio.

Setup: a folder of N photo-like JPEGs (640x480) and T text files; the model is the full-size ViT-B/32 CLIP
with random weights (``--model b32``, speed as with real weights) or the tests' tiny CLIP (``--model
tiny``: the overhead of the API itself shows). Both sides start warm and write a fresh embedded store:

- ``mmst index``: ``Indexer(store, embedding).index([folder])`` in this process, the model loaded before.
- documents API: a ``mmst serve --store NEW --create`` process, started and ready before the clock
  starts; the client is ``mmst index --server``'s own code in this process (the walk, reading files, base64
  JSON, two requests in flight), so the server's process does the reading, embedding and writing.

Runs alternate (index, API, index, API, ...) so a busy moment of the shared machine slows one round,
not one side. Also printed: the latency of a search (``/v1/search``, one client) while the server is
idle and while it takes the folder, since searches keep running during writes.

    python bench/documents_api.py [--images 200] [--texts 50] [--repeats 2] [--model b32|tiny]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CACHE, load_average, machine_record  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-key"
sys.path.insert(0, str(ROOT))


def make_folder(folder: Path, images: int, texts: int) -> Path:
    from embed import make_jpegs

    make_jpegs(folder / "photos", images)
    words = "harbour crane valve pump seal ledger kiwi orchard basalt lantern pier tide".split()
    for i in range(texts):
        path = folder / "notes" / f"note_{i:03d}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_text(f"# Note {i}\n\n" + " ".join(words[(i + j) % len(words)] for j in range(120)) + "\n")
    return folder


def model_dir(kind: str) -> Path:
    if kind == "b32":
        from embed import build_clip_b32

        return build_clip_b32(CACHE / "clip-b32")
    from tests.fixtures.models import build_tiny_clip

    path = CACHE / "clip-tiny"
    if not (path / "config.json").exists():
        build_tiny_clip(path)
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """A ``mmst serve --create`` process on a fresh store, ready (warm) when constructed."""

    def __init__(self, store: Path, model: Path) -> None:
        import httpx

        self.base = f"http://127.0.0.1:{free_port()}"
        env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
        self.log = open(store.parent / f"{store.name}.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "llama_index_mm_st.cli", "serve", "--store", str(store), "--create", "--model",
             str(model), "--port", self.base.rsplit(":", 1)[1], "--api-key", KEY, "--log-level", "warning"],
            stdout=self.log, stderr=self.log, env=env)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"mmst serve exited: {(store.parent / f'{store.name}.log').read_text()[-2000:]}")
            try:
                if httpx.get(self.base + "/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit("mmst serve did not get ready")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(120)
        self.log.close()


def send_folder(base: str, folder: Path) -> dict:
    """What ``mmst index FOLDER --server URL`` does, in this process; the tally of outcomes."""
    from llama_index_mm_st.cli.index_remote import Tally, _Progress, _send_all, outgoing_file
    from llama_index_mm_st.ingest.listing import list_inputs
    from llama_index_mm_st.readers import ImageReader
    from llama_index_mm_st.remote.http import Endpoint, RetryPolicy

    endpoint = Endpoint(base, KEY, timeout=600.0, retry=RetryPolicy(max_retries=8))
    listing = list_inputs([str(folder)], ImageReader())
    tally = Tally()
    outgoing = [o for o in (outgoing_file(item, [str(folder)], tally) for item in listing.files) if o is not None]
    _send_all(endpoint, outgoing, tally, _Progress(len(outgoing), enabled=False))
    endpoint.close()
    return {"added": len(tally.added), "refused": len(tally.refused)}


def search_latencies(base: str, stop: threading.Event, out: list[float], limit: int = 10_000) -> None:
    import httpx

    with httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as client:
        while not stop.is_set() and len(out) < limit:
            start = time.perf_counter()
            answer = client.post(base + "/v1/search", json={"query": "harbour crane ledger", "top_k": 10})
            if answer.status_code == 200:
                out.append(time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--texts", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", choices=["b32", "tiny"], default="b32")
    args = parser.parse_args()

    from llama_index_mm_st import MultimodalEmbedding, MultimodalQdrantStore
    from llama_index_mm_st.ingest import Indexer

    folder = make_folder(CACHE / f"docs-api-{args.images}-{args.texts}", args.images, args.texts)
    files = args.images + args.texts
    model = model_dir(args.model)
    embedding = MultimodalEmbedding(str(model), device="cpu")
    work = Path(tempfile.mkdtemp(prefix="mmst-bench-docs-"))
    times: dict[str, list[float]] = {"mmst index": [], "documents API": []}
    idle: list[float] = []
    during: list[float] = []
    print(machine_record())
    print(f"{files} files ({args.images} JPEG 640x480, {args.texts} Markdown), model {args.model}, {load_average()}")
    for round_ in range(args.repeats + 1):  # round 0 warms both sides up and is not counted
        with MultimodalQdrantStore("mmst", path=str(work / f"index-{round_}")) as store:
            start = time.perf_counter()
            summary = Indexer(store, embedding).index([str(folder)])
            seconds = time.perf_counter() - start
        assert not summary.skipped, summary.skipped
        server = Server(work / f"served-{round_}", model)
        try:
            stop, latencies = threading.Event(), []
            probe = threading.Thread(target=search_latencies, args=(server.base, stop, latencies, 20))
            probe.start()
            probe.join()
            idle += latencies[2:]
            stop, latencies = threading.Event(), []
            probe = threading.Thread(target=search_latencies, args=(server.base, stop, latencies))
            probe.start()
            start = time.perf_counter()
            outcome = send_folder(server.base, folder)
            api_seconds = time.perf_counter() - start
            stop.set()
            probe.join()
            during += latencies
        finally:
            server.stop()
        assert outcome == {"added": files, "refused": 0}, outcome
        if round_:
            times["mmst index"].append(seconds)
            times["documents API"].append(api_seconds)
        print(f"  round {round_}{' (warm-up)' if not round_ else ''}: mmst index {files / seconds:.1f} files/s, "
              f"documents API {files / api_seconds:.1f} files/s", flush=True)
    best = {label: min(values) for label, values in times.items()}
    for label, seconds in best.items():
        print(f"{label:>14}: {files / seconds:7.1f} files/s (best of {args.repeats}: {seconds:.1f} s)")
    print(f"documents API / mmst index: {best['mmst index'] / best['documents API']:.2f}x")
    if idle and during:
        print(f"search p50 while idle {statistics.median(idle) * 1000:.0f} ms, while taking the folder "
              f"{statistics.median(during) * 1000:.0f} ms ({len(during)} searches, all answered)")
    print(load_average())


if __name__ == "__main__":
    main()
