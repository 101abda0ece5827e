"""``ray_index``: the ingestion job on Ray Data, streaming, resumable, with the same ids and summary.

    listing (driver, ``ingest.list_inputs``) -> read + per-document step + decode (CPU tasks)
        -> embed (actor pool, one model each) -> write: the driver (embedded store) or the actors (server)

Results stream: the driver handles each block as it arrives and never gathers the dataset.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
from dataclasses import dataclass
from typing import Any, Literal, Optional, Sequence

from tqdm.auto import tqdm

from ..embedding import MultimodalEmbedding
from ..ingest import (
    IndexSummary, IngestPlan, Manifest, StoredDocuments, list_inputs, prepare_store, readers_for, write_manifest,
)
from ..ingest.read import job_cache_root
from ..ingest.summary import empty_summary
from ..inputs import read_node
from ..readers import ImageReader
from ..store import MultimodalQdrantStore
from ._ray import ensure_ray, require_ray
from .embed import EmbedWorker, StoreSpec, unpack_node
from .read import ReadConfig, read_batch, rows_of
from .resume import ServerCounts, SnapshotCounts

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RayOptions:
    """The pool and the batch sizes. ``gpus_per_actor=None``: 1 when the cluster has GPUs, else 0."""

    actors: int = 1
    gpus_per_actor: Optional[float] = None
    cpus_per_actor: float = 1.0
    files_per_task: int = 16
    rows_per_actor_call: int = 64
    files_per_block: int = 64
    torch_threads: Optional[int] = None
    """Threads per CPU actor; None: the machine's cores / ``actors`` (Ray would give it one)."""
    read_task_memory: int = 1024 * 1024 * 1024
    """Bytes each read task reserves: its worker (the package's imports, ~0.6 GiB) and a batch of pixels."""
    write: Literal["auto", "driver", "actors"] = "auto"
    progress: bool = False

    def __post_init__(self) -> None:
        if self.actors < 1:
            raise ValueError(f"actors must be at least 1, got {self.actors}")
        if self.gpus_per_actor is not None and self.gpus_per_actor < 0:
            raise ValueError(f"gpus_per_actor must be >= 0, got {self.gpus_per_actor}")
        for name in ("files_per_task", "rows_per_actor_call", "files_per_block"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.write not in ("auto", "driver", "actors"):
            raise ValueError(f"write must be 'auto', 'driver' or 'actors', got {self.write!r}")


def ray_index(paths: Sequence[str], store: MultimodalQdrantStore, embedding: MultimodalEmbedding,
              options: RayOptions = RayOptions(), reader: Optional[ImageReader] = None,
              model_name: Optional[str] = None) -> IndexSummary:
    """Index ``paths`` into ``store`` on Ray, as ``ingest.Indexer`` (``mmst index``) would; returns the
    same summary. The collection is made with the model's vectors when it has none. Ray is started
    locally, or joined at ``RAY_ADDRESS``, unless it is already up."""
    ray = require_ray()
    reader = reader or ImageReader()
    model = model_name or embedding.model_name
    listing = list_inputs([str(p) for p in paths], reader)
    prepare_store(store, embedding, model)
    plan = IngestPlan.for_model(embedding)
    summary = empty_summary(listing, plan.model_reads, plan.frame_every_s)
    actors_write = options.write == "actors" or (options.write == "auto" and store.url is not None)
    if actors_write and store.url is None:
        raise ValueError("actors write only to a Qdrant server (a store opened with url=)")
    if listing.files:
        ensure_ray()
        spec = StoreSpec.of(store) if actors_write else None
        counts = ServerCounts(spec) if spec is not None else SnapshotCounts(
            StoredDocuments.of_files(store, [str(item.path) for item in listing.files]))
        config = ReadConfig(readers_for(reader, job_cache_root(reader)), plan, embedding.decode_options,
                            embedding.fetch_options)
        job = _Job(ray, store, embedding, options, spec, Manifest(model, embedding.dimension), summary)
        job.run([{"file": pickle.dumps(item)} for item in listing.files], config, counts)
    summary.total = dict(store.count_by_modality())
    summary.settle()
    return summary


def _cpu_threads(actors: int) -> int:
    """Model threads of a CPU actor. Ray limits a worker to its reserved CPUs (one), but the actor
    is the bottleneck and decode tasks are light, so it gets its share of the cores, as the model
    does in ``mmst index``."""
    return max(1, (os.cpu_count() or 1) // actors)


@dataclass
class _Job:
    ray: Any
    store: MultimodalQdrantStore
    embedding: MultimodalEmbedding
    options: RayOptions
    spec: Optional[StoreSpec]
    manifest: Manifest
    summary: IndexSummary
    recorded: bool = False

    def run(self, rows: list[dict[str, Any]], config: ReadConfig, counts: Any) -> None:
        chatty = logging.getLogger("ray.data")
        level = chatty.level
        if not self.options.progress:  # Ray Data narrates every dataset on stderr; the job prints its summary
            chatty.setLevel(logging.ERROR)
        try:
            self._run(rows, config, counts)
        finally:
            chatty.setLevel(level)

    def _run(self, rows: list[dict[str, Any]], config: ReadConfig, counts: Any) -> None:
        ray, options = self.ray, self.options
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = options.progress
        gpus = options.gpus_per_actor
        if gpus is None:
            gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        dataset = ray.data.from_items(rows, override_num_blocks=max(1, math.ceil(len(rows) / options.files_per_block)))
        dataset = dataset.map_batches(
            read_batch, batch_size=options.files_per_task, batch_format="numpy",
            fn_kwargs={"config": config, "counts": counts}, num_cpus=1,
            # Ray Data fuses a task stage into the next actor stage when their resource requests are
            # equal (CPU-only runs), which would decode inside the actors, in series with the model.
            # Read tasks reserve memory for their decoded pixels, actors don't: the stages stay apart.
            memory=options.read_task_memory,
        )
        threads = None if gpus else options.torch_threads or _cpu_threads(options.actors)
        dataset = dataset.map_batches(
            EmbedWorker, compute=ray.data.ActorPoolStrategy(size=options.actors),
            batch_size=options.rows_per_actor_call, batch_format="numpy", num_gpus=gpus, num_cpus=options.cpus_per_actor,
            fn_constructor_kwargs={"embedding": self.embedding, "store": self.spec, "torch_threads": threads,
                                   "manifest": self.manifest if self.spec is not None else None},
        )
        deleted: set[str] = set()
        with tqdm(desc="Indexing", unit="node", disable=not options.progress) as bar:
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                self._take(list(rows_of(batch)), deleted)
                bar.update(int((batch["kind"] == "node").sum()))
        logger.debug("Ray Data stats:\n%s", dataset.stats())

    def _take(self, rows: list[dict[str, Any]], deleted: set[str]) -> None:
        """One block of results: count documents and failures; on the driver-write path, delete each
        replaced document's old points before any of its new nodes (they may come in any block) and
        write the nodes, recording the model first."""
        summary, nodes = self.summary, []
        for r in rows:
            if self.spec is None and r["action"] == "replace" and r["doc_id"] not in deleted:
                self.store.delete(str(r["doc_id"]))
                deleted.add(str(r["doc_id"]))
            if r["kind"] == "doc":
                summary.record(pickle.loads(r["work"]))
            elif r["kind"] == "failure":
                summary.skipped.append((str(r["item"]), str(r["reason"])))
            else:
                summary.written += 1
                if r["action"] == "new":
                    summary.added[str(r["modality"])] += 1
                if self.spec is None:
                    nodes.append(unpack_node(r["node"]))
        if nodes:
            if not self.recorded:  # the job's first points: the model is recorded first
                write_manifest(self.store, self.manifest.model, self.manifest.dim)
                self.recorded = True
            self.store.add_parts([read_node(node) for node in nodes])
