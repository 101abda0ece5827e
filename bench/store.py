"""Store benchmark: upsert points/s and filtered hybrid query latency (p50/p95).

Three stores on the same nodes (512-d, half text, half image, a few words each), in one run:
  - ``edge``:    MultimodalQdrantStore on Qdrant Edge (the embedded default), after ``optimize()``
                 (the query figures before ``optimize()`` are printed too);
  - ``ours-local``: MultimodalQdrantStore on qdrant-client local mode (``:memory:``);
  - ``llamaindex-local``: LlamaIndex's ``QdrantVectorStore(enable_hybrid=True)`` on local mode,
                 the named peer; its BM25 comes from the same ``qdrant_edge.Bm25`` (no model download).
Ratios are printed against the peer. Local-mode queries are brute force (about a second each at
100k), so they run for at most ``--local-seconds`` per store (at least 3 queries).

Sections (``--sections``): ``peers`` (the table above), ``write`` (per-point cost split and
``store.add`` against the engine's own id-only upsert), ``query`` (store p50 against the time inside
the engine), ``batch`` (64 concurrent ``aquery`` against one after another, and the engine's own
``query_batch`` gain), ``relevance`` (a hybrid query's p50 fused by relevance beside RRF, and
``store.add`` with the relevance statistics against without; ``bench/_store_relevance.py``), ``recall`` (recall@10 and p50 against the search width ``hnsw_ef`` on an easy and
a hard set, the store's own estimate beside it, what ``target_recall=0.95`` picks, and the cost of MMR
and ``max_per_document``, at ``--recall-size``; ``bench/_store_recall.py``), ``storage`` (recall@10
against exact search, size and speed per storage option, at ``--recall-size``), ``scale``
(build/optimize time, p50/p95, disk and RSS for the default and for int8 with originals on disk:
``--sizes 1000000``).

    python bench/store.py                     # 10k and 100k points
    python bench/store.py --sizes 10000       # quicker
    python bench/store.py --sizes 1000000 --sections scale
    python bench/store.py --sections recall --recall-size 100000
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import add_device_args, header  # noqa: E402

DIM = 512
WORDS = (
    "red blue green camera lens river mountain invoice error code printer cat dog bicycle engine "
    "lemon tart revenue growth server cluster shard vector image caption street night beach forest"
).split()
CATEGORIES = [f"c{i}" for i in range(10)]


@dataclass
class Result:
    name: str
    upsert_pts_s: float
    p50_ms: float
    p95_ms: float
    queries: int
    notes: list[str] = field(default_factory=list)


def make_nodes(n: int, seed: int = 0, start: int = 0) -> list[Any]:
    """``n`` nodes, half text and half image, numbered from ``start`` (the number sets the metadata)."""
    from llama_index.core.schema import ImageNode, TextNode

    rng = np.random.default_rng(seed)
    vecs = rng.normal(size=(n, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    nodes: list[Any] = []
    for i in range(start, start + n):
        words = " ".join(rng.choice(WORDS, size=int(rng.integers(3, 9))))
        meta = {"year": int(2000 + i % 25), "category": CATEGORIES[i % len(CATEGORIES)]}
        vec = vecs[i - start].tolist()
        if i % 2:
            nodes.append(ImageNode(image_path=f"/data/img/{i}.jpg", text=words, embedding=vec, metadata=meta))
        else:
            nodes.append(TextNode(text=words, embedding=vec, metadata=meta))
    return nodes


def make_queries(count: int, seed: int = 1) -> list[Any]:
    from llama_index.core.vector_stores.types import (
        FilterOperator,
        MetadataFilter,
        MetadataFilters,
        VectorStoreQuery,
        VectorStoreQueryMode,
    )

    rng = np.random.default_rng(seed)
    queries = []
    for i in range(count):
        vec = rng.normal(size=DIM)
        vec /= np.linalg.norm(vec)
        filters = MetadataFilters(
            filters=[
                MetadataFilter(key="category", value=CATEGORIES[i % len(CATEGORIES)]),
                MetadataFilter(key="year", value=2012, operator=FilterOperator.GTE),
            ]
        )
        queries.append(
            VectorStoreQuery(
                query_embedding=vec.tolist(),
                query_str=" ".join(rng.choice(WORDS, size=3)),
                similarity_top_k=10,
                mode=VectorStoreQueryMode.HYBRID,
                filters=filters,
            )
        )
    return queries


def time_upsert(store: Any, nodes: list[Any]) -> float:
    start = time.perf_counter()
    store.add(nodes)
    return len(nodes) / (time.perf_counter() - start)


def time_queries(store: Any, queries: list[Any], budget_s: float, warmup: int) -> tuple[float, float, int]:
    for q in queries[:warmup]:
        store.query(q)
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    for q in queries[warmup:]:
        start = time.perf_counter()
        result = store.query(q)
        times.append((time.perf_counter() - start) * 1000)
        if not result.nodes:
            raise RuntimeError("a benchmark query returned nothing: the filter or data is wrong")
        if len(times) >= 3 and time.perf_counter() > deadline:
            break
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    return statistics.median(times), p95, len(times)


def bench_edge(nodes: list[Any], queries: list[Any], budget_s: float) -> Result:
    from llama_index_mm_st.store import MultimodalQdrantStore

    with tempfile.TemporaryDirectory(prefix="mmst-bench-") as tmp:
        store = MultimodalQdrantStore(path=tmp, show_progress=False)
        rate = time_upsert(store, nodes)
        before50, before95, _ = time_queries(store, queries, min(budget_s, 10.0), warmup=3)
        start = time.perf_counter()
        store.optimize()
        optimize_s = time.perf_counter() - start
        p50, p95, count = time_queries(store, queries, budget_s, warmup=10)
        store.close()
    return Result(
        "edge",
        rate,
        p50,
        p95,
        count,
        [f"before optimize(): p50 {before50:.2f} ms, p95 {before95:.2f} ms", f"optimize(): {optimize_s:.1f} s"],
    )


def bench_ours_local(nodes: list[Any], queries: list[Any], budget_s: float) -> Result:
    from qdrant_client import QdrantClient

    from llama_index_mm_st.store import MultimodalQdrantStore

    store = MultimodalQdrantStore(client=QdrantClient(":memory:"), show_progress=False)
    rate = time_upsert(store, nodes)
    p50, p95, count = time_queries(store, queries, budget_s, warmup=1)
    store.close()
    return Result("ours-local", rate, p50, p95, count)


def bench_llamaindex_local(nodes: list[Any], queries: list[Any], budget_s: float) -> Optional[Result]:
    try:
        from llama_index.vector_stores.qdrant import QdrantVectorStore
    except ImportError:
        print("llama-index-vector-stores-qdrant is not installed: skipping the peer", file=sys.stderr)
        return None
    import qdrant_edge
    from qdrant_client import QdrantClient, models

    bm25 = qdrant_edge.Bm25(qdrant_edge.Bm25Config(language="english"))

    def encode(embed: Callable[[str], Any]) -> Callable[[list[str]], tuple[list[list[int]], list[list[float]]]]:
        def fn(texts: list[str]) -> tuple[list[list[int]], list[list[float]]]:
            vecs = [embed(t) for t in texts]
            return [list(v.indices) for v in vecs], [list(v.values) for v in vecs]

        return fn

    store = QdrantVectorStore(
        collection_name="peer",
        client=QdrantClient(":memory:"),
        enable_hybrid=True,
        sparse_doc_fn=encode(bm25.embed_document),
        sparse_query_fn=encode(bm25.embed_query),
        sparse_config=models.SparseVectorParams(modifier=models.Modifier.IDF),
        batch_size=512,
    )
    rate = time_upsert(store, nodes)
    p50, p95, count = time_queries(store, queries, budget_s, warmup=1)
    return Result("llamaindex-local", rate, p50, p95, count, ["one dense vector for texts and images; client-side fusion"])


def report(size: int, results: list[Result]) -> None:
    peer = next((r for r in results if r.name == "llamaindex-local"), None)
    print(f"\n== {size:,} points, {DIM}-d, half text / half image, hybrid query + metadata filter, top 10 ==")
    print(f"{'store':<18}{'upsert pts/s':>14}{'p50 ms':>10}{'p95 ms':>10}{'queries':>9}{'upsert x':>10}{'p50 x':>10}")
    for r in results:
        up_ratio = f"{r.upsert_pts_s / peer.upsert_pts_s:.2f}" if peer else "-"
        q_ratio = f"{peer.p50_ms / r.p50_ms:.1f}" if peer else "-"
        print(f"{r.name:<18}{r.upsert_pts_s:>14,.0f}{r.p50_ms:>10.2f}{r.p95_ms:>10.2f}{r.queries:>9}{up_ratio:>10}{q_ratio:>10}")
        for note in r.notes:
            print(f"{'':<18}{note}")
    if peer:
        print("(ratios vs llamaindex-local: 'upsert x' = points/s ratio, 'p50 x' = how many times faster)")


SECTIONS = ("peers", "write", "query", "batch", "relevance", "recall", "storage", "scale")
STANDALONE = {"scale", "recall", "storage"}
"""Sections that build their own data (at --recall-size or streaming): no nodes at --sizes needed."""


def edge_store(nodes: list[Any]) -> Any:
    """An optimized Edge store holding ``nodes`` (for the query and batch sections)."""
    from llama_index_mm_st.store import MultimodalQdrantStore

    store = MultimodalQdrantStore(show_progress=False)
    store.add(nodes)
    store.optimize()
    return store


def run_sections(size: int, args: argparse.Namespace) -> None:
    import _store_scale as S

    if "scale" in args.sections:  # first, and without the in-memory nodes: they would dwarf the store at 1M
        print(f"\n-- {size:,} points, hybrid + filter query (built streaming, served from a fresh process) --")
        for name in args.scale_options:
            S.scale_run(size, args.queries, S.SCALE_OPTIONS[name], name, args.tmp, keep=args.keep,
                        memory_caps_mb=args.memory_cap_mb)
        if set(args.sections) <= STANDALONE:
            return
    if set(args.sections) <= STANDALONE:
        return
    nodes = make_nodes(size)
    queries = make_queries(args.queries)
    if "peers" in args.sections:
        results: list[Result] = []
        runs = [
            ("edge", lambda: bench_edge(nodes, queries, args.edge_seconds)),
            ("ours-local", lambda: bench_ours_local(nodes, queries, args.local_seconds)),
            ("llamaindex-local", lambda: bench_llamaindex_local(nodes, queries, args.local_seconds)),
        ]
        for name, run in runs:
            if name in args.skip:
                continue
            print(f"[{size:,}] {name} ...", file=sys.stderr, flush=True)
            result = run()
            if result is not None:
                results.append(result)
            gc.collect()
        report(size, results)
    if "write" in args.sections:
        S.write_split(nodes)
    if "relevance" in args.sections:
        import _store_relevance as V

        V.add_cost(nodes)
    if "query" in args.sections or "batch" in args.sections or "relevance" in args.sections:
        store = edge_store(nodes)
        if "query" in args.sections:
            S.query_overhead(store, queries)
        if "batch" in args.sections:
            S.batching(store, queries[:64])
        if "relevance" in args.sections:
            V.query_cost(store, queries)
        store.close()
    del nodes
    gc.collect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--sections", nargs="+", default=["peers", "write", "query", "batch", "relevance"],
                        choices=SECTIONS)
    parser.add_argument("--recall-size", type=int, default=100_000, help="points for the recall and storage sections")
    parser.add_argument("--recall-sets", nargs="+", default=["easy", "hard"], choices=["easy", "hard"],
                        help="recall section: the synthetic sets")
    parser.add_argument("--recall-queries", type=int, default=200, help="recall section: held-out queries per set")
    parser.add_argument("--recall-precisions", nargs="+", default=["float32", "int8"], choices=["float32", "int8"],
                        help="recall section: float32 and/or int8 (scalar quantization)")
    parser.add_argument("--options", nargs="+", default=None, help="storage options for the storage section "
                        "(names as printed; default: all)")
    parser.add_argument("--scale-options", nargs="+", default=["default (float32, RAM)", "int8, originals on disk"],
                        help="storage options for the scale section (names as printed)")
    parser.add_argument("--tmp", default=None, help="directory for the scale section's store (needs disk space)")
    parser.add_argument("--keep", action="store_true", help="scale: keep the built stores in --tmp (for --serve-only)")
    parser.add_argument("--memory-cap-mb", type=int, nargs="*", default=[],
                        help="scale: serve again inside a memory cgroup of each size (Linux, root)")
    parser.add_argument("--serve-only", default=None, metavar="DIR",
                        help="serve an existing store (one --keep built) and exit: open time, p50/p95, memory")
    add_device_args(parser, precision=False)
    parser.add_argument("--queries", type=int, default=300, help="query pool per size")
    parser.add_argument("--edge-seconds", type=float, default=20.0, help="time budget for Edge queries")
    parser.add_argument("--local-seconds", type=float, default=15.0, help="time budget per local-mode store")
    parser.add_argument("--skip", nargs="*", default=[], choices=["edge", "ours-local", "llamaindex-local"])
    args = parser.parse_args()

    from importlib.metadata import version

    import llama_index.core

    print(header("store", args.device, None, note="Qdrant Edge runs on the CPU; the device is not used"))
    print(
        f"qdrant-edge-py {version('qdrant-edge-py')}, qdrant-client {version('qdrant-client')}, "
        f"llama-index-core {llama_index.core.__version__}"
    )
    if args.serve_only:
        import _store_scale as S

        S.serve(args.serve_only, args.queries, os.path.basename(args.serve_only.rstrip("/")), args.memory_cap_mb)
        return
    for size in args.sizes:
        run_sections(size, args)
    if "recall" in args.sections:
        import _store_recall as Q

        Q.recall_section(args.recall_size, args.recall_queries, args.recall_sets,
                         [None if p == "float32" else p for p in args.recall_precisions])
    if "storage" in args.sections:
        import _store_scale as S

        S.recall_table(args.recall_size, args.options or list(S.RECALL_OPTIONS))


if __name__ == "__main__":
    main()
