"""``mmst index``: read, split, skip what is already stored, embed and store in resumable chunks.

Resumability comes from stable ids plus a per-document check: a document whose nodes are all in
the store with the same content hash is skipped; a changed one has its old points deleted first.
Nodes are embedded and stored a chunk at a time, so an interruption loses at most one chunk.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Literal, Optional, Sequence

from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import BaseNode, Document, ImageDocument, ImageNode, NodeRelationship
from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters
from tqdm.auto import tqdm

from ..embedding import MultimodalEmbedding
from ..errors import SkippedItemsWarning
from ..store import MultimodalQdrantStore
from ..store.plan import node_modality
from .collect import Collected, stable_id

CHUNK = 64


@dataclass
class IndexSummary:
    added: Counter = field(default_factory=Counter)
    unchanged: int = 0
    replaced: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)
    total: Counter = field(default_factory=Counter)


def default_splitter() -> SentenceSplitter:
    """How ``mmst index`` splits text documents (node ids depend on it)."""
    return SentenceSplitter(chunk_size=512, chunk_overlap=32)


def nodes_of(document: Document, splitter: SentenceSplitter) -> list[BaseNode]:
    """Image documents become one ImageNode; text documents are split. Node ids derive from the doc id."""
    if isinstance(document, ImageDocument):
        node = ImageNode(
            id_=stable_id(document.id_, 0), text=document.text, image_path=document.image_path,
            image_url=document.image_url, image_mimetype=document.image_mimetype, metadata=dict(document.metadata),
            excluded_embed_metadata_keys=list(document.excluded_embed_metadata_keys),
            excluded_llm_metadata_keys=list(document.excluded_llm_metadata_keys),
            relationships={NodeRelationship.SOURCE: document.as_related_node_info()},
        )
        return [node]
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


def store_counter(store: MultimodalQdrantStore) -> StoredCount:
    return lambda document, sha: store.count(_same_document(document, sha))


def resume_action(document: Document, node_count: int, stored: StoredCount) -> Literal["new", "unchanged", "replace"]:
    """The resume rule: all of a document's nodes stored with its current hash -> unchanged (skip);
    some of its points stored otherwise -> replace (delete them first); none -> new."""
    if stored(document, document.metadata.get("sha256")) == node_count:
        return "unchanged"
    return "replace" if stored(document, None) else "new"


def run_index(collected: Collected, store: MultimodalQdrantStore, embedding: MultimodalEmbedding,
              progress: bool, on_chunk: Callable[[], None] | None = None) -> IndexSummary:
    """Index the collected documents into the store; returns what happened."""
    summary = IndexSummary(skipped=list(collected.skipped), ignored=list(collected.ignored))
    splitter = default_splitter()
    pending: list[BaseNode] = []
    for document in tqdm(collected.documents, desc="Checking", disable=not progress, unit="doc"):
        nodes = nodes_of(document, splitter)
        if not nodes:
            continue
        action = resume_action(document, len(nodes), store_counter(store))
        if action == "unchanged":
            summary.unchanged += 1
            continue
        if action == "replace":
            store.delete(document.id_)
            summary.replaced += 1
        pending.extend(nodes)
    with tqdm(total=len(pending), desc="Embedding", disable=not progress, unit="node") as bar:
        for start in range(0, len(pending), CHUNK):
            chunk = pending[start : start + CHUNK]
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", SkippedItemsWarning)
                embedded = embedding(chunk, on_error="skip")
            for warning in caught:
                if isinstance(warning.message, SkippedItemsWarning):
                    summary.skipped += [(f.item, str(getattr(f.error, "reason", f.error)))
                                        for f in warning.message.failures]
            if embedded:
                store.add(list(embedded))
                summary.added.update(node_modality(node) for node in embedded)
            bar.update(len(chunk))
            if on_chunk is not None:
                on_chunk()
    for modality in ("text", "image", "text+image"):
        summary.total[modality] = store.count(_modality_filter(modality))
    return summary


def _modality_filter(modality: str) -> MetadataFilters:
    return MetadataFilters(filters=[MetadataFilter(key="modality", value=modality, operator=FilterOperator.EQ)])


def format_summary(summary: IndexSummary) -> Sequence[str]:
    lines = [
        "added: " + (", ".join(f"{count} {m}" for m, count in sorted(summary.added.items())) or "nothing new"),
        f"unchanged (already indexed): {summary.unchanged} document(s); replaced (changed): {summary.replaced}",
        "in the index: " + ", ".join(f"{summary.total[m]} {m}" for m in ("text", "image", "text+image")),
    ]
    if summary.skipped:
        lines.append(f"skipped {len(summary.skipped)} file(s):")
        lines += [f"  {item}: {reason}" for item, reason in summary.skipped]
    if summary.ignored:
        lines.append(f"not followed: {len(summary.ignored)} path(s):")
        lines += [f"  {item}: {reason}" for item, reason in summary.ignored]
    return lines
