"""``mmst index``: read, split, skip what is already stored, embed and store in resumable chunks.

Resumability comes from stable ids plus a per-document check: a document whose nodes are all in
the store with the same content hash is skipped; a changed one has its old points deleted first.
Nodes are embedded and stored a chunk at a time, so an interruption loses at most one chunk.
The summary counts files, not documents: a changed PDF is one replaced file, however many pages.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Literal, Optional, Sequence, get_args

from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import BaseNode, Document, ImageDocument, NodeRelationship
from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters

from .. import Modality
from ..errors import SkippedItemsWarning
from ..inputs import read_node
from ..readers import frame_nodes
from ..readers.frames import DEFAULT_EVERY_S
from ..store import MultimodalQdrantStore
from .collect import Collected, stable_id
from .progress import Stage

if TYPE_CHECKING:
    from ..embedding import MultimodalEmbedding

NODES_PER_WRITE = 64
"""Nodes embedded and stored together: a kill loses at most this many nodes' work, and a chunk is
still large enough to fill the model's batches."""
TEXT_CHUNK_TOKENS = 512
TEXT_CHUNK_OVERLAP = 32
"""Text documents are split into chunks of this many tokens, overlapping by this many (the model
truncates a chunk longer than its window: CLIP reads 77 tokens; see the README on chunking)."""


@dataclass
class IndexSummary:
    """What one ``mmst index`` run did; files are keyed by path."""

    added: Counter = field(default_factory=Counter)
    new_files: set[str] = field(default_factory=set)
    unchanged: set[str] = field(default_factory=set)
    replaced: set[str] = field(default_factory=set)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    not_followed: list[tuple[str, str]] = field(default_factory=list)
    ignored: Counter = field(default_factory=Counter)
    """Files left out because of their type, by extension."""
    unreadable: dict[str, set[str]] = field(default_factory=dict)
    """Files left out because the model can't read their modality, by modality."""
    model_reads: tuple[str, ...] = ()
    framed: set[str] = field(default_factory=set)
    """Videos indexed as sampled frames (an image-only model)."""
    total: dict[str, int] = field(default_factory=dict)

    def note(self, path: str, action: "ResumeAction") -> None:
        """Count a document's file once per action (a PDF's pages are one file)."""
        {"unchanged": self.unchanged, "replace": self.replaced, "new": self.new_files}[action].add(path)

    def settle(self) -> None:
        """A file with any replaced (or new) document is reported as that, never also as unchanged."""
        self.unchanged -= self.replaced | self.new_files
        self.new_files -= self.replaced


def default_splitter() -> SentenceSplitter:
    """How ``mmst index`` splits text documents (node ids depend on it)."""
    return SentenceSplitter(chunk_size=TEXT_CHUNK_TOKENS, chunk_overlap=TEXT_CHUNK_OVERLAP)


def nodes_of(document: Document, splitter: SentenceSplitter, frames: bool = False) -> list[BaseNode]:
    """Image, audio and video documents become one node (a video with ``frames``: one per sampled
    frame); text documents are split. Node ids derive from the doc id."""
    if frames:
        return frame_nodes(document)
    if isinstance(document, ImageDocument) or read_node(document).has_media:  # kept as one node
        source = {NodeRelationship.SOURCE: document.as_related_node_info()}
        return [document.model_copy(update={"id_": stable_id(document.id_, 0), "relationships": source})]
    nodes = splitter.get_nodes_from_documents([document])
    renamed = {node.id_: stable_id(document.id_, position) for position, node in enumerate(nodes)}
    for node in nodes:
        node.id_ = renamed[node.id_]
        for kind in (NodeRelationship.PREVIOUS, NodeRelationship.NEXT):  # they named the splitter's random ids
            related = node.relationships.get(kind)
            if related is not None:
                related.node_id = renamed.get(related.node_id, related.node_id)
    return nodes


def _same_document(document: Document, sha: str | None) -> MetadataFilters:
    filters = [MetadataFilter(key="ref_doc_id", value=document.id_, operator=FilterOperator.EQ)]
    if sha:
        filters.append(MetadataFilter(key="sha256", value=sha, operator=FilterOperator.EQ))
    return MetadataFilters(filters=filters)


StoredCount = Callable[[Document, Optional[str]], int]
"""Points stored for a document, only those with this content hash when one is given."""
ResumeAction = Literal["new", "unchanged", "replace"]


def store_counter(store: MultimodalQdrantStore) -> StoredCount:
    return lambda document, sha: store.count(_same_document(document, sha))


def resume_action(document: Document, node_count: int, stored: StoredCount) -> ResumeAction:
    """The resume rule (also Ray's): all of a document's nodes stored with its current hash ->
    unchanged (skip); some of its points stored otherwise -> replace (delete them first); none -> new."""
    if stored(document, document.metadata.get("sha256")) == node_count:
        return "unchanged"
    return "replace" if stored(document, None) else "new"


def file_of(document: Document) -> str:
    return str(document.metadata.get("file_path") or document.id_)


def run_index(collected: Collected, store: MultimodalQdrantStore, embedding: "MultimodalEmbedding",
              progress: bool, on_chunk: Callable[[], None] | None = None,
              before_first_add: Optional[Callable[[], None]] = None) -> IndexSummary:
    """Index the collected documents into the store; returns what happened.

    ``before_first_add`` runs once, just before the first point is written (the CLI records the
    model there, so a run that writes nothing records nothing).
    """
    summary = IndexSummary(skipped=list(collected.skipped), not_followed=list(collected.ignored),
                           ignored=Counter(collected.ignored_types),
                           model_reads=tuple(m for m in ("text", "image", "audio", "video") if embedding.supports(m)))
    splitter, stored = default_splitter(), store_counter(store)
    pending: list[BaseNode] = []
    new_nodes: set[str] = set()
    with Stage("Checking", total=len(collected.documents), unit="doc", enabled=progress) as checking:
        for document in collected.documents:
            checking.update(1)
            modality = read_node(document).modality
            frames = modality == "video" and "video" not in summary.model_reads and "image" in summary.model_reads
            if not frames and _needs(modality) not in summary.model_reads:
                # One summary line says why, instead of an error that stops the run (or a line per file).
                summary.unreadable.setdefault(_needs(modality), set()).add(file_of(document))
                continue
            if frames:
                summary.framed.add(file_of(document))
            nodes = nodes_of(document, splitter, frames)
            if not nodes:
                continue
            action = resume_action(document, len(nodes), stored)
            summary.note(file_of(document), action)
            if action == "unchanged":
                continue
            if action == "replace":
                store.delete(document.id_)
            else:
                new_nodes.update(node.node_id for node in nodes)
            pending.extend(nodes)
    summary.settle()
    _embed_and_store(pending, store, embedding, summary, progress, on_chunk, before_first_add, new_nodes)
    summary.total = store.count_by_modality()
    return summary


def _embed_and_store(pending: Sequence[BaseNode], store: MultimodalQdrantStore, embedding: "MultimodalEmbedding",
                     summary: IndexSummary, progress: bool, on_chunk: Optional[Callable[[], None]],
                     before_first_add: Optional[Callable[[], None]], new_nodes: set[str]) -> None:
    if not pending:
        return
    with Stage("Embedding", total=len(pending), unit="node", enabled=progress) as embedding_stage:
        for start in range(0, len(pending), NODES_PER_WRITE):
            chunk = pending[start : start + NODES_PER_WRITE]
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", SkippedItemsWarning)
                embedded = embedding(chunk, on_error="skip")
            for warning in caught:
                if isinstance(warning.message, SkippedItemsWarning):
                    summary.skipped += [(f.item, str(getattr(f.error, "reason", f.error)))
                                        for f in warning.message.failures]
            if embedded:
                if before_first_add is not None:
                    before_first_add()
                    before_first_add = None
                store.add(list(embedded))
                summary.added.update(store.modality_of(node) for node in embedded if node.node_id in new_nodes)
            embedding_stage.update(len(chunk))
            if on_chunk is not None:
                on_chunk()


def _needs(modality: str) -> str:
    """The modality a model must read to embed a node of this one (a captioned image is an image)."""
    return "image" if modality == "text+image" else modality


def _files(count: int) -> str:
    return f"{count} file{'' if count == 1 else 's'}"


def format_summary(summary: IndexSummary) -> list[str]:
    """The lines for stdout: what was added, replaced, left alone and ignored, and what the index holds."""
    added = ", ".join(f"{count} {m}" for m, count in sorted(summary.added.items()))
    lines = [
        f"added: {added} (from {_files(len(summary.new_files))})" if added else "added: nothing new",
        f"replaced (changed): {_files(len(summary.replaced))}"
        + (": " + ", ".join(sorted(Path(p).name for p in summary.replaced)) if summary.replaced else ""),
        f"unchanged (already indexed): {_files(len(summary.unchanged))}",
        "in the index: " + ", ".join(f"{summary.total.get(m, 0)} {m}" for m in get_args(Modality)),
    ]
    if summary.framed:
        lines.append(f"videos as frames (the model reads images, not video): {_files(len(summary.framed))}, "
                     f"one frame every {DEFAULT_EVERY_S:g} s")
    if summary.unreadable:
        kinds = ", ".join(f"{_files(len(files))} of {m}" for m, files in sorted(summary.unreadable.items()))
        lines.append(f"not indexed, the model can't read them (it reads {', '.join(summary.model_reads)}): {kinds}")
    if summary.ignored:
        kinds = sorted(summary.ignored.items(), key=lambda kv: (-kv[1], kv[0]))
        lines.append("ignored (type not indexed): " + ", ".join(f"{count} {suffix}" for suffix, count in kinds))
    return lines


def format_problems(summary: IndexSummary) -> list[str]:
    """The lines for stderr: files that could not be read, and paths the walk did not follow."""
    lines = []
    if summary.skipped:
        lines.append(f"skipped {_files(len(summary.skipped))}:")
        lines += [f"  {item}: {reason}" for item, reason in summary.skipped]
    if summary.not_followed:
        lines.append(f"not followed: {len(summary.not_followed)} path(s):")
        lines += [f"  {item}: {reason}" for item, reason in summary.not_followed]
    return lines
