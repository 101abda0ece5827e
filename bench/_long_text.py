"""``bench/serve.py --long-text``: what one very long text costs a server, and the clients queued behind it.

Issue 32: a 5 MB string to ``/embed`` took 18.6 s and stalled good requests behind it, and a 5 MB query
to ``/rerank`` kept the reranker busy for about 70 s, because the whole string was tokenised before the
window was cut. Here, against one ``mmst serve`` (the full-size random ViT-B/32 CLIP of ``bench/embed.py``,
window 77 tokens, and a cross-encoder of ms-marco-MiniLM-L-6-v2's shapes with random weights, window 512):

- **cost**: the latency of one request holding a text of ``--long-chars`` characters against one holding
  a text at the model's window (about 5 characters per token of random words), median of ``--repeats``;
  target: at most 2x;
- **queued behind**: good requests sent one every ``--behind-every`` seconds while the long one runs (at
  most ``--behind``); the slowest one's extra wait over a good request alone, in normal batches (the
  time of a window-length request); target: at most one.

The same for ``/v1/rerank`` (the long text as the query, and as a document). Requests have a timeout
(``--timeout``): a request that gets no answer is reported as such, with the time it was given.

    python bench/serve.py --long-text [--long-chars 5000000] [--rerank-long-chars N] [--repeats 3] [--behind 40]

(``--rerank-long-chars``: a shorter long text for the rerank rows; before the fix, a cross-encoder's pair
truncation over a long query took seconds and gigabytes per 10,000 characters.)
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import httpx

VOCAB = ("a photo of the red blue car dog cat street chart slide revenue river night tree person house city "
         "garden table figure report quarter error code product name face text image document sky").split()
CHARS_PER_TOKEN_OF_WORDS = 5  # random words of VOCAB and a space: about one token each, 5 characters


def words(chars: int, seed: int) -> str:
    rng = random.Random(seed)
    parts, size = [], 0
    while size < chars:
        word = rng.choice(VOCAB)
        parts.append(word)
        size += len(word) + 1
    return " ".join(parts)[:chars]


class Timed:
    """One request's latency, or the reason it has none (a timeout, a status other than 200)."""

    def __init__(self, seconds: float, status: Optional[int], error: str = "") -> None:
        self.seconds, self.status, self.error = seconds, status, error

    @property
    def ok(self) -> bool:
        return self.status == 200

    def __str__(self) -> str:
        return f"{self.seconds:.2f} s" if self.ok else f"{self.error or self.status} after {self.seconds:.1f} s"


async def timed(client: httpx.AsyncClient, url: str, body: dict[str, Any], timeout: float) -> Timed:
    start = time.perf_counter()
    try:
        response = await client.post(url, json=body, timeout=timeout)
    except httpx.TimeoutException:
        return Timed(time.perf_counter() - start, None, "no answer")
    return Timed(time.perf_counter() - start, response.status_code)


async def cost(url: str, body: dict[str, Any], repeats: int, timeout: float) -> list[Timed]:
    async with httpx.AsyncClient() as client:
        results = []
        for _ in range(repeats):
            result = await timed(client, url, body, timeout)
            results.append(result)
            if not result.ok:
                break  # one timeout is the answer; no need to wait for it again
        return results


async def behind(url: str, long_body: dict[str, Any], good: list[dict[str, Any]], every: float, timeout: float
                 ) -> tuple[Timed, list[Timed]]:
    """The long request, and good requests sent one every ``every`` seconds while it runs (at least one,
    at most ``len(good)``): each good one's latency is its wait behind the long one plus its own time."""
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=64)) as client:
        long_task = asyncio.create_task(timed(client, url, long_body, timeout))
        sent = []
        for body in good:
            await asyncio.sleep(every)
            sent.append(asyncio.create_task(timed(client, url, body, timeout)))
            if long_task.done():
                break
        return await long_task, list(await asyncio.gather(*sent))


def median(results: list[Timed]) -> Optional[float]:
    ok = [r.seconds for r in results if r.ok]
    return statistics.median(ok) if ok and len(ok) == len(results) else None


def section(name: str, url: str, make: Callable[[str], dict[str, Any]], window_chars: int, long_chars: int,
            args: Any, good: list[dict[str, Any]]) -> list[str]:
    long_text, window_text = words(long_chars, 1), words(window_chars, 2)
    lines = [f"\n{name}: {url.rsplit('/', 1)[-1]} (the window's text: {window_chars} characters; the long one: "
             f"{long_chars:,})"]
    at_window = asyncio.run(cost(url, make(window_text), args.repeats, args.timeout))
    long = asyncio.run(cost(url, make(long_text), args.repeats, args.timeout))
    w, l = median(at_window), median(long)
    ratio = f"{l / w:.2f}x" if w and l else "n/a"
    lines.append(f"- cost: window-length text {', '.join(map(str, at_window))}; long text {', '.join(map(str, long))}; "
                 f"long / window = {ratio} (target <= 2x)")
    alone = asyncio.run(cost(url, good[0], args.repeats, args.timeout))
    long_first, queued = asyncio.run(behind(url, make(long_text), good, args.behind_every, args.timeout))
    g = median(alone)
    lines.append(f"- a good request alone: {', '.join(map(str, alone))}; {len(queued)} good requests sent every "
                 f"{args.behind_every:g} s while the long one ran ({long_first}): {spread(queued)}")
    waited = slowest(queued)
    if g is not None and w is not None and waited is not None:
        lines.append(f"- the slowest good request waited {max(0.0, waited - g):.2f} s more than alone; one normal batch "
                     f"(a window-length request) takes {w:.2f} s: {max(0.0, waited - g) / w:.2f} batches "
                     f"(target <= 1)")
    return lines


def slowest(results: list[Timed]) -> Optional[float]:
    return max(r.seconds for r in results) if all(r.ok for r in results) else None


def spread(results: list[Timed]) -> str:
    failed = [str(r) for r in results if not r.ok]
    ok = [r.seconds for r in results if r.ok]
    text = f"slowest {max(ok):.2f} s" if ok else "none answered"
    return text + (f", {len(failed)} failed ({failed[0]})" if failed else "")


def build_minilm_cross_encoder(path: Path, tokenizer: Any) -> Path:
    """A cross-encoder of ms-marco-MiniLM-L-6-v2's shapes (6 layers, hidden 384, 512 positions), random weights."""
    if (path / "config.json").exists():
        return path
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(num_labels=1, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                        intermediate_size=1536, architectures=["BertForSequenceClassification"])
    BertForSequenceClassification(config).eval().save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def run_long_text(args: Any, model_dir: Path, reranker_dir: Path, root: Path, cache: Path,
                  free_port: Callable[[], int], wait_ready: Callable[..., None], stop: Callable[..., None]) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(root)}
    process = subprocess.Popen([sys.executable, "-m", "llama_index_mm_st.cli", "serve", "--model", str(model_dir),
                                "--rerank", str(reranker_dir), "--port", str(port), "--device", "cpu",
                                "--log-level", "warning", "--precision", "fp32"], cwd=str(cache), env=env)
    base = f"http://127.0.0.1:{port}"
    lines = []
    try:
        wait_ready(base, process)
        short = [words(40, 10 + i) for i in range(args.behind)]  # one good request each
        lines += section("embeddings", base + "/v1/embeddings", lambda text: {"input": [text]},
                         77 * CHARS_PER_TOKEN_OF_WORDS, args.long_chars, args, [{"input": [text]} for text in short])
        documents = [words(200, 30 + i) for i in range(4)]
        good = [{"query": text, "documents": documents} for text in short]
        lines += section("rerank, a long query", base + "/v1/rerank",
                         lambda text: {"query": text, "documents": documents}, 512 * CHARS_PER_TOKEN_OF_WORDS,
                         args.rerank_long_chars or args.long_chars, args, good)
        lines += section("rerank, a long document", base + "/v1/rerank",
                         lambda text: {"query": "a red car", "documents": [*documents[:3], text]},
                         512 * CHARS_PER_TOKEN_OF_WORDS, args.rerank_long_chars or args.long_chars, args, good)
    finally:
        if process.poll() is None:
            stop(process)
    print("\n".join(lines))
    print(f"\nload at end: {os.getloadavg()[0]:.2f} (timings are under whatever else this machine runs)")
