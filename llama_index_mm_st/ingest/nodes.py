"""The per-document step of an ingestion job: which nodes a document becomes, and what to do with them.

One rule for both runners: a document the model can't read is counted, not embedded (a video goes
in as sampled frames when the model reads images but not video); the others are split into nodes in
their stored form (``inputs.storable``), each read once (``inputs.read_node``), and the resume rule
says whether they are new, unchanged (skipped) or replace what the store holds of the document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Protocol

from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import Document, ImageDocument, NodeRelationship, RelatedNodeInfo

from ..ids import chunk_id
from ..inputs import NodeParts, read_node, storable
from ..readers import frame_nodes
from ..readers.frames import DEFAULT_EVERY_S
from ..types import Modality
from .catalog import INDEXED_AT_KEY, now_stamp
from .resume import CONTENT_KEY, HASH_KEY, ResumeAction, StoredCount, content_hash, resume_action

TEXT_CHUNK_TOKENS = 512
TEXT_CHUNK_OVERLAP = 32
"""Text documents are split into chunks of this many tokens, overlapping by this many (the model
truncates a chunk longer than its window: CLIP reads 77 tokens; see the README on chunking)."""
MODALITY_ORDER: tuple[Modality, ...] = ("text", "image", "audio", "video")


class ReadsModalities(Protocol):
    """What a plan asks of the model: ``MultimodalEmbedding.supports`` (or a stand-in with it)."""

    def supports(self, modality: Modality) -> bool: ...


@dataclass(frozen=True)
class IngestPlan:
    """What the job's model reads (``MultimodalEmbedding.supports`` of each modality) and how documents
    are cut: fixed for a job, and small and picklable (Ray's read tasks get it)."""

    model_reads: tuple[str, ...]
    frame_every_s: float = DEFAULT_EVERY_S
    chunk_tokens: int = TEXT_CHUNK_TOKENS
    chunk_overlap: int = TEXT_CHUNK_OVERLAP

    @classmethod
    def for_model(cls, embedding: ReadsModalities, **options: Any) -> "IngestPlan":
        reads = tuple(m for m in MODALITY_ORDER if embedding.supports(m))
        return cls(reads, **options)

    def splitter(self) -> SentenceSplitter:
        """How text documents are split (node ids depend on it)."""
        return SentenceSplitter(chunk_size=self.chunk_tokens, chunk_overlap=self.chunk_overlap)


Status = Literal["indexed", "unreadable", "empty"]


@dataclass
class DocumentWork:
    """What the job does with one document: its ``nodes`` (read once), the resume ``action``, or why it
    is left out (``status`` "unreadable": the model can't read ``needs``; "empty": no nodes)."""

    document_id: str
    file: str
    status: Status
    action: Optional[ResumeAction] = None
    nodes: list[NodeParts] = field(default_factory=list)
    needs: Optional[str] = None
    framed: bool = False
    """A video indexed as sampled frames (the model reads images, not video)."""


def file_of(document: Document) -> str:
    return str(document.metadata.get("file_path") or document.id_)


def needs(modality: str) -> str:
    """The modality a model must read to embed a node of this one (a captioned image is an image)."""
    return "image" if modality == "text+image" else modality


def nodes_of(document: Document, splitter: SentenceSplitter, frames: bool = False,
             modality: Optional[str] = None) -> list:
    """Image, audio and video documents become one node (a video with ``frames``: one per sampled
    frame); text documents are split. Node ids derive from the document id; nodes are in the form the
    store keeps them (an ``ImageDocument`` becomes an ``ImageNode``). ``modality``: the document's, when
    the caller has read it already."""
    if frames:
        return frame_nodes(document)
    modality = modality or read_node(document).modality
    if isinstance(document, ImageDocument) or modality in ("audio", "video"):  # kept as one node
        source = {NodeRelationship.SOURCE: document.as_related_node_info()}
        return [storable(document.model_copy(update={"id_": chunk_id(document.id_, 0), "relationships": source}))]
    nodes = splitter.get_nodes_from_documents([document])
    renamed = {node.id_: chunk_id(document.id_, position) for position, node in enumerate(nodes)}
    for node in nodes:
        node.id_ = renamed[node.id_]
        for kind in (NodeRelationship.PREVIOUS, NodeRelationship.NEXT):  # they named the splitter's random ids
            related = node.relationships.get(kind)
            if isinstance(related, RelatedNodeInfo):  # PREVIOUS and NEXT name one node each
                related.node_id = renamed.get(related.node_id, related.node_id)
    return nodes


def stamp(nodes: list, when: Optional[str] = None, content: Optional[str] = None) -> None:
    """Record when these nodes are indexed (``indexed_at``, what ``mmst ls`` shows) and, when it is not the
    file's own hash, their document's content hash (``resume.CONTENT_KEY``), as bookkeeping that no model
    and no LLM reads."""
    values = {INDEXED_AT_KEY: when or now_stamp()}
    for node in nodes:
        if content and content != node.metadata.get(HASH_KEY):
            values[CONTENT_KEY] = content
        for key, value in values.items():
            node.metadata[key] = value
            node.excluded_embed_metadata_keys = _with(node.excluded_embed_metadata_keys, key)
            node.excluded_llm_metadata_keys = _with(node.excluded_llm_metadata_keys, key)


def _with(keys: list, key: str) -> list:
    return keys if key in keys else [*keys, key]


def plan_document(document: Document, plan: IngestPlan, stored: StoredCount,
                  splitter: Optional[SentenceSplitter] = None) -> DocumentWork:
    """One document's work: its nodes and resume action, or why it is left out."""
    modality = read_node(document).modality
    file = file_of(document)
    frames = modality == "video" and "video" not in plan.model_reads and "image" in plan.model_reads
    if not frames and needs(modality) not in plan.model_reads:
        return DocumentWork(document.id_, file, "unreadable", needs=needs(modality))
    nodes = nodes_of(document, splitter or plan.splitter(), frames, modality)
    if not nodes:
        return DocumentWork(document.id_, file, "empty", framed=frames)
    action = resume_action(document, len(nodes), stored)
    if action != "unchanged":
        stamp(nodes, content=content_hash(document))
    return DocumentWork(document.id_, file, "indexed", action, [read_node(node) for node in nodes], framed=frames)
