"""``Indexer``: the ingestion job in-process, what ``mmst index`` runs and what an application or a
server calls.

    files and folders -> one walk (listing) -> read each file (a thread pool) -> per document: nodes,
    resume decision (new / unchanged / replace) -> embed and store in chunks of ``nodes_per_write``

Resumable: ids are stable and the resume rule skips what is stored unchanged; nodes are embedded and
stored a chunk at a time, so an interruption loses at most one chunk. The model is recorded with the
collection (``manifest``) when the first point is written, so a run that writes nothing records nothing.

It follows the files: with ``prune=True`` the documents of files gone from the folders indexed are
deleted first (``catalog.prune``), and a changed file's documents that it no longer makes (a PDF's lost
pages) go with its old points. ``cancel()`` (from another thread: a Ctrl-C handler, a server) stops the
job at its next step; what was written stays, and a rerun resumes.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Deque, Iterator, List, Optional, Sequence, Union

from ..errors import MMSTError, SchemaMismatchError
from ..images import default_workers
from ..inputs import NodeParts
from ..readers import ImageReader
from .catalog import path_forms, prune
from .listing import FileItem, Listing, list_inputs
from .manifest import check_model, read_manifest, write_manifest
from .nodes import IngestPlan, file_of, plan_document
from .progress import NoProgress, Progress
from .read import FileRead, Readers, read_file, readers_for
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
READS_AHEAD = 4
"""Files being read per read worker at a time: enough to keep the workers busy, few enough that a
cancelled job has little queued work to drop."""


class IndexCancelled(MMSTError):
    """``Indexer.cancel()`` stopped the job; what was written before stays (a rerun resumes)."""


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
                 read_workers: Optional[int] = None, prune: bool = False) -> None:
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
        self.prune = prune
        """Delete the documents of files gone from the folders indexed (files given by name are left alone)."""
        self.plan = IngestPlan.for_model(embedding)
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        """Stop the running job at its next step (between files read, between chunks written): ``index``
        raises ``IndexCancelled``. Safe to call from any thread; what was written stays."""
        self._cancelled.set()

    def _check_cancelled(self) -> None:
        if self._cancelled.is_set():
            raise IndexCancelled("indexing was cancelled; run it again to resume")

    def index(self, paths: Union[str, Sequence[str]]) -> IndexSummary:
        """Index ``paths`` (files or folders); returns what happened. Re-running it resumes: unchanged
        files are skipped and changed ones replaced."""
        paths = [paths] if isinstance(paths, str) else [str(p) for p in paths]
        self._cancelled.clear()
        listing = list_inputs(paths, self.reader)
        prepare_store(self.store, self.embedding, self.model_name)
        summary = empty_summary(listing, self.plan.model_reads, self.plan.frame_every_s)
        if self.prune:
            summary.pruned = True
            summary.removed = {f.label for f in prune(self.store, [p for p in paths if os.path.isdir(p)])}
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
        with self.progress.stage("Reading", len(listing.files), "file") as stage:
            for item, read in self._read_files(listing.files, readers):
                stage.update(1)
                summary.skipped += read.failures
                self._drop_lost_documents(item, read, stored, summary)
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

    def _read_files(self, files: Sequence[FileItem], readers: Readers) -> Iterator[tuple[FileItem, FileRead]]:
        """Each file with what it read, in listing order, read in threads a few files ahead; a cancelled
        job drops what is queued and waits only for the files being read."""
        pool = ThreadPoolExecutor(self.read_workers, thread_name_prefix="mmst-ingest")
        queued: Deque[tuple[FileItem, Future]] = deque()
        upcoming = iter(files)
        try:
            for item in upcoming:
                queued.append((item, pool.submit(read_file, item, readers)))
                if len(queued) >= self.read_workers * READS_AHEAD:
                    break
            while queued:
                item, future = queued.popleft()
                read = future.result()
                self._check_cancelled()
                following = next(upcoming, None)
                if following is not None:
                    queued.append((following, pool.submit(read_file, following, readers)))
                yield item, read
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _drop_lost_documents(self, item: FileItem, read: FileRead, stored: StoredDocuments,
                             summary: IndexSummary) -> None:
        """A file read whole that no longer makes some of its stored documents (a PDF that lost pages):
        those documents are deleted, and the file counts as replaced."""
        if read.failures:
            return  # a page that failed to read now keeps what was stored of it
        lost = stored.documents_of(path_forms([str(item.path)])) - {d.id_ for d in read.documents}
        if lost:
            self.store.delete_documents(sorted(lost))
            for document_id in lost:
                stored.forget(document_id)
            summary.replaced.add(file_of(read.documents[0]) if read.documents else str(item.path))

    def _embed_and_store(self, pending: Sequence[Pending], summary: IndexSummary) -> None:
        if not pending:
            return
        recorded = False
        with self.progress.stage("Embedding", len(pending), "node") as stage:
            for start in range(0, len(pending), self.nodes_per_write):
                self._check_cancelled()
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
