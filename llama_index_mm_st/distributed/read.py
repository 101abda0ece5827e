"""Read tasks (plain Ray tasks, spread over CPUs): files -> documents -> nodes -> decoded pixels.

Each file becomes the documents ``mmst index`` makes of it (same reader, same ids, same splitter),
the resume rule decides per document whether its nodes go on, and image nodes are decoded here to
the pixels the model will see, so the actors get arrays and never need the file (a PDF page's
render lives in this worker's cache, which another machine can't read).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from llama_index.core.schema import BaseNode, Document

from ..errors import ImageLoadError, MMSTError
from ..fetch import FetchOptions
from ..images import DecodeOptions
from ..cli.collect import Collected, read_texts
from ..cli.index_job import default_splitter, file_of, nodes_of, resume_action
from ..inputs import read_node
from ..readers import ImageReader
from ..readers.cache import RenderCache
from ..readers.read_source import ReadSettings, read_source
from .listing import media_source

COLUMNS = ("kind", "doc_id", "action", "item", "reason", "node", "modality", "pixels", "height", "width")
"""Every stage's rows. kind: "doc" (one per document, with its resume action), "node" (to embed),
"failure" (a file or image that could not be used: item and reason)."""


@dataclass(frozen=True)
class ReadConfig:
    """What a read task needs, fixed for the job; pickled once into every task."""

    reader: ImageReader
    cache_root: str
    decode: DecodeOptions
    fetch: FetchOptions


def read_settings(config: ReadConfig) -> ReadSettings:
    """The reader's own settings (``ImageReader.read_settings``), with the job's cache."""
    return replace(config.reader.read_settings(), cache=RenderCache(config.cache_root))


def row(kind: str, **values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"kind": kind, "doc_id": "", "action": "", "item": "", "reason": "", "node": b"",
                            "modality": "", "pixels": b"", "height": 0, "width": 0}
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
    """One batch of listed files -> rows. ``counts`` (see ``resume.py``) gives the resume rule's
    counts; when it ``deletes_here``, a changed document's old points go right here, before any of
    its new nodes can be written (the actor-write path)."""
    settings, splitter = read_settings(config), default_splitter()
    out: list[dict[str, Any]] = []
    for file in (dict(zip(batch, values)) for values in zip(*batch.values())):
        documents, failures = _read_file(file, settings)
        out += [row("failure", item=item, reason=reason) for item, reason in failures]
        for document in documents:
            nodes = nodes_of(document, splitter)
            if not nodes:
                continue
            action = resume_action(document, len(nodes), counts)
            if action == "replace" and counts.deletes_here:
                counts.delete(document.id_)
            out.append(row("doc", doc_id=document.id_, action=action, item=file_of(document)))
            if action != "unchanged":
                out += [_node_row(node, document.id_, action, config) for node in nodes]
    return to_batch(out)


def _read_file(file: dict[str, Any], settings: ReadSettings) -> tuple[list[Document], list[tuple[str, str]]]:
    """The documents of one listed file, keyed as ``collect`` keys them, and its failures (named)."""
    if file["kind"] == "text":
        collected = Collected()
        read_texts([Path(str(file["path"]))], collected)
        return collected.documents, collected.skipped
    source = media_source(file)
    try:
        outcome = read_source(source, settings)
    except MMSTError as exc:
        if isinstance(exc, ImportError):  # a missing extra stops the job, as it stops ImageReader
            raise
        return [], [(str(getattr(exc, "item", source.label)), str(getattr(exc, "reason", None) or exc))]
    failures = [(str(getattr(e, "item", source.label)), str(getattr(e, "reason", None) or e)) for e in outcome.failures]
    return list(outcome.documents), failures


def _node_row(node: BaseNode, doc_id: str, action: str, config: ReadConfig) -> dict[str, Any]:
    """A node to embed; an image node carries its decoded pixels (or becomes a named failure)."""
    resolved = read_node(node)
    if resolved.image is None:
        return row("node", doc_id=doc_id, action=action, node=pickle.dumps(node))
    try:
        pixels = np.asarray(resolved.image.load(config.decode, config.fetch), dtype=np.uint8)
    except ImageLoadError as exc:
        return row("failure", doc_id=doc_id, action=action, item=f"node {node.node_id} ({resolved.image.label})",
                   reason=str(exc.reason))
    return row("node", doc_id=doc_id, action=action, node=pickle.dumps(node), pixels=pixels.tobytes(),
               height=pixels.shape[0], width=pixels.shape[1])
