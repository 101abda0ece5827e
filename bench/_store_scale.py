"""The store at scale, measured on Qdrant Edge: where a write's time goes, how close a query gets to
the engine, what batching concurrent queries gains, and what each storage option costs in recall,
memory and disk. Used by ``bench/store.py``; every ratio prints both of its sides.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

DIM = 512
RECALL_OPTIONS: dict[str, dict[str, Any]] = {
    "default (float32, RAM)": {},
    "float16": {"vector_datatype": "float16"},
    "int8": {"quantization": "int8"},
    "int8, originals on disk": {"quantization": "int8", "on_disk": True},
    "int8, x3 oversampling": {"quantization": "int8", "oversampling": 3.0},
    "int8, hnsw_ef=128": {"quantization": "int8", "hnsw_ef": 128},
    "default, hnsw_ef=128": {"hnsw_ef": 128},
    "binary (rescored, x4 oversampling)": {"quantization": "binary"},
    "binary, no rescoring": {"quantization": "binary", "rescore": False, "oversampling": 1.0},
}


SCALE_OPTIONS = {name: RECALL_OPTIONS[name] for name in ("default (float32, RAM)", "int8, originals on disk")}
# The benchmark's nodes are text and images: a store made for them alone leaves out the audio and video
# vectors, each of which keeps a slot (and, quantized, a copy in RAM) for every point.
SCALE_OPTIONS |= {f"{name}, text+image vectors": {**options, "dense_vectors": ["text", "image"]}
                  for name, options in list(SCALE_OPTIONS.items())}


def disk_bytes(path: str) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def rss_mb() -> float:
    """Peak resident set of this process so far (Linux: ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(path: str, nodes: list[Any], options: dict[str, Any]) -> tuple[Any, float, float]:
    """A store at ``path`` holding ``nodes``, optimized; with the add and optimize times."""
    from llama_index_mm_st.store import MultimodalQdrantStore

    store = MultimodalQdrantStore(path=path, show_progress=False, **options)
    start = time.perf_counter()
    store.add(nodes)
    add_s = time.perf_counter() - start
    start = time.perf_counter()
    store.optimize()
    return store, add_s, time.perf_counter() - start


def percentiles(times_ms: list[float]) -> tuple[float, float]:
    times_ms = sorted(times_ms)
    return statistics.median(times_ms), times_ms[min(len(times_ms) - 1, int(round(0.95 * (len(times_ms) - 1))))]


# ------------------------------------------------------------------ writes: the per-point split


def write_split(nodes: list[Any], rounds: int = 3) -> None:
    """Per point: plan (node -> PointSpec), engine point conversion, engine update; against the
    engine's own upsert of the same vectors with an id-only payload (the target's yardstick) and with
    the very payloads the store writes, built beforehand (the engine's own ceiling for them), and
    ``store.add`` end to end.
    Every side runs once per round, interleaved, into a fresh store; the best round of each is kept."""
    import qdrant_edge as q

    from llama_index_mm_st.inputs import read_node
    from llama_index_mm_st.store.backends.edge import _INDEX_PARAMS as EDGE_INDEX_PARAMS
    from llama_index_mm_st.store import MultimodalQdrantStore

    n = len(nodes)
    best: dict[str, float] = {}

    def keep(name: str, seconds: float) -> None:
        best[name] = min(best.get(name, float("inf")), seconds)

    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="mmst-split-") as tmp:
            store = MultimodalQdrantStore(path=tmp, collection_name="split", dim=DIM, show_progress=False)
            backend = store._collection.backend  # the split times the engine's own steps, under the store
            start = time.perf_counter()
            specs = store.plan_points(nodes)
            keep("plan", time.perf_counter() - start)
            start = time.perf_counter()
            points = [backend._engine_point(spec) for spec in specs]
            keep("convert", time.perf_counter() - start)
            start = time.perf_counter()
            for i in range(0, n, store.batch_size):
                backend._write(points[i : i + store.batch_size])
            keep("write", time.perf_counter() - start)
            config = backend._config(store.schema)
            store.close()
        with tempfile.TemporaryDirectory(prefix="mmst-add-") as tmp:
            store = MultimodalQdrantStore(path=tmp, collection_name="add", dim=DIM, show_progress=False)
            start = time.perf_counter()
            store.add(nodes)
            keep("add", time.perf_counter() - start)
            indexes = store.indexed_keys  # the store's own keys and the metadata keys it indexed on sight
            store.close()
        parts = [read_node(node) for node in nodes]  # the ingestion job's reading, made before (it is made for embedding)
        with tempfile.TemporaryDirectory(prefix="mmst-add-parts-") as tmp:
            store = MultimodalQdrantStore(path=tmp, collection_name="add", dim=DIM, show_progress=False)
            start = time.perf_counter()
            store.add_parts(parts)
            keep("add_parts", time.perf_counter() - start)
            store.close()
        sides = (("raw", lambda spec: {}, {}), ("full", lambda spec: spec.payload, {}),
                 ("indexed", lambda spec: spec.payload, indexes))
        for side, payload_of, side_indexes in sides:
            with tempfile.TemporaryDirectory(prefix="mmst-raw-") as tmp:
                shard = q.EdgeShard.create(tmp, config)
                for key, kind in side_indexes.items():  # the same payload indexes the store keeps
                    shard.update(q.UpdateOperation.create_field_index(key, EDGE_INDEX_PARAMS[kind](enable_hnsw=False)))
                vectors = [{name: list(vec) for name, vec in spec.dense.items()} for spec in specs]
                for spec, vec in zip(specs, vectors):  # the same vectors: the dense ones and the BM25 one
                    if spec.sparse is not None:
                        vec["bm25"] = q.SparseVector(list(spec.sparse.indices), list(spec.sparse.values))
                payloads = [payload_of(spec) for spec in specs]
                start = time.perf_counter()
                raw = [q.Point(spec.id, vec, payload) for spec, vec, payload in zip(specs, vectors, payloads)]
                convert_s = time.perf_counter() - start
                start = time.perf_counter()
                for i in range(0, n, 512):
                    shard.update(q.UpdateOperation.upsert_points(raw[i : i + 512]))
                write_s = time.perf_counter() - start
                keep(side, convert_s + write_s)
                keep(f"{side} convert", convert_s)
                keep(f"{side} write", write_s)
                shard.close()
    us = 1e6 / n
    print(f"\n-- write path, {n:,} points, per point (best of {rounds} interleaved rounds) --")
    print(f"plan (node -> PointSpec)          {best['plan'] * us:7.1f} us")
    print(f"engine point conversion           {best['convert'] * us:7.1f} us")
    print(f"engine update                     {best['write'] * us:7.1f} us")
    print(f"store.add end to end              {best['add'] * us:7.1f} us  = {n / best['add']:8,.0f} pts/s")
    print(f"store.add_parts (nodes read once) {best['add_parts'] * us:7.1f} us  = {n / best['add_parts']:8,.0f} pts/s"
          "  (the ingestion job's write: it read each node already, for the embedding)")
    print(f"engine alone, id-only payload     {best['raw'] * us:7.1f} us  = {n / best['raw']:8,.0f} pts/s"
          f"  (point objects {best['raw convert'] * us:.1f} us + update {best['raw write'] * us:.1f} us)")
    print(f"engine alone, the store's payloads {best['full'] * us:7.1f} us  = {n / best['full']:8,.0f} pts/s"
          f"  (point objects {best['full convert'] * us:.1f} us + update {best['full write'] * us:.1f} us;"
          " the payloads store.add writes, built beforehand)")
    print(f"engine alone, payloads + indexes  {best['indexed'] * us:7.1f} us  = {n / best['indexed']:8,.0f} pts/s"
          f"  (point objects {best['indexed convert'] * us:.1f} us + update {best['indexed write'] * us:.1f} us;"
          f" the same payloads into a shard with the store's payload indexes: {', '.join(sorted(indexes))})")
    print(f"store.add / engine id-only upsert: {best['raw'] / best['add']:.2f}x the engine's throughput (target >= 0.7)")
    print(f"  the engine's own ceiling for these payloads: {best['raw'] / best['full']:.2f}x (engine with the store's "
          "payloads / engine id-only);")
    print(f"  store.add / engine with the same payloads: {best['full'] / best['add']:.2f}x (what the store's own "
          "planning costs on top; target >= 0.8)")
    print(f"  store.add_parts / engine with the same payloads: {best['full'] / best['add_parts']:.2f}x")
    print(f"  store.add / engine with the same payloads and indexes: {best['indexed'] / best['add']:.2f}x; "
          f"store.add_parts: {best['indexed'] / best['add_parts']:.2f}x")


# ------------------------------------------------------------------ queries: store vs engine, batching


def query_overhead(store: Any, queries: list[Any], repeats: int = 3) -> None:
    """Hybrid+filter p50 through ``store.query`` against the engine's own time inside those same calls
    (the backend's engine call is timed from within, so both sides see the same request and the same
    cache state); and, as a second engine figure, the same prepared request run again right after
    (warm caches: what the engine costs at best)."""
    backend = store._collection.backend
    requests = [backend._request(store.plan(q)) for q in queries]
    engine_run = backend._run
    spent: list[float] = []

    def timed_run(request: Any) -> list[Any]:
        start = time.perf_counter()
        try:
            return engine_run(request)
        finally:
            spent.append((time.perf_counter() - start) * 1000)

    through, inside, rerun = [], [], []
    backend._run = timed_run  # an instance attribute: this store only, removed below
    try:
        for _ in range(repeats):  # interleaved, so every side sees the same machine load
            for query, request in zip(queries, requests):
                start = time.perf_counter()
                store.query(query)
                through.append((time.perf_counter() - start) * 1000)
                inside.append(spent.pop())
                start = time.perf_counter()
                engine_run(request)
                rerun.append((time.perf_counter() - start) * 1000)
    finally:
        del backend._run
    (s50, s95), (e50, e95), (r50, r95) = percentiles(through), percentiles(inside), percentiles(rerun)
    overhead = statistics.median(t - e for t, e in zip(through, inside))
    print(f"\n-- hybrid + filter query, {len(through)} runs, interleaved --")
    print(f"store.query          p50 {s50:7.2f} ms  p95 {s95:7.2f} ms")
    print(f"inside the engine    p50 {e50:7.2f} ms  p95 {e95:7.2f} ms  (EdgeShard.query, timed inside those store.query calls)")
    print(f"engine, warm rerun   p50 {r50:7.2f} ms  p95 {r95:7.2f} ms  (the same prepared request again, right after)")
    print(f"store's own work per query, p50: {overhead:.3f} ms (planning, request objects, nodes rebuilt from payloads)")
    print(f"store / engine p50: {s50 / e50:.2f}x (target <= 1.2x); against the warm rerun: {s50 / r50:.2f}x")


def batching(store: Any, queries: list[Any], rounds: int = 7) -> None:
    """64 concurrent ``aquery`` calls against the same queries one after another; and the engine's
    own ``query_batch`` against its ``query`` one by one, interleaved round by round."""
    import qdrant_edge as q

    backend, shard = store._collection.backend, store.client
    requests = [backend._request(store.plan(x)) for x in queries]

    async def concurrent() -> list[Any]:
        return await asyncio.gather(*(store.aquery(x) for x in queries))

    sides: dict[str, list[float]] = {"sequential store.query": [], "concurrent aquery": [],
                                     "engine one by one": [], "engine query_batch": []}
    loop = asyncio.new_event_loop()  # one loop for every round, as in a server: its worker thread stays up
    runs = {
        "sequential store.query": lambda: [store.query(x) for x in queries],
        "concurrent aquery": lambda: loop.run_until_complete(concurrent()),
        "engine one by one": lambda: [shard.query(r) for r in requests],
        "engine query_batch": lambda: shard.query_batch(q.QueryBatchRequest(requests)),
    }
    for fn in runs.values():
        fn()  # warm up
    for _ in range(rounds):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            sides[name].append(time.perf_counter() - start)
    loop.close()
    med = {name: statistics.median(times) * 1000 for name, times in sides.items()}
    n = len(queries)
    print(f"\n-- {n} queries (hybrid + filter), median of {rounds} interleaved rounds --")
    for name, ms in med.items():
        print(f"{name:<24}{ms:9.1f} ms  {n / ms * 1000:8.0f} queries/s")
    print(f"store: concurrent aquery vs sequential query: {med['sequential store.query'] / med['concurrent aquery']:.2f}x"
          f" throughput (target >= 1.3x)")
    print(f"engine: query_batch vs query one by one:      {med['engine one by one'] / med['engine query_batch']:.2f}x")


# ------------------------------------------------------------------ storage options: recall, size


def clustered(n: int, seed: int, latent: int = 32) -> np.ndarray:
    """Unit vectors with a low intrinsic dimension, like real embeddings (whose neighbourhoods live
    in a few dozen directions): a random 32-d latent mapped to 512-d, plus a little isotropic noise.
    Uniform random 512-d vectors have no near neighbours at all, which no ANN index is built for
    (HNSW recall@10 there is about 0.7 at any setting)."""
    basis = np.random.default_rng(1234).normal(size=(latent, DIM)).astype(np.float32)  # shared by data and queries
    rng = np.random.default_rng(seed)
    vecs = rng.normal(size=(n, latent)).astype(np.float32) @ basis
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    vecs += 0.15 / np.sqrt(DIM) * rng.normal(size=(n, DIM)).astype(np.float32)
    return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def recall_table(size: int, option_names: list[str], queries: int = 200, k: int = 10) -> None:
    """recall@k of the store's dense search against exact (numpy) search, per storage option, with
    build and optimize time, query p50/p95, disk size and this process's peak RSS."""
    from llama_index.core.schema import TextNode
    from llama_index.core.vector_stores.types import VectorStoreQuery

    data = clustered(size, seed=7)
    probe = clustered(queries, seed=8)
    exact = np.argsort(-(probe @ data.T), axis=1)[:, :k]
    nodes = [TextNode(id_=f"n{i}", text="w", embedding=row) for i, row in enumerate(data.tolist())]
    ids = {f"n{i}": i for i in range(size)}
    print(f"\n-- storage options at {size:,} points ({DIM}-d, 32-d latent), recall@{k} vs exact search, {queries} queries --")
    print(f"{'option':<38}{'recall':>8}{'p50 ms':>9}{'p95 ms':>9}{'add s':>8}{'optimize s':>11}{'disk MB':>9}{'peak RSS MB':>12}")
    for name in option_names:
        with tempfile.TemporaryDirectory(prefix="mmst-recall-") as tmp:
            store, add_s, optimize_s = build(tmp, nodes, RECALL_OPTIONS[name])
            hits, times = 0, []
            for row, truth in zip(probe.tolist(), exact):
                start = time.perf_counter()
                found = store.query(VectorStoreQuery(query_embedding=row, similarity_top_k=k)).ids
                times.append((time.perf_counter() - start) * 1000)
                hits += len({ids[i] for i in found} & set(truth.tolist()))
            p50, p95 = percentiles(times)
            size_mb = disk_bytes(tmp) / 1e6
            store.close()
        print(f"{name:<38}{hits / (k * queries):>8.3f}{p50:>9.2f}{p95:>9.2f}{add_s:>8.1f}{optimize_s:>11.1f}"
              f"{size_mb:>9.0f}{rss_mb():>12.0f}")
    print("(peak RSS is the process's high-water mark so far: it only grows down the table)")


def _build_phase(size: int, chunk: int, options: dict[str, Any], path: str) -> dict[str, float]:
    """In a fresh process: stream ``size`` nodes into a store at ``path`` (``chunk`` at a time, so the
    nodes never sit in memory together), optimize, close. Returns the times and the process's peak RSS."""
    import store as B  # bench/store.py, for the node generator

    from llama_index_mm_st.store import MultimodalQdrantStore

    store = MultimodalQdrantStore(path=path, show_progress=False, **options)
    add_s = 0.0
    for first in range(0, size, chunk):
        nodes = B.make_nodes(min(chunk, size - first), seed=first, start=first)
        begin = time.perf_counter()
        store.add(nodes)
        add_s += time.perf_counter() - begin
        del nodes
    begin = time.perf_counter()
    store.optimize()
    optimize_s = time.perf_counter() - begin
    store.close()
    return {"add_s": add_s, "optimize_s": optimize_s, "peak_rss_mb": rss_mb()}


def _resident_mb() -> dict[str, float]:
    """This process's resident memory now, in MB: all of it (VmRSS), and its two parts: anonymous
    memory (RssAnon: the heap, what the process truly holds) and mapped file pages (RssFile: the
    engine's memory-mapped segments as far as they were read, which the kernel can evict and re-read)."""
    fields = {"VmRSS:": "rss_mb", "RssAnon:": "anon_mb", "RssFile:": "file_mb"}
    found = {name: float("nan") for name in fields.values()}
    for line in Path("/proc/self/status").read_text().splitlines():
        key = line.split(":")[0] + ":"
        if key in fields:
            found[fields[key]] = int(line.split()[1]) / 1024
    return found


def _query_phase(path: str, query_count: int, memory_cap_mb: Optional[int] = None,
                 cgroup: str = "") -> dict[str, Any]:
    """In a fresh process: open the store at ``path`` and time hybrid+filter queries. The resident
    memory is read after the queries, so it is what the opened store needs to serve them. With
    ``memory_cap_mb`` the process first moves into the memory cgroup ``cgroup`` of that size
    (``_memcap``), so the store opens and serves within it."""
    import _memcap
    import store as B

    from llama_index_mm_st.store import MultimodalQdrantStore

    group = _memcap.enter(memory_cap_mb, cgroup) if memory_cap_mb else None
    before = _resident_mb()["rss_mb"]  # the interpreter and its imports, before the store opens
    begin = time.perf_counter()
    store = MultimodalQdrantStore(path=path, show_progress=False)
    open_s = time.perf_counter() - begin
    queries = B.make_queries(query_count)
    for x in queries[:10]:
        store.query(x)
    times = []
    for x in queries[10:]:
        begin = time.perf_counter()
        store.query(x)
        times.append((time.perf_counter() - begin) * 1000)
    p50, p95 = percentiles(times)
    resident = _resident_mb()
    capped = {} if group is None else {"cap": _memcap.stats(group)}
    store.close()
    return {"open_s": open_s, "p50": p50, "p95": p95, **resident, "before_mb": before, "peak_rss_mb": rss_mb(),
            **capped}


def _in_fresh_process(fn: Any, *args: Any) -> Any:
    """Run ``fn(*args)`` in a new interpreter, so its memory figures are its own."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def serve(path: str, query_count: int, label: str, memory_caps_mb: Sequence[int] = ()) -> None:
    """Serve the store at ``path`` from a fresh process: open time, p50/p95 and resident memory;
    then once more per memory cap, inside a cgroup of that size."""
    import _memcap

    served = _in_fresh_process(_query_phase, path, query_count)
    print(f"{label:<28} open {served['open_s']:.1f} s, p50 {served['p50']:.2f} ms, p95 {served['p95']:.2f} ms, "
          f"serving RSS {served['rss_mb']:,.0f} MB (heap {served['anon_mb']:,.0f} MB + mapped files "
          f"{served['file_mb']:,.0f} MB; {served['before_mb']:,.0f} MB of it held before the store opened; "
          f"peak {served['peak_rss_mb']:,.0f} MB)", flush=True)
    for cap in memory_caps_mb:
        name = f"mmst-bench-{os.getpid()}-{cap}"
        try:
            capped = _in_fresh_process(_query_phase, path, query_count, cap, name)
        except Exception as exc:  # noqa: BLE001 - an OOM kill under the cap is a result to print
            print(f"{'':<28} under a {cap:,} MB memory cap: failed ({type(exc).__name__}: {exc})", flush=True)
            continue
        finally:
            _memcap.remove(name)
        c = capped["cap"]
        print(f"{'':<28} under a {cap:,} MB memory cap (cgroup; the store opened and served inside it): open "
              f"{capped['open_s']:.1f} s, p50 {capped['p50']:.2f} ms, p95 {capped['p95']:.2f} ms, charged to the cap "
              f"{c['now_mb']:,.0f} MB after the queries (peak {c['peak_mb']:,.0f} MB, cap reached {c['cap_hits']:,} "
              f"times), RSS {capped['rss_mb']:,.0f} MB (heap {capped['anon_mb']:,.0f} MB)", flush=True)


def scale_run(size: int, query_count: int, options: dict[str, Any], label: str,
              directory: Optional[str] = None, chunk: int = 10_000, keep: bool = False,
              memory_caps_mb: Sequence[int] = ()) -> None:
    """One large store, built by streaming nodes in one process and queried from another: build and
    optimize time with the build's peak RSS, the disk size, then ``serve``. With ``keep`` the store
    stays in ``directory`` (``--serve-only`` serves it again)."""
    if keep:
        path = str(Path(directory or ".") / ("mmst-scale-" + "".join(c if c.isalnum() else "-" for c in label)))
        Path(path).mkdir(parents=True, exist_ok=False)
        holder: Any = contextlib.nullcontext(path)
    else:
        holder = tempfile.TemporaryDirectory(prefix="mmst-scale-", dir=directory)
    with holder as tmp:
        built = _in_fresh_process(_build_phase, size, chunk, options, tmp)
        size_mb = disk_bytes(tmp) / 1e6
        print(f"{label:<28} add {built['add_s']:7.1f} s ({size / built['add_s']:,.0f} pts/s), "
              f"optimize {built['optimize_s']:7.1f} s, build peak RSS {built['peak_rss_mb']:,.0f} MB, "
              f"disk {size_mb:,.0f} MB" + (f", kept at {tmp}" if keep else ""), flush=True)
        serve(tmp, query_count, "", memory_caps_mb)
