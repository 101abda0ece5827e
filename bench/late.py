"""Late interaction (ColPali family): embedding throughput, and the store's MaxSim search at 10k pages.

**embed**: pages/s for ``MultimodalEmbedding`` against sentence-transformers' own
``MultiVectorEncoder.encode_document`` on the same rendered pages, with the full-size ColQwen2
architecture (Qwen2-VL-2B backbone, 128-d token vectors) and random weights. Both run on the same
loaded model; fp32 first (both sides), then ours at ``--precision``.

**store**: query p50 and recall@5 at ``--pages`` synthetic pages, with the default two-stage
settings (pooled prefetch, exact MaxSim over the candidates) and each memory lever, against exact
MaxSim over every page computed with numpy (the peer, and the limit: it is what recall is
measured against). Synthetic pages: topics of 5 pages; a page's ``--tokens`` token vectors are its
topic's concepts plus noise, and a ``--background`` share of tokens drawn from a few layout vectors
every page shares (blank margins, headers), which is what makes a mean-pooled vector a weak proxy;
a query's 20 tokens are noisy copies of a page's. Recall@5 counts a result as a hit when its exact
score reaches the exact 5th best.

    python bench/late.py --sections store [--pages 10000] [--tokens 128] [--background 0.25]
    python bench/late.py --sections embed --device cpu --embed-pages 2
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CACHE, add_device_args, header, machine_record  # noqa: E402

DIM = 128
QUERY_TOKENS = 20
TOPIC_PAGES = 5


# ------------------------------------------------------------------ synthetic pages


def _unit(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=-1, keepdims=True)).astype(np.float32)


def synthetic_pages(count: int, tokens: int, background: float, seed: int = 0) -> np.ndarray:
    """(count, tokens, DIM) unit token vectors: topic concepts plus noise, and shared layout tokens."""
    rng = np.random.default_rng(seed)
    topics = -(-count // TOPIC_PAGES)
    concepts = _unit(rng.normal(size=(topics, 8, DIM)))
    layout = _unit(rng.normal(size=(16, DIM)))
    pages = np.empty((count, tokens, DIM), np.float32)
    shared = int(round(tokens * background))
    noise = 0.6 / DIM**0.5
    for i in range(count):
        own = concepts[i // TOPIC_PAGES][rng.integers(0, 8, size=tokens - shared)]
        rows = np.concatenate([layout[rng.integers(0, 16, size=shared)], own])
        pages[i] = _unit(rows + noise * rng.normal(size=rows.shape))
    return pages


def synthetic_queries(pages: np.ndarray, count: int, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    noise = 0.6 / DIM**0.5
    queries = []
    for _ in range(count):
        page = pages[int(rng.integers(0, len(pages)))]
        rows = page[rng.integers(0, len(page), size=QUERY_TOKENS)]
        queries.append(_unit(rows + noise * rng.normal(size=rows.shape)))
    return queries


def exact_scores(query: np.ndarray, flat: np.ndarray, count: int, tokens: int) -> np.ndarray:
    """MaxSim of one query against every page, numpy (one matmul, then max and sum)."""
    return (query @ flat.T).reshape(len(query), count, tokens).max(axis=2).sum(axis=0)


def recall_at_5(found: list[int], scores: np.ndarray) -> float:
    fifth = np.partition(scores, -5)[-5]
    return sum(scores[i] >= fifth - 1e-4 for i in found[:5]) / 5


# ------------------------------------------------------------------ store levers


def pool_tokens(pages: np.ndarray, factor: float) -> list[np.ndarray]:
    """sentence-transformers' hierarchical token pooling, as the embedding applies it at indexing."""
    import torch
    from sentence_transformers.multi_vector_encoder.modules import HierarchicalTokenPooling

    pooling = HierarchicalTokenPooling(pool_factor=factor)
    return [m.numpy() for m in pooling.pool([torch.from_numpy(p) for p in pages], task="document")]


def build_store(where: Path, stored: list[np.ndarray], options: dict[str, Any]) -> Any:
    from llama_index.core.schema import ImageNode

    from llama_index_mm_st.multivector import attach_multivector, pooled
    from llama_index_mm_st.store import MultimodalQdrantStore

    store = MultimodalQdrantStore("late", path=str(where), late_interaction=True, batch_size=256, **options)
    batch = []
    for i, matrix in enumerate(stored):
        node = ImageNode(id_=f"page-{i}", image_path=f"/pages/{i}.png", embedding=pooled(matrix).tolist())
        attach_multivector(node, matrix)
        batch.append(node)
        if len(batch) == 1000:
            store.add(batch)
            batch = []
    if batch:
        store.add(batch)
    store.optimize()
    return store


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def time_queries(run: Callable[[np.ndarray], list[int]], queries: list[np.ndarray], exact: list[np.ndarray]
                 ) -> tuple[float, float, float]:
    """(p50 ms, p90 ms, recall@5) over the queries, after two warm-up queries."""
    for query in queries[:2]:
        run(query)
    latencies, recalls = [], []
    for query, scores in zip(queries, exact):
        start = time.perf_counter()
        found = run(query)
        latencies.append((time.perf_counter() - start) * 1000)
        recalls.append(recall_at_5(found, scores))
    latencies.sort()
    return statistics.median(latencies), latencies[int(0.9 * (len(latencies) - 1))], float(np.mean(recalls))


def store_section(args: argparse.Namespace) -> None:
    from llama_index.core.vector_stores.types import VectorStoreQuery

    from llama_index_mm_st.multivector import PooledVector, pooled
    from llama_index_mm_st.store.late import DEFAULT_PREFETCH_LIMIT

    pages = synthetic_pages(args.pages, args.tokens, args.background)
    flat = pages.reshape(-1, DIM)
    queries = synthetic_queries(pages, args.queries)
    exact = [exact_scores(q, flat, args.pages, args.tokens) for q in queries]

    def numpy_run(query: np.ndarray) -> list[int]:
        return list(np.argsort(-exact_scores(query, flat, args.pages, args.tokens))[:5])

    p50, p90, _ = time_queries(numpy_run, queries, exact)
    print(f"\n## store: {args.pages} pages x {args.tokens} tokens x {DIM}-d, background {args.background}, "
          f"{args.queries} queries of {QUERY_TOKENS} tokens (Qdrant Edge, CPU)")
    print(f"numpy exact MaxSim over all pages (peer and limit): p50 {p50:.1f} ms, p90 {p90:.1f} ms, recall@5 1.000, "
          f"{args.tokens * DIM * 4} B/page float32 in RAM")
    numpy_p50 = p50
    float32_bytes = args.tokens * DIM * 4
    levers: list[tuple[str, dict[str, Any], float | None]] = [
        (f"default two-stage (prefetch {DEFAULT_PREFETCH_LIMIT}, float32)", {}, None),
        *[(f"prefetch {limit}", {"prefetch_limit": limit}, None) for limit in args.prefetch_sweep],
    ]
    if args.levers == "all":
        levers += [
            ("token pooling x2 at indexing (float32)", {}, 2.0),
            ("token pooling x4 at indexing (float32)", {}, 4.0),
            ("float16 multivectors", {"multivector_datatype": "float16"}, None),
            ("int8 (uint8 codes) + rescoring, originals on disk",
             {"multivector_quantization": "int8", "on_disk": True}, None),
            ("binary + rescoring, originals on disk", {"multivector_quantization": "binary", "on_disk": True}, None),
        ]
    print(f"{'configuration':<52} {'RAM B/page':>10} {'disk B/page':>11} {'p50 ms':>8} {'p90 ms':>8} "
          f"{'recall@5':>8} {'numpy/ours':>10}")
    for name, options, factor in levers:
        stored = pool_tokens(pages, factor) if factor else list(pages)
        tokens = float(np.mean([len(m) for m in stored]))
        root = Path(tempfile.mkdtemp(prefix="mmst-late-bench-"))
        try:
            start = time.perf_counter()
            store = build_store(root, stored, options)
            build = time.perf_counter() - start

            def run(query: np.ndarray) -> list[int]:
                vector = PooledVector(pooled(query).tolist(), query)
                result = store.query(VectorStoreQuery(query_embedding=vector, similarity_top_k=5))
                return [int(i.split("-")[1]) for i in result.ids]

            p50, p90, recall = time_queries(run, queries, exact)
            kind = options.get("multivector_quantization")
            per_dim = {"int8": 1, "binary": 1 / 8}.get(kind or "", 2 if options.get("multivector_datatype") == "float16" else 4)
            ram = tokens * DIM * per_dim + DIM * 4  # the searched multivector copy, plus the pooled vector
            disk = directory_bytes(root) / args.pages
            print(f"{name:<52} {ram:>10.0f} {disk:>11.0f} {p50:>8.1f} {p90:>8.1f} {recall:>8.3f} "
                  f"{numpy_p50 / p50:>10.1f}  (avg {tokens:.0f} tokens/page, build {build:.0f} s)")
            store.close()
        finally:
            shutil.rmtree(root, ignore_errors=True)
    print(f"(float32 multivector: {float32_bytes} B/page; RAM counts the copy searches read: with int8/binary the "
          "float32 originals are memory-mapped from disk and read only to rescore the candidates)")


# ------------------------------------------------------------------ embedding throughput


def build_colqwen2_full(path: Path) -> Path:
    """ColQwen2 at Qwen2-VL-2B size (vidore/colqwen2-v1.0's backbone), random weights, saved in bf16."""
    if (path / "config.json").exists():
        return path
    import torch
    from transformers import (ColQwen2Config, ColQwen2ForRetrieval, ColQwen2Processor, Qwen2VLConfig,
                              Qwen2VLImageProcessor)

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.fixtures.qwen_vl import SPECIAL_TOKENS, qwen_tokenizer

    tokenizer = qwen_tokenizer(seed=2)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    vlm = Qwen2VLConfig(
        text_config=dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                         num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768,
                         rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [16, 24, 24]},
                         pad_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], bos_token_id=None),
        vision_config=dict(depth=32, embed_dim=1280, hidden_size=1536, num_heads=16, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2, mlp_ratio=4),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(0)
    model = ColQwen2ForRetrieval(ColQwen2Config(vlm_config=vlm, embedding_dim=DIM)).eval().to(torch.bfloat16)
    model.save_pretrained(path)
    # vidore/colqwen2-v1.0 renders pages at up to 768 patches of 28x28 px.
    image_processor = Qwen2VLImageProcessor(patch_size=14, merge_size=2, temporal_patch_size=2,
                                            min_pixels=4 * 28 * 28, max_pixels=768 * 28 * 28)
    ColQwen2Processor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)
    return path


def page_images(count: int, width: int, height: int) -> list[Any]:
    """Rendered-page-like images: white with dark text-like bars."""
    from PIL import Image

    rng = np.random.default_rng(0)
    images = []
    for _ in range(count):
        page = np.full((height, width, 3), 255, np.uint8)
        for top in range(20, height - 20, 18):
            length = int(rng.integers(width // 3, width - 40))
            page[top : top + 8, 20 : 20 + length] = rng.integers(0, 80)
        images.append(Image.fromarray(page))
    return images


def embed_section(args: argparse.Namespace) -> None:
    import torch
    from sentence_transformers import MultiVectorEncoder

    from llama_index_mm_st.embedding import MultimodalEmbedding

    torch.set_num_threads(args.threads) if args.threads else None
    path = build_colqwen2_full(CACHE / "colqwen2_full")
    model = MultiVectorEncoder(str(path), device=args.device, model_kwargs={"dtype": torch.float32})
    pages = page_images(args.embed_pages, args.page_width, args.page_height)
    tokens = sum(len(m) for m in model.encode_document(pages[:1]))

    def timed(fn: Callable[[list[Any]], Any]) -> float:
        fn(pages[:1])  # warm-up on one page
        start = time.perf_counter()
        fn(pages)
        return time.perf_counter() - start

    st = timed(lambda batch: model.encode_document(batch, batch_size=args.batch_size))
    ours_fp32 = MultimodalEmbedding(model=model, precision="fp32", batch_size=args.batch_size, device=args.device)
    fp32 = timed(lambda batch: ours_fp32.embed(batch, "image"))
    ours = MultimodalEmbedding(model=model, precision=args.precision, batch_size=args.batch_size, device=args.device)
    fast = timed(lambda batch: ours.embed(batch, "image"))
    n = len(pages)
    print(f"\n## embed: full-size ColQwen2 (Qwen2-VL-2B backbone, random weights), {n} pages of "
          f"{args.page_width}x{args.page_height} px ({tokens} tokens/page)")
    print(f"sentence-transformers encode_document (fp32): {n / st:.3f} pages/s")
    print(f"ours (fp32):                                  {n / fp32:.3f} pages/s  ({st / fp32:.2f}x)")
    label = f"ours ({ours.precision}{', a second run: auto is fp32 on this CPU' if ours.precision == 'fp32' else ''})"
    print(f"{label + ':':<46}{n / fast:.3f} pages/s  ({st / fast:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_device_args(parser)
    parser.add_argument("--sections", nargs="+", default=["store", "embed"], choices=["store", "embed"])
    parser.add_argument("--pages", type=int, default=10_000, help="store: synthetic pages")
    parser.add_argument("--tokens", type=int, default=128, help="store: token vectors per page")
    parser.add_argument("--background", type=float, default=0.25, help="store: share of shared layout tokens")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--prefetch-sweep", type=int, nargs="*", default=[64, 1024])
    parser.add_argument("--levers", choices=["all", "prefetch"], default="all",
                        help="store: every memory lever, or only the prefetch sizes")
    parser.add_argument("--embed-pages", type=int, default=2)
    parser.add_argument("--page-width", type=int, default=448, help="embed: page render width (28 px per patch)")
    parser.add_argument("--page-height", type=int, default=588)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    print(header("late", args.device, args.precision))
    print(machine_record())
    if "store" in args.sections:
        store_section(args)
    if "embed" in args.sections:
        embed_section(args)


if __name__ == "__main__":
    main()
