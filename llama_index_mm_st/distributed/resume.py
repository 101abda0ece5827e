"""Where the read tasks get the resume rule's counts from (the rule itself is ``index_job.resume_action``).

- ``SnapshotCounts``: the driver writes (an embedded Edge store, one process), so tasks can't ask the
  store; they get a snapshot of it taken before the job: points per (document, content hash).
- ``ServerCounts``: actors write to a Qdrant server, which every task can ask, exactly as
  ``mmst index`` asks; a changed document's old points are deleted there, before its new ones exist.
"""

from __future__ import annotations

from collections import Counter
from typing import Optional

from llama_index.core.schema import Document

from ..cli.index_job import store_counter
from ..store import MultimodalQdrantStore
from .embed import StoreSpec


class SnapshotCounts:
    """Stored points per document and hash, read once from the store by the driver."""

    deletes_here = False

    def __init__(self, store: MultimodalQdrantStore) -> None:
        self.points: dict[str, Counter] = {}
        for node in store.get_nodes():
            self.points.setdefault(node.ref_doc_id or "None", Counter())[node.metadata.get("sha256")] += 1

    def __call__(self, document: Document, sha: Optional[str]) -> int:
        stored = self.points.get(document.id_)
        if not stored:
            return 0
        return stored[sha] if sha else sum(stored.values())

    def delete(self, doc_id: str) -> None:
        raise RuntimeError("the driver deletes changed documents when it writes to an embedded store")


_OPEN: dict[StoreSpec, MultimodalQdrantStore] = {}
"""One server connection per worker process, kept across the tasks it runs."""


class ServerCounts:
    """Counts and deletes on the Qdrant server, from whichever worker runs the task."""

    deletes_here = True

    def __init__(self, spec: StoreSpec) -> None:
        self.spec = spec

    def _store(self) -> MultimodalQdrantStore:
        if self.spec not in _OPEN:
            _OPEN[self.spec] = self.spec.open()
        return _OPEN[self.spec]

    def __call__(self, document: Document, sha: Optional[str]) -> int:
        return store_counter(self._store())(document, sha)

    def delete(self, doc_id: str) -> None:
        self._store().delete(doc_id)
