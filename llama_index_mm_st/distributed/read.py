"""Read tasks (plain Ray tasks, spread over CPUs): listed files -> documents -> the per-document step.

Each file goes through the ingestion core's own per-file and per-document steps (``ingest.read_file``,
``ingest.plan_document``): the same reader, ids, splitter, model-capability rule and resume rule as
``mmst index``. Image nodes are decoded here to the pixels the model will see, so the actors get
arrays and never need the file (a PDF page's render lives in this worker's cache, which another
machine can't read).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, replace
from typing import Any, Iterator

import numpy as np

from ..errors import ImageLoadError
from ..fetch import FetchOptions
from ..images import DecodeOptions
from ..ingest import IngestPlan, Readers, plan_document, read_file
from ..inputs import NodeParts

COLUMNS = ("kind", "doc_id", "action", "item", "reason", "node", "modality", "pixels", "height", "width", "work")
"""Every stage's rows. kind: "doc" (one per document: its ``DocumentWork`` record, pickled, without
nodes), "node" (a node to embed, its ``NodeParts`` pickled), "failure" (a file, page or image that
could not be used: item and reason)."""


@dataclass(frozen=True)
class ReadConfig:
    """What a read task needs, fixed for the job; pickled once into every task."""

    readers: Readers
    plan: IngestPlan
    decode: DecodeOptions
    fetch: FetchOptions


def row(kind: str, **values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"kind": kind, "doc_id": "", "action": "", "item": "", "reason": "", "node": b"",
                            "modality": "", "pixels": b"", "height": 0, "width": 0, "work": b""}
    base.update(values)
    return base


def to_batch(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Rows -> Ray's numpy batch: bytes and strings as object columns, sizes as int64."""
    batch: dict[str, np.ndarray] = {}
    for column in COLUMNS:
        values = [r[column] for r in rows]
        batch[column] = np.array(values, dtype=np.int64) if column in ("height", "width") else _objects(values)
    return batch


def _objects(values: list[Any]) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def rows_of(batch: dict[str, np.ndarray]) -> Iterator[dict[str, Any]]:
    for i in range(len(batch["kind"])):
        yield {column: batch[column][i] for column in COLUMNS}


def read_batch(batch: dict[str, np.ndarray], config: ReadConfig, counts: Any) -> dict[str, np.ndarray]:
    """One batch of listed files (a ``FileItem`` pickled per row) -> rows. ``counts`` (``resume.py``)
    gives the resume rule's counts for these files; when it ``deletes_here``, a changed document's old
    points go right here, before any of its new nodes can be written (the actor-write path)."""
    items = [pickle.loads(blob) for blob in batch["file"]]
    stored = counts.for_files([str(item.path) for item in items])
    splitter = config.plan.splitter()
    out: list[dict[str, Any]] = []
    for item in items:
        read = read_file(item, config.readers)
        out += [row("failure", item=item_label, reason=reason) for item_label, reason in read.failures]
        for document in read.documents:
            work = plan_document(document, config.plan, stored, splitter)
            if work.action == "replace" and counts.deletes_here:
                counts.delete(work.document_id)
            out.append(row("doc", doc_id=work.document_id, action=work.action or "", item=work.file,
                           work=pickle.dumps(replace(work, nodes=[]))))
            if work.status == "indexed" and work.action != "unchanged":
                out += [_node_row(parts, work.document_id, work.action or "", config) for parts in work.nodes]
    return to_batch(out)


def _node_row(parts: NodeParts, doc_id: str, action: str, config: ReadConfig) -> dict[str, Any]:
    """A node to embed; an image node carries its decoded pixels (or becomes a named failure)."""
    if parts.image is None:
        return row("node", doc_id=doc_id, action=action, node=pickle.dumps(parts))
    try:
        pixels = np.asarray(parts.image.load(config.decode, config.fetch), dtype=np.uint8)
    except ImageLoadError as exc:
        return row("failure", doc_id=doc_id, action=action, item=f"node {parts.node_id} ({parts.image.label})",
                   reason=str(exc.reason))
    return row("node", doc_id=doc_id, action=action, node=pickle.dumps(parts), pixels=pixels.tobytes(),
               height=pixels.shape[0], width=pixels.shape[1])
