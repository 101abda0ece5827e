"""Where the read tasks get the resume rule's counts from (the rule itself is ``ingest.resume_action``).

- ``SnapshotCounts``: the driver writes (an embedded Edge store, one process), so tasks can't ask the
  store; they get the (document, hash) pairs of the listed files, read once by the driver before the
  job (``ingest.StoredDocuments``: two payload keys per point, no node rebuilt).
- ``ServerCounts``: actors write to a Qdrant server, which every task can ask for its own files, as
  ``mmst index`` asks; a changed document's old points are deleted there, before its new ones exist.
"""

from __future__ import annotations

from typing import Sequence

from ..ingest import StoredDocuments
from ..store import MultimodalQdrantStore
from .embed import StoreSpec


class SnapshotCounts:
    """The driver's snapshot of what the store holds of the listed files."""

    deletes_here = False

    def __init__(self, stored: StoredDocuments) -> None:
        self.stored = stored

    def for_files(self, paths: Sequence[str]) -> StoredDocuments:
        return self.stored

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

    def for_files(self, paths: Sequence[str]) -> StoredDocuments:
        return StoredDocuments.of_files(self._store(), paths)

    def delete(self, doc_id: str) -> None:
        self._store().delete(doc_id)
