"""The server as the one writer of its index: documents in (read, split, embed, write), listed, deleted.

Each document goes through the ingestion job's own steps (``ingest.read_file``, ``ingest.plan_document``
and the resume rule, ``MultimodalEmbedding.embed_nodes``, ``store.add_parts``), as ``mmst index`` runs
them, except that its nodes are embedded through the server's embedding lane (``EmbedService.lane``:
admission, budgets, 429), batched with every other client's inputs:

    stage (doc_items) -> read + plan + decode (a worker thread) -> embed (the lane) -> write (one writer)

- **Replace without a gap.** A changed document's new points are written first, then the points it no
  longer has are deleted, so a search running meanwhile finds the old version or the new one, never
  neither. A document is seen by searches once its write returns (Edge applies an update before it
  returns; the reply is sent after).
- **Exact after a kill.** Points carry the document's content hash and ``mmst_doc_rev`` (its name and
  metadata); a document is unchanged only when every point it has is of this version and there are no
  others, so sending it again after a kill finishes or repairs it (``ingest.resume``).
- **One writer.** Store writes and deletes run one at a time (a lock); reading, decoding and embedding
  of many documents overlap. Two requests for the same document id run one after the other.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import shutil
import threading
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from llama_index.core.schema import Document
from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters

from ..errors import ItemError, MissingDependencyError, SchemaMismatchError
from ..ingest import IngestPlan, plan_document, prepare_store, read_file, read_manifest, readers_for, write_manifest
from ..ingest.resume import FILE_KEY, HASH_KEY, HASH_KEYS, stored_hash
from ..inputs import ImageRef, NodeParts
from ..readers import ImageReader
from .doc_items import DOC_ID_KEY, DOC_NAME_KEY, ItemRefused, ItemSpec, Staged, Stager, item_folder
from .embed import NODES, EmbedService
from .errors import APIError
from .items import text_cost
from .lanes import Job

log = logging.getLogger("llama_index_mm_st.serve")

REV_KEY = "mmst_doc_rev"
"""Metadata key: a digest of a document's name and metadata, so a change of either alone is a new version."""
HIDDEN_KEYS = (DOC_ID_KEY, DOC_NAME_KEY, REV_KEY)
"""The API's bookkeeping keys: never in what a model or an LLM reads."""
REF_DOC_ID_KEY = "ref_doc_id"
ITEMS_IN_FLIGHT = 32
"""Documents of one request read and embedded at once: enough to fill the model's batches, few enough
that one large upload does not fill the lane's queue ahead of everyone else's searches."""
LIST_KEYS = (DOC_ID_KEY, DOC_NAME_KEY, REF_DOC_ID_KEY, FILE_KEY, "file_name", "modality", HASH_KEY)


@dataclass
class Prepared:
    """One document read and planned: what to embed, what it keeps, and what went wrong on the way."""

    staged: Staged
    unchanged: bool
    existed: bool
    pending: List[NodeParts] = field(default_factory=list)
    kept_ids: set = field(default_factory=set)
    """Node ids of its documents that are stored unchanged (not embedded again)."""
    problems: List[tuple[str, str]] = field(default_factory=list)


class DocumentWriter:
    """Writes, lists and deletes the served store's documents (``/v1/documents``)."""

    def __init__(self, store: Any, embed: EmbedService, files_dir: Optional[Path], index_root: Optional[Path],
                 model_name: Optional[str] = None, writable: bool = True) -> None:
        self.store, self.embed, self.writable = store, embed, writable
        self.model_name = model_name or embed.embedding.model_name
        self.reader = ImageReader()  # the reading rules of ``mmst index``
        self.readers = readers_for(self.reader)
        self.plan = IngestPlan.for_model(embed.embedding)
        self.files_dir = files_dir
        self.stager = Stager(files_dir, index_root, embed.rules, self.reader)
        self.write_lock = threading.Lock()
        self._document_locks: Dict[str, asyncio.Lock] = {}
        self._prepared = False
        self.generation = 0
        """Bumped by every write and delete (the document list is cached per generation)."""
        self._listed: Optional[tuple[int, Dict[str, dict]]] = None

    # ---------------------------------------------------------------- adding

    async def add(self, specs: Sequence[ItemSpec]) -> List[dict]:
        """Each item's outcome, in request order (a folder item gives one per file)."""
        gate = asyncio.Semaphore(ITEMS_IN_FLIGHT)

        async def one(spec: ItemSpec) -> List[dict]:
            async with gate:
                return await self._item(spec)

        results = await asyncio.gather(*(one(spec) for spec in specs))
        return [entry for entries in results for entry in entries]

    async def _item(self, spec: ItemSpec) -> List[dict]:
        try:
            staged = await asyncio.to_thread(self.stager.stage, spec)
        except ItemRefused as exc:
            return [refused(spec, spec.id, spec.name, exc.reason, exc.code)]
        return [await self._document(spec, document) for document in staged]

    async def _document(self, spec: ItemSpec, staged: Staged) -> dict:
        lock = self._document_locks.setdefault(staged.id, asyncio.Lock())
        try:
            async with lock:
                return await self._ingest(spec, staged)
        except ItemRefused as exc:
            return refused(spec, staged.id, staged.name, exc.reason, exc.code)
        except MissingDependencyError as exc:  # a PDF without pypdfium2: this document, with the install line
            return refused(spec, staged.id, staged.name, str(exc), "missing_dependency")
        except APIError as exc:
            if exc.status != 429:
                raise  # the model's worker is dead or hung: the request as a whole can't be served
            return refused(spec, staged.id, staged.name, exc.message, exc.code or "queue_full",
                           retry_after=exc.retry_after)
        finally:
            if not lock.locked() and self._document_locks.get(staged.id) is lock:
                del self._document_locks[staged.id]

    async def _ingest(self, spec: ItemSpec, staged: Staged) -> dict:
        prepared = await asyncio.to_thread(self._prepare, staged)
        entry = {"index": spec.position, "id": staged.id, "name": staged.name}
        problems = [{"item": item, "reason": reason} for item, reason in prepared.problems]
        if prepared.unchanged:
            return {**entry, "status": "unchanged", "points": len(prepared.kept_ids), **_listed(problems)}
        jobs = [Job((NODES, "document"), parts, self.cost(parts)) for parts in prepared.pending]
        outcomes = await self.embed.lane.run(jobs) if jobs else []
        turned_away = next((outcome for outcome in outcomes if isinstance(outcome, APIError)), None)
        if turned_away is not None:  # waited past the bound, or the worker died: the document, not a node
            raise turned_away
        kept = [outcome for outcome in outcomes if isinstance(outcome, NodeParts)]
        for parts, outcome in zip(prepared.pending, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                problems.append({"item": f"node {parts.node_id} ({_label(parts)})", "reason": _why(outcome)})
        if not kept and not prepared.kept_ids:
            reason = problems[0]["reason"] if problems else "nothing could be embedded"
            raise ItemRefused(reason, "embedding_failed")
        points = await asyncio.to_thread(self._write, prepared, kept)
        status = "replaced" if prepared.existed else "added"
        return {**entry, "status": status, "points": points, **_listed(problems)}

    def _prepare(self, staged: Staged) -> Prepared:
        """Read the file, plan its documents against what the store holds, decode pixels (worker thread)."""
        read = read_file(staged.file, self.readers)
        if not read.documents:
            self._discard(staged)
            raise ItemRefused(read.failures[0][1] if read.failures else "nothing could be read")
        revision = _revision(staged)
        for document in read.documents:
            _tag(document, staged, revision)
        stored = self._stored(staged)

        def count(document: Document, sha: Optional[str]) -> int:
            versions = stored.get(document.id_)
            if not versions:
                return 0
            return versions[(sha, revision)] if sha else sum(versions.values())

        splitter = self.plan.splitter()
        works = [plan_document(document, self.plan, count, splitter) for document in read.documents]
        indexed = [work for work in works if work.status == "indexed"]
        if not indexed:
            self._discard(staged)
            needs = sorted({work.needs for work in works if work.needs})
            if needs:
                raise ItemRefused(f"the model can't read {', '.join(needs)} (it reads {', '.join(self.plan.model_reads)})",
                                  "unsupported_modality")
            raise ItemRefused("nothing to index (no words and no media)", "empty")
        current = {work.document_id for work in indexed}
        unchanged = [work for work in indexed if work.action == "unchanged"]
        prepared = Prepared(staged, unchanged=len(unchanged) == len(indexed) and set(stored) <= current,
                            existed=bool(stored), problems=list(read.failures))
        prepared.kept_ids = {parts.node_id for work in unchanged for parts in work.nodes}
        if prepared.unchanged:
            return prepared
        for work in indexed:
            if work.action == "unchanged":
                continue
            for parts in work.nodes:
                decoded = self.decoded(parts, prepared.problems)
                if decoded is not None:
                    prepared.pending.append(decoded)
        return prepared

    def decoded(self, parts: NodeParts, problems: List[tuple[str, str]], fetch: Any = None) -> Optional[NodeParts]:
        """A node with its pixels decoded here, in the request's thread (the lane's turn is the forward pass);
        ``fetch``: the URL policy (default the embedding's); a failure is added to ``problems``."""
        if parts.image is None:
            return parts
        embedding = self.embed.embedding
        try:
            pixels = np.asarray(parts.image.load(embedding.decode_options, fetch or embedding.fetch_options),
                                dtype=np.uint8)
        except ItemError as exc:
            problems.append((f"node {parts.node_id} ({parts.image.label})", str(exc.reason)))
            return None
        return replace(parts, image=ImageRef(parts.image.label, pixels))

    def cost(self, parts: NodeParts) -> float:
        """The node's share of a batch: its pixels, media seconds and words, as the embeddings route counts."""
        limits, rules = self.embed.settings.limits, self.embed.rules
        cost = 0.0
        if parts.image is not None:
            source = parts.image.source
            cost += (source.shape[0] * source.shape[1] if isinstance(source, np.ndarray) else 0) / limits.max_batch_pixels
        elif parts.media is not None:
            cost += float(parts.node.metadata.get("duration_s") or 0.0) / limits.max_batch_media_seconds
        if parts.image is None and parts.media is None or parts.modality == "text+image":
            cost += text_cost(parts.embed_text, rules)
        return min(cost, 1.0)

    def _stored(self, staged: Staged) -> Dict[str, Counter]:
        """Points of this document in the store by (LlamaIndex document, (content hash, revision))."""
        if self.store.schema is None:
            return {}
        found: Dict[str, Counter] = {}
        for payload in self.store.payload_values([REF_DOC_ID_KEY, *HASH_KEYS, REV_KEY], self._selector(staged)):
            found.setdefault(str(payload.get(REF_DOC_ID_KEY)), Counter())[(stored_hash(payload), payload.get(REV_KEY))] += 1
        return found

    def _selector(self, staged: Staged) -> MetadataFilters:
        """Its points: those the API wrote for its id, and those of its file (an ``mmst index`` of a server path)."""
        path = str(staged.file.path)
        return MetadataFilters(filters=[MetadataFilter(key=DOC_ID_KEY, value=staged.id),
                                        MetadataFilter(key=FILE_KEY, value=path)], condition=FilterCondition.OR)

    def _write(self, prepared: Prepared, kept: List[NodeParts]) -> int:
        """Write the new points, then delete what the document no longer has; the document's point count."""
        with self.write_lock:
            self._ensure_collection()
            if kept:
                self.store.add_parts(kept)
            keep = prepared.kept_ids | {parts.node_id for parts in kept}
            if prepared.existed:
                stale = [node.node_id for node in self.store.get_nodes(filters=self._selector(prepared.staged))
                         if node.node_id not in keep]
                if stale:
                    self.store.delete_nodes(node_ids=stale)
            self.generation += 1
        self._forget_other_versions(prepared.staged)
        return len(keep)

    def _ensure_collection(self) -> None:
        """The first write makes the collection with the model's vectors and records the model."""
        if self._prepared:
            return
        try:
            prepare_store(self.store, self.embed.embedding, self.model_name)
        except SchemaMismatchError as exc:
            raise ItemRefused(str(exc), "schema_mismatch") from None
        if read_manifest(self.store) is None:
            write_manifest(self.store, self.model_name, self.embed.embedding.dimension)
        self._prepared = True

    def _forget_other_versions(self, staged: Staged) -> None:
        """An uploaded document's earlier versions, once no point points at them any more."""
        if staged.folder is None:
            return
        for version in staged.folder.parent.iterdir():
            if version != staged.folder and not version.name.startswith(".new-"):
                shutil.rmtree(version, ignore_errors=True)

    def _discard(self, staged: Staged) -> None:
        """A version folder that nothing will point at (a refused upload that was not stored before)."""
        if staged.folder is not None and not self._stored(staged):
            shutil.rmtree(staged.folder, ignore_errors=True)

    # ---------------------------------------------------------------- listing and deleting

    def documents(self) -> Dict[str, dict]:
        """Every document the store holds, by id (cached until the next write): the API's documents by
        their id, files indexed otherwise by their path, other nodes by their LlamaIndex document id."""
        listed = self._listed
        generation = self.generation
        if listed is not None and listed[0] == generation:
            return listed[1]
        entries: Dict[str, dict] = {}
        if self.store.schema is not None:
            for payload in self.store.payload_values(list(LIST_KEYS)):
                key = document_key(payload)
                entry = entries.get(key)
                if entry is None:
                    name = payload.get(DOC_NAME_KEY) or payload.get("file_name") or payload.get(FILE_KEY) or key
                    entry = entries[key] = {"id": key, "name": str(name), "kind": _kind(payload, str(name)),
                                            "points": 0, "sha256": payload.get(HASH_KEY)}
                entry["points"] += 1
        self._listed = (generation, entries)
        return entries

    def delete(self, ids: Optional[Sequence[str]] = None, filters: Optional[MetadataFilters] = None) -> List[dict]:
        """Delete documents by id (all their points) and/or the points matching ``filters``; what went."""
        selector = _ids_selector(ids) if ids else None
        if filters is not None:
            selector = filters if selector is None else MetadataFilters(filters=[selector, filters])
        if selector is None or self.store.schema is None:
            return []
        with self.write_lock:
            counts = Counter(document_key(p) for p in self.store.payload_values(list(LIST_KEYS), selector))
            if counts:
                self.store.delete_nodes(filters=selector)
                self.generation += 1
            remaining = self.documents() if counts else {}
        if self.files_dir is not None:
            for key in counts:
                if key not in remaining:
                    shutil.rmtree(item_folder(self.files_dir, key), ignore_errors=True)
        return [{"id": key, "points": points, "deleted": key not in remaining} for key, points in sorted(counts.items())]


def document_key(payload: dict) -> str:
    """Which document a point belongs to: its API id, else its file, else its LlamaIndex document."""
    return str(payload.get(DOC_ID_KEY) or payload.get(FILE_KEY) or payload.get(REF_DOC_ID_KEY))


def _ids_selector(ids: Sequence[str]) -> MetadataFilters:
    values = list(ids)
    return MetadataFilters(filters=[MetadataFilter(key=key, value=values, operator=FilterOperator.IN)
                                    for key in (DOC_ID_KEY, FILE_KEY, REF_DOC_ID_KEY)], condition=FilterCondition.OR)


def _kind(payload: dict, name: str) -> str:
    from ..ingest.listing import TEXT_EXTENSIONS
    from ..media import AUDIO_SUFFIXES, VIDEO_SUFFIXES

    suffix = Path(str(payload.get(FILE_KEY) or name)).suffix.lower()
    if suffix == ".pdf":
        return "pdf"
    for kind, suffixes in (("audio", AUDIO_SUFFIXES), ("video", VIDEO_SUFFIXES), ("text", TEXT_EXTENSIONS)):
        if suffix in suffixes:
            return kind
    modality = str(payload.get("modality") or "text")
    return "image" if modality == "text+image" else modality


def _revision(staged: Staged) -> str:
    """The version of a document's name and metadata (its content has its own hash)."""
    text = json.dumps({"name": staged.name, "metadata": staged.metadata}, sort_keys=True, ensure_ascii=False,
                      default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _tag(document: Document, staged: Staged, revision: str) -> None:
    """A read document as the API stores it: the client's metadata, and the API's keys hidden from models."""
    document.metadata.update(staged.metadata)
    document.metadata.update({DOC_ID_KEY: staged.id, DOC_NAME_KEY: staged.name, REV_KEY: revision})
    document.excluded_embed_metadata_keys = list(dict.fromkeys([*document.excluded_embed_metadata_keys, *HIDDEN_KEYS]))
    document.excluded_llm_metadata_keys = list(dict.fromkeys([*document.excluded_llm_metadata_keys, *HIDDEN_KEYS]))


def refused(spec: ItemSpec, document_id: Optional[str], name: Optional[str], reason: str, code: str,
            retry_after: Optional[float] = None) -> dict:
    status = 429 if retry_after is not None else 409 if code == "schema_mismatch" else 400
    entry: Dict[str, Any] = {"index": spec.position, "id": document_id, "name": name, "status": "refused", "param": spec.param,
             "reason": reason, "code": code, "http_status": status}
    if retry_after is not None:
        entry["retry_after"] = retry_after
    return entry


def _listed(problems: List[dict]) -> dict:
    return {"problems": problems} if problems else {}


def _label(parts: NodeParts) -> str:
    return parts.image.label if parts.image is not None else parts.modality


def _why(error: BaseException) -> str:
    return str(getattr(error, "reason", None) or error)
