"""Serving throughput and latency: ``mmst serve`` vs Infinity 0.0.78 vs our in-process embedding, same run.

Setup (issue 22): the full-size ViT-B/32 CLIP with random weights (``bench/embed.py``'s checkpoint), served
by each server in turn on this machine's cores, driven by an asyncio httpx client in this process:

- single texts: ``--text-requests`` (64) requests of one caption each, from 1, 8 and 64 concurrent clients;
- batched images: ``--image-requests`` (8) requests of 8 JPEGs (640x480) as data URIs, from 1 and 8 clients;
- the in-process rows embed the same captions and the same JPEG bytes with ``MultimodalEmbedding``, in a
  worker thread (as the servers run their models);
- memory: ``--memory-seconds`` of 64 concurrent text clients against our server after warm-up; the
  growth of the server's resident memory (``/proc/PID/status`` VmRSS) is printed.

Every row prints requests/s (or images/s), p50 and p99 latency, and the ratios the issue sets as
targets: ours >= Infinity on both rows, ours >= 0.9x in-process for batched images, 64 concurrent single
texts >= 3x the same requests one after another.

Infinity installs only in a virtual environment of its own (it pins numpy < 2, sentence-transformers < 4
and transformers 4.47), never in ours, and its code is not part of this repository::

    python -m venv /work/infinity-venv
    /work/infinity-venv/bin/pip install "torch==2.14.1" "infinity-emb[server,vision]==0.0.78" aiohttp

Its transformers 4.47 reads the older checkpoint layout, so the bench gives it a copy of the checkpoint
whose ``processor_config.json`` is replaced by its ``image_processor`` section saved as
``preprocessor_config.json``, and starts ``infinity_emb v2 --model-id DIR --device cpu --engine torch``.
Or start Infinity yourself and pass ``--infinity-url``.

    python bench/serve.py [--infinity-bin /work/infinity-venv/bin/infinity_emb | --infinity-url URL]
                          [--text-requests 64] [--image-requests 8] [--memory-seconds 60]

``--long-text`` measures instead what one very long text costs and the requests queued behind it
(``bench/_long_text.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CACHE, header, machine_record  # noqa: E402
from embed import build_clip_b32, make_jpegs  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
IMAGES_PER_REQUEST = 8


@dataclass(frozen=True)
class Row:
    """One measured configuration: items per second and request latencies."""

    name: str
    items: int
    seconds: float
    latencies: Sequence[float]

    @property
    def rate(self) -> float:
        return self.items / self.seconds

    def line(self, unit: str) -> str:
        lat = sorted(self.latencies)
        p50 = statistics.median(lat) * 1e3 if lat else float("nan")
        p99 = lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))] * 1e3 if lat else float("nan")
        return f"| {self.name} | {self.rate:.1f} {unit}/s | {p50:.0f} ms | {p99:.0f} ms |"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def infinity_checkpoint(model_dir: Path) -> Path:
    """A copy in the layout transformers 4.47 reads: the image processor as ``preprocessor_config.json``."""
    target = model_dir.parent / (model_dir.name + "-infinity")
    if (target / "preprocessor_config.json").exists():
        return target
    shutil.copytree(model_dir, target, dirs_exist_ok=True)
    processor = target / "processor_config.json"
    if processor.exists():
        sections = json.loads(processor.read_text())
        (target / "preprocessor_config.json").write_text(json.dumps(sections["image_processor"], indent=2))
        processor.unlink()
    return target


def wait_ready(base: str, process: Optional[subprocess.Popen], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server at {base} exited with {process.returncode}")
        try:
            if httpx.get(base + "/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the server at {base} was not ready after {timeout:.0f} s")


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def drive(base: str, model: str, bodies: Sequence[dict[str, Any]], clients: int,
                errors: Optional[list[str]] = None) -> tuple[float, list[float]]:
    """Send ``bodies`` from ``clients`` concurrent clients; wall time and each request's latency. With
    ``errors`` a failed request is recorded there instead of raised (the memory run keeps going)."""
    latencies: list[float] = []
    queue = list(bodies)
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=clients + 4)) as client:
        async def worker() -> None:
            while queue:
                body = queue.pop()
                start = time.perf_counter()
                try:
                    response = await client.post(base + "/embeddings", json={**body, "model": model,
                                                                             "encoding_format": "base64"})
                    response.raise_for_status()
                except httpx.HTTPError as exc:
                    if errors is None:
                        raise
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return time.perf_counter() - start, latencies


def served_model(base: str) -> str:
    return str(httpx.get(base + "/models", timeout=10).json()["data"][0]["id"])


def batch_stats(base: str) -> tuple[float, float]:
    """(batches, items) our server has run so far, from its /metrics."""
    totals = {"count": 0.0, "sum": 0.0}
    for line in httpx.get(base + "/metrics", timeout=10).text.splitlines():
        for key in totals:
            if line.startswith(f'mmst_batch_size_{key}{{model="embedding"}}'):
                totals[key] = float(line.split()[-1])
    return totals["count"], totals["sum"]


class Server:
    """One server under test: its base URL, served model id, and the workloads as request bodies."""

    def __init__(self, label: str, base: str, texts: list[str], image_uris: list[str], ours: bool) -> None:
        self.label, self.base, self.ours = label, base, ours
        self.model = served_model(base)
        self.bodies = {
            "text": [{"input": [text]} for text in texts],
            "image": [{"input": image_uris[i: i + IMAGES_PER_REQUEST], "modality": "image"}
                      for i in range(0, len(image_uris), IMAGES_PER_REQUEST)],
        }
        asyncio.run(drive(base, self.model, self.bodies["text"][:16] + self.bodies["image"][:2], 4))  # warm-up

    def run(self, kind: str, clients: int) -> tuple[float, list[float], str]:
        before = batch_stats(self.base) if self.ours else None
        seconds, latencies = asyncio.run(drive(self.base, self.model, self.bodies[kind], clients))
        note = ""
        if before is not None:
            after = batch_stats(self.base)
            batches, items = after[0] - before[0], after[1] - before[1]
            note = f" ({items / max(batches, 1):.1f} items per batch)"
        return seconds, latencies, note


class InProcess:
    """Our embedding in this process, its calls run in a worker thread as a server runs them (on a loaded
    machine, torch in the main thread measured many times slower than in a worker on the same calls)."""

    def __init__(self, model_dir: Path, texts: list[str], image_bytes: list[bytes], **options: str) -> None:
        from llama_index_mm_st import MultimodalEmbedding

        self.texts, self.images = texts, image_bytes
        self.embedding = MultimodalEmbedding(str(model_dir), device="cpu", **options)
        self._threaded(lambda: (self.embedding.embed(image_bytes[:8], "image"),
                                self.embedding.get_text_embedding_batch(texts[:8])))

    @staticmethod
    def _threaded(work: Any) -> None:
        async def run() -> None:
            await asyncio.to_thread(work)

        asyncio.run(run())

    def run(self, kind: str) -> float:
        embedding, images, step = self.embedding, self.images, IMAGES_PER_REQUEST

        async def texts_one_by_one() -> None:
            for text in self.texts:
                await asyncio.to_thread(embedding.get_query_embedding, text)

        async def texts_at_once() -> None:
            await asyncio.gather(*(embedding.aget_query_embedding(text) for text in self.texts))

        async def images_in_one_call() -> None:
            await asyncio.to_thread(embedding.embed, images, "image")

        async def images_by_request() -> None:
            for i in range(0, len(images), step):
                await asyncio.to_thread(embedding.embed, images[i: i + step], "image")

        work = {"text x1": texts_one_by_one, "text x64": texts_at_once, "image batch": images_in_one_call,
                "image x8": images_by_request}[kind]
        start = time.perf_counter()
        asyncio.run(work())
        return time.perf_counter() - start


IN_PROCESS_NAMES = {
    "text x1": "in-process, single texts one after another",
    "text x64": "in-process, single texts all at once (aget_query_embedding)",
    "image batch": "in-process, the same JPEG bytes in one embed call",
    "image x8": f"in-process, the same JPEG bytes {IMAGES_PER_REQUEST} per call",
}
SERVER_ROWS = [("text", 1), ("text", 8), ("text", 64), ("image", 1), ("image", 8)]
PAIRED = {("text", 1): ["text x1"], ("text", 64): ["text x64"], ("image", 1): ["image batch", "image x8"]}
"""In-process rows measured in the same rounds as a server row, so each pair sees the same background load."""


def measure(servers: list[Server], in_process: InProcess, counts: dict[str, int], repeats: int) -> dict[str, dict[str, Row]]:
    """Every row, ``repeats`` rounds each, the sides interleaved within a round; the best round of each side."""
    rows: dict[str, dict[str, Row]] = {server.label: {} for server in servers}
    rows["in-process"] = {}
    for kind, clients in SERVER_ROWS:
        key = f"{kind} x{clients}"
        best: dict[str, Any] = {}
        for _ in range(repeats):
            for server in servers:
                seconds, latencies, note = server.run(kind, clients)
                if server.label not in best or seconds < best[server.label][0]:
                    best[server.label] = (seconds, latencies, note)
            for name in PAIRED.get((kind, clients), []):
                seconds = in_process.run(name)
                if name not in best or seconds < best[name]:
                    best[name] = seconds
        what = "single texts" if kind == "text" else f"{IMAGES_PER_REQUEST} images per request"
        for server in servers:
            seconds, latencies, note = best[server.label]
            row = Row(f"{server.label}, {what}, {clients} client(s){note}", counts[kind], seconds, latencies)
            rows[server.label][key] = row
            print(row.line("images" if kind == "image" else "requests"), flush=True)
        for name in PAIRED.get((kind, clients), []):
            row = Row(IN_PROCESS_NAMES[name], counts[kind], best[name], [])
            rows["in-process"][name] = row
            print(f"| {row.name} | {row.rate:.1f} {'images' if kind == 'image' else 'texts'}/s | - | - |", flush=True)
    return rows


def memory_run(base: str, pid: int, texts: list[str], seconds: float) -> str:
    """64 concurrent single-text clients for ``seconds``; the server's RSS before and after (and every 10 s)."""
    model = served_model(base)
    bodies = [{"input": [t]} for t in texts]
    asyncio.run(drive(base, model, bodies * 2, 64))  # past warm-up
    before = rss_mb(pid)
    samples = [before]
    errors: list[str] = []
    start = time.monotonic()
    sent = 0
    while time.monotonic() - start < seconds:
        asyncio.run(drive(base, model, bodies, 64, errors))
        sent += len(bodies)
        if time.monotonic() - start >= 10 * len(samples):
            samples.append(rss_mb(pid))
    after = rss_mb(pid)
    trail = " ".join(f"{mb:.0f}" for mb in samples + [after])
    failed = f"; {len(errors)} failed requests (first: {errors[0]})" if errors else "; no failed requests"
    return (f"memory: {sent} requests from 64 clients in {time.monotonic() - start:.0f} s; server RSS {before:.0f} MB "
            f"-> {after:.0f} MB (growth {after - before:+.0f} MB; target < 100 MB); every 10 s: {trail} MB{failed}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text-requests", type=int, default=64)
    parser.add_argument("--image-requests", type=int, default=8, help=f"requests of {IMAGES_PER_REQUEST} images")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--memory-seconds", type=float, default=60.0, help="0 skips the memory run")
    parser.add_argument("--infinity-bin", default="/work/infinity-venv/bin/infinity_emb")
    parser.add_argument("--infinity-url", default=None, help="an Infinity already running (serving the checkpoint)")
    parser.add_argument("--skip-infinity", action="store_true")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="ours (server and in-process); Infinity runs fp32 torch on a CPU either way")
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"], help="ours")
    parser.add_argument("--long-text", action="store_true",
                        help="instead: what one very long text costs, and the requests behind it (bench/_long_text.py)")
    parser.add_argument("--long-chars", type=int, default=5_000_000, help="with --long-text: the long text's length")
    parser.add_argument("--rerank-long-chars", type=int, default=None,
                        help="with --long-text: the long text of the rerank rows (default: --long-chars)")
    parser.add_argument("--behind", type=int, default=40, help="with --long-text: at most this many good requests")
    parser.add_argument("--behind-every", type=float, default=0.25,
                        help="with --long-text: seconds between good requests sent while the long one runs")
    parser.add_argument("--timeout", type=float, default=120.0, help="with --long-text: seconds a request is given")
    args = parser.parse_args()
    if args.long_text:
        from _long_text import build_minilm_cross_encoder, run_long_text
        from rerank import _tokenizer

        print(header("serve --long-text", "cpu", "fp32"))
        print(machine_record())
        run_long_text(args, build_clip_b32(CACHE / "clip-vit-b32-random"),
                      build_minilm_cross_encoder(CACHE / "minilm-l6-cross-encoder-random", _tokenizer()), ROOT, CACHE,
                      free_port, wait_ready, stop)
        return
    ours = {"precision": args.precision, "backend": args.backend}

    print(header("serve", "cpu", f"ours: {args.precision}, backend {args.backend} (auto: native bf16 where the CPU "
                                 "has it, or the fastest exact path measured); Infinity: fp32 torch"))
    print(machine_record())
    flags = subprocess.run(["sh", "-c", "grep -m1 -o -w -E 'avx2|avx512f|avx512_bf16|amx_bf16' /proc/cpuinfo | "
                                        "sort -u | tr '\\n' ' '"], capture_output=True, text=True).stdout
    print(f"CPU flags: {flags.strip() or 'none of avx2/avx512f/avx512_bf16/amx_bf16'}; load at start: "
          f"{os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")

    model_dir = build_clip_b32(CACHE / "clip-vit-b32-random")
    jpegs = make_jpegs(CACHE / "jpegs-640x480", args.image_requests * IMAGES_PER_REQUEST)
    image_bytes = [path.read_bytes() for path in jpegs]
    image_uris = [f"data:image/jpeg;base64,{base64.b64encode(data).decode()}" for data in image_bytes]
    rng = random.Random(1)
    vocab = "a photo of the red blue car dog cat street chart slide revenue river night tree person".split()
    texts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(4, 16))) for _ in range(args.text_requests)]

    print("| configuration | rate | p50 | p99 |\n|---|---|---|---|", flush=True)
    in_process = InProcess(model_dir, texts, image_bytes, **ours)
    print(f"ours run: {in_process.embedding.describe()}")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ours_port = free_port()
    processes = [subprocess.Popen([sys.executable, "-m", "llama_index_mm_st.cli", "serve", "--model", str(model_dir),
                                   "--port", str(ours_port), "--device", "cpu", "--log-level", "warning",
                                   "--precision", args.precision, "--backend", args.backend],
                                  cwd=str(CACHE), env=env)]
    ours_base = f"http://127.0.0.1:{ours_port}"
    infinity_base = args.infinity_url.rstrip("/") if args.infinity_url else None
    if not args.skip_infinity and infinity_base is None:
        port = free_port()
        processes.append(subprocess.Popen(
            [args.infinity_bin, "v2", "--model-id", str(infinity_checkpoint(model_dir)), "--device", "cpu",
             "--engine", "torch", "--port", str(port)],
            env={**os.environ, "INFINITY_ANONYMOUS_USAGE_STATS": "0", "HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "1"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        infinity_base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(ours_base, processes[0])
        servers = [Server("mmst serve", ours_base, texts, image_uris, ours=True)]
        if infinity_base is not None and not args.skip_infinity:
            wait_ready(infinity_base, processes[1] if len(processes) > 1 else None)
            servers.append(Server("Infinity 0.0.78", infinity_base, texts, image_uris, ours=False))
        rows = measure(servers, in_process, {"text": len(texts), "image": len(image_uris)}, args.repeats)
        for process in processes[1:]:
            stop(process)  # the memory run has the machine to itself
        memory = memory_run(ours_base, processes[0].pid, texts, args.memory_seconds) if args.memory_seconds else ""
        print(memory, flush=True)
    finally:
        for process in processes:
            if process.poll() is None:
                stop(process)
    ours, infinity, in_process_rows = rows["mmst serve"], rows.get("Infinity 0.0.78", {}), rows["in-process"]

    print(f"\n{args.text_requests} single-text requests; {args.image_requests} requests of {IMAGES_PER_REQUEST} "
          f"JPEGs 640x480 as data URIs; best of {args.repeats}; load at end: {os.getloadavg()[0]:.2f}\n")
    print("| configuration | rate | p50 | p99 |\n|---|---|---|---|")
    for key in ("text x1", "text x8", "text x64", "image x1", "image x8"):
        for rows in (ours, infinity):
            if key in rows:
                print(rows[key].line("images" if key.startswith("image") else "requests"))
    for row in in_process_rows.values():
        print(f"| {row.name} | {row.rate:.1f} {'images' if 'JPEG' in row.name else 'texts'}/s | - | - |")

    print("\nratios (same run):")
    best_images = max(ours["image x1"].rate, ours["image x8"].rate)
    print(f"- 64 concurrent single texts vs one after another, ours: "
          f"{ours['text x64'].rate / ours['text x1'].rate:.2f}x (target >= 3x)")
    print(f"- batched images, ours (best of 1 and 8 clients) vs in-process one call: "
          f"{best_images / in_process_rows['image batch'].rate:.2f}x (target >= 0.9x); vs in-process {IMAGES_PER_REQUEST} "
          f"per call: {best_images / in_process_rows['image x8'].rate:.2f}x")
    if infinity:
        for key in ("text x1", "text x8", "text x64", "image x1", "image x8"):
            print(f"- {key}: ours / Infinity = {ours[key].rate / infinity[key].rate:.2f}x (target >= 1x)")
        print(f"- Infinity, 64 concurrent single texts vs one after another: "
              f"{infinity['text x64'].rate / infinity['text x1'].rate:.2f}x")
    if memory:
        print(f"\n{memory}")


if __name__ == "__main__":
    main()
