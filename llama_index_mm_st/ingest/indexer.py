"""``Indexer``: the ingestion job in-process, what ``mmst index`` runs and what an application or a
server calls.

    files and folders -> one walk (listing) -> read each file (a thread pool) -> per document: nodes,
    resume decision (new / unchanged / replace) -> embed and store in chunks of ``nodes_per_write``

Resumable: ids are stable and the resume rule skips what is stored unchanged; nodes are embedded and
stored a chunk at a time, so an interruption loses at most one chunk. The model is recorded with the
collection (``manifest``) when the first point is written, so a run that writes nothing records nothing.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, List, Optional, Sequence, Union

from ..errors import SchemaMismatchError
from ..images import default_workers
from ..inputs import NodeParts
from ..readers import ImageReader
from .listing import Listing, list_inputs
from .manifest import check_model, read_manifest, write_manifest
from .nodes import IngestPlan, plan_document
from .progress import NoProgress, Progress
from .read import Readers, read_file, readers_for
from .resume import StoredDocuments
from .summary import IndexSummary, empty_summary

if TYPE_CHECKING:
    from ..embedding import MultimodalEmbedding
    from ..store import MultimodalQdrantStore

NODES_PER_WRITE = 64
"""Nodes embedded and stored together: a kill loses at most this many nodes' work, and a chunk is
still large enough to fill the model's batches."""

Pending = tuple[NodeParts, Optional[str]]
"""A node to embed and the resume action of its document ("new" or "replace")."""


def new_index_vectors(embedding: Any) -> list[str]:
    """The dense vectors a new index gets: text and each other modality the model embeds (each named
    vector costs memory and disk for every point, held or not)."""
    return [m for m in ("text", "image", "audio", "video") if m == "text" or embedding.supports(m)]


def prepare_store(store: "MultimodalQdrantStore", embedding: "MultimodalEmbedding", model_name: str) -> None:
    """Check the store against the model (the recorded model, the dimension, single vectors or
    multivectors) and make its collection if it has none, with the model's dense vectors."""
    manifest = read_manifest(store)
    check_model(manifest, model_name)
    if manifest is not None and manifest.dim != embedding.dimension:
        raise SchemaMismatchError(f"this index holds {manifest.dim}-dimensional vectors; the model gives "
                                  f"{embedding.dimension}")
    store.ensure_collection(embedding.dimension, dense_vectors=new_index_vectors(embedding),
                            late_interaction=embedding.late_interaction)


class Indexer:
    """Index files and folders (images, PDFs, text, audio, video) into a store with an embedding.

    ``Indexer(store, embedding).index(["photos/", "report.pdf"])`` returns the ``IndexSummary`` that
    ``mmst index`` prints (``summary.format_summary``). A file that can't be read, a page that can't be
    rendered or an image that can't be decoded is listed in ``summary.skipped`` with the reason; the
    rest go through. Files of a kind the model can't read are counted (``summary.unreadable``);
    videos go in as sampled frames when the model reads images but not video.
    """

    def __init__(self, store: "MultimodalQdrantStore", embedding: "MultimodalEmbedding", *,
                 reader: Optional[ImageReader] = None, model_name: Optional[str] = None,
                 nodes_per_write: Optional[int] = None, progress: Optional[Progress] = None,
                 read_workers: Optional[int] = None) -> None:
        if nodes_per_write is not None and nodes_per_write < 1:
            raise ValueError(f"nodes_per_write must be at least 1, got {nodes_per_write}")
        if read_workers is not None and read_workers < 1:
            raise ValueError(f"read_workers must be at least 1, got {read_workers}")
        self.store, self.embedding = store, embedding
        self.reader = reader or ImageReader()
        self.model_name = model_name or embedding.model_name
        self.nodes_per_write = nodes_per_write or NODES_PER_WRITE
        self.progress = progress or NoProgress()
        self.read_workers = read_workers or default_workers()
        self.plan = IngestPlan.for_model(embedding)

    def index(self, paths: Union[str, Sequence[str]]) -> IndexSummary:
        """Index ``paths`` (files or folders); returns what happened. Re-running it resumes: unchanged
        files are skipped and changed ones replaced."""
        paths = [paths] if isinstance(paths, str) else [str(p) for p in paths]
        listing = list_inputs(paths, self.reader)
        prepare_store(self.store, self.embedding, self.model_name)
        summary = empty_summary(listing, self.plan.model_reads, self.plan.frame_every_s)
        pending = self._read(listing, readers_for(self.reader), summary)
        self._embed_and_store(pending, summary)
        summary.total = dict(self.store.count_by_modality())
        summary.settle()
        return summary

    async def aindex(self, paths: Union[str, Sequence[str]]) -> IndexSummary:
        """``index`` in a worker thread (reading, the model and the store are all blocking work)."""
        return await asyncio.to_thread(self.index, paths)

    def _read(self, listing: Listing, readers: Readers, summary: IndexSummary) -> List[Pending]:
        """Read every file (in threads, results in listing order), decide each document; a replaced
        document's old points are deleted here, before any of its new nodes is written."""
        stored = StoredDocuments.of_files(self.store, [str(item.path) for item in listing.files])
        splitter = self.plan.splitter()
        pending: List[Pending] = []
        with self.progress.stage("Reading", len(listing.files), "file") as stage, \
                ThreadPoolExecutor(self.read_workers, thread_name_prefix="mmst-ingest") as pool:
            for read in pool.map(lambda item: read_file(item, readers), listing.files):
                stage.update(1)
                summary.skipped += read.failures
                for document in read.documents:
                    work = plan_document(document, self.plan, stored, splitter)
                    summary.record(work)
                    if work.status != "indexed" or work.action == "unchanged":
                        continue
                    if work.action == "replace":
                        self.store.delete(work.document_id)
                        stored.forget(work.document_id)
                    pending += [(parts, work.action) for parts in work.nodes]
        return pending

    def _embed_and_store(self, pending: Sequence[Pending], summary: IndexSummary) -> None:
        if not pending:
            return
        recorded = False
        with self.progress.stage("Embedding", len(pending), "node") as stage:
            for start in range(0, len(pending), self.nodes_per_write):
                chunk = pending[start : start + self.nodes_per_write]
                kept, failures = self.embedding.embed_nodes([parts for parts, _ in chunk], on_error="skip")
                summary.skipped += [(f.item, str(getattr(f.error, "reason", None) or f.error)) for f in failures]
                if kept:
                    if not recorded:  # the model is recorded when its first point is written
                        write_manifest(self.store, self.model_name, self.embedding.dimension)
                        recorded = True
                    written = {id(node) for node in kept}
                    parts = [(p, action) for p, action in chunk if id(p.node) in written]
                    self.store.add_parts([p for p, _ in parts])
                    summary.written += len(parts)
                    summary.added.update(p.modality for p, action in parts if action == "new")
                stage.update(len(chunk))
