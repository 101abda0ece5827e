"""``ray_index``: the ``mmst index`` job on Ray Data, streaming, resumable, with the same ids.

    listing (driver) -> read + decode (CPU tasks) -> embed (actor pool, one model each)
                     -> write: the driver (embedded store) or the actors (Qdrant server)

Results stream: the driver handles each block as it arrives and never gathers the dataset.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal, Optional, Sequence

from tqdm.auto import tqdm

from ..embedding import MultimodalEmbedding
from ..readers import ImageReader
from ..cli.index_job import IndexSummary
from ..readers.cache import default_cache_dir
from ..store import MultimodalQdrantStore
from ..store.backends.choose import API_KEY_ENV
from ._ray import ensure_ray, require_ray
from .embed import EmbedWorker, StoreSpec, unpack_node
from .listing import list_files
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
              options: RayOptions = RayOptions(), reader: Optional[ImageReader] = None) -> IndexSummary:
    """Index ``paths`` into ``store`` on Ray, as ``mmst index`` would; returns what happened.

    The store must already have its collection (open it with ``dim=embedding.dimension``) when the
    actors write. Ray is started locally, or joined at ``RAY_ADDRESS``, unless it is already up.
    """
    ray = require_ray()
    reader = reader or ImageReader()
    listing = list_files(list(paths), reader)
    summary = IndexSummary(skipped=list(listing.skipped), not_followed=list(listing.not_followed),
                           ignored=Counter(listing.ignored_types))
    actors_write = options.write == "actors" or (options.write == "auto" and store.url is not None)
    if actors_write and store.url is None:
        raise ValueError("actors write only to a Qdrant server (a store opened with url=)")
    if listing.rows:
        ensure_ray()
        spec = StoreSpec(store.collection_name, store.url, os.environ.get(API_KEY_ENV)) if actors_write else None
        counts = ServerCounts(spec) if spec is not None else SnapshotCounts(store)
        _run(ray, listing.rows, store, embedding, options, spec, counts, read_config(reader, embedding), summary)
    summary.settle()
    summary.total = store.count_by_modality()
    return summary


def read_config(reader: ImageReader, embedding: MultimodalEmbedding) -> ReadConfig:
    """The reader, and the decoding the embedding itself would do (limits, JPEG draft size), so the
    pixels decoded in a task are the pixels ``mmst index`` feeds the model."""
    return ReadConfig(reader, str(reader.cache_dir or default_cache_dir()), embedding.decode_options,
                      embedding.fetch_options)


def _cpu_threads(actors: int) -> int:
    """Model threads of a CPU actor. Ray limits a worker to its reserved CPUs (one), but the actor
    is the bottleneck and decode tasks are light, so it gets its share of the cores, as the model
    does in ``mmst index``."""
    return max(1, (os.cpu_count() or 1) // actors)


def _run(ray: Any, rows: list[dict[str, Any]], store: MultimodalQdrantStore, embedding: MultimodalEmbedding,
         options: RayOptions, spec: Optional[StoreSpec], counts: Any, config: ReadConfig,
         summary: IndexSummary) -> None:
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
    dataset = dataset.map_batches(
        EmbedWorker, compute=ray.data.ActorPoolStrategy(size=options.actors), batch_size=options.rows_per_actor_call,
        batch_format="numpy", num_gpus=gpus, num_cpus=options.cpus_per_actor,
        fn_constructor_kwargs={"embedding": embedding, "store": spec,
                               "torch_threads": None if gpus else options.torch_threads or _cpu_threads(options.actors)},
    )
    deleted: set[str] = set()
    failures: list[tuple[str, str]] = []
    with tqdm(desc="Indexing", unit="node", disable=not options.progress) as bar:
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            nodes = []
            for r in rows_of(batch):
                if spec is None and r["action"] == "replace" and r["doc_id"] not in deleted:
                    store.delete(str(r["doc_id"]))  # before any of its new nodes: they may come in any batch
                    deleted.add(str(r["doc_id"]))
                if r["kind"] == "doc":
                    summary.note(str(r["item"]), r["action"])
                elif r["kind"] == "failure":
                    failures.append((str(r["item"]), str(r["reason"])))
                else:
                    summary.added[str(r["modality"])] += 1
                    if spec is None:
                        nodes.append(unpack_node(r["node"]))
            if nodes:
                store.add(nodes)
            bar.update(int((batch["kind"] != "doc").sum()))
    summary.skipped += sorted(failures)
    logger.debug("Ray Data stats:\n%s", dataset.stats())
