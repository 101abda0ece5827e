"""A collection's relevance statistics as the store keeps them: stored with it, kept up to date.

The sample itself is pure (``store/background.py``): per dense vector, the ids of a bottom-k sample of
the points. This is its I/O. The sample is read once per process (at the first write or relevance
query), from the collection's metadata (``METADATA_KEY``: the ids per vector, their thresholds, and
how many points the collection held when they were saved); when that record is missing or the
collection changed since (another process wrote it, or a crash came before the record was saved),
the ids of every point holding each vector are read and hashed instead, once. From then on every
write and delete through this store updates it, and ``save`` (on ``flush`` and ``close``) writes the
record back. The vectors of the members are read from the collection when a background is fitted.

One ``Statistics`` per collection as this process holds it (``Backend.shared_state``): every store
object on an Edge folder shares it.
"""

from __future__ import annotations

import threading
from typing import Any, Mapping, Optional, Sequence

from qdrant_client import models

from llama_index_mm_st.store.background import DEFAULT_CAPACITY, Samples, VectorSample, point_hash
from llama_index_mm_st.store.filters import all_of
from llama_index_mm_st.store.relevance import RelevanceModel
from llama_index_mm_st.store.schema import SPARSE_VECTOR_NAME

METADATA_KEY = "mmst_relevance"
"""The collection metadata key of the saved sample: ``{"points": n, "samples": {vector: {"tau", "ids"}}}``."""
CALIBRATION_KEY = "mmst_calibration"
"""The collection metadata key of the fitted relevance model (``store.calibrate``)."""
_SHARED_KEY = "relevance_statistics"


def statistics_of(backend: Any) -> "Statistics":
    """The collection's statistics, made on first use (one per collection in this process)."""
    shared = backend.shared_state
    found = shared.get(_SHARED_KEY)
    if found is None:
        found = shared[_SHARED_KEY] = Statistics(backend)
    return found


class Statistics:
    """Per dense vector, a bottom-k sample of the collection's points and its background."""

    def __init__(self, backend: Any, capacity: int = DEFAULT_CAPACITY) -> None:
        self._backend = backend
        self._capacity = capacity
        self._samples: Optional[Samples] = None  # None: not read in this process yet
        self._dirty = False
        self._model: Optional[RelevanceModel] = None
        self._lock = threading.RLock()

    # ------------------------------------------------------------ kept up to date

    def written(self, points: Sequence[Any], names: Sequence[str]) -> None:
        """Points just written (each with the dense vectors it holds now)."""
        with self._lock:
            samples = self._ensure(names)
            for point in points:
                samples.offer(str(point.id), point.dense if point.sparse is None else (*point.dense, SPARSE_VECTOR_NAME))
            self._dirty = True

    def before_delete(self, chosen: Optional[models.Filter], names: Sequence[str]) -> None:
        """The points ``chosen`` (None: all) are about to be deleted: those in the sample leave it."""
        with self._lock:
            if chosen is None:
                self._samples = Samples(self._capacity)
                self._dirty = True
                return
            samples = self._ensure(names)
            members = samples.member_ids()
            if members:
                # The cheaper of two reads: the chosen points' own ids when they are fewer than the sample
                # (a document's delete: a few points), else the sample's members among them (a broad filter).
                if self._backend.count(chosen) <= len(members):
                    gone = [hit.id for hit in self._backend.scroll(chosen, payload=False)]
                else:
                    sampled = models.Filter(must=[models.HasIdCondition(has_id=sorted(members))])
                    gone = [hit.id for hit in self._backend.scroll(all_of([chosen, sampled]), payload=False)]
                samples.discard(point_id for point_id in gone if point_id in members)
            self._dirty = True

    def reset(self) -> None:
        """A new, empty collection."""
        with self._lock:
            self._samples = Samples(self._capacity)
            self._model = None
            self._dirty = True

    def save(self) -> None:
        """Write the sample's record into the collection's metadata, when it changed since it was read."""
        with self._lock:
            if not self._dirty or self._samples is None or not self._backend.exists:
                return
            metadata = self._backend.read_metadata()
            metadata[METADATA_KEY] = {"points": self._backend.count(None), "samples": self._samples.to_dict()}
            self._backend.write_metadata(metadata)
            self._dirty = False

    # ------------------------------------------------------------ read

    def backgrounds(self, names: Sequence[str]) -> dict[str, Any]:
        """Each named vector's background (a vector no point holds has none): ``Background`` for a dense
        vector, ``WordBackground`` for BM25."""
        with self._lock:
            found = self._ensure(names).backgrounds(self._fetch)
        return {name: found[name] for name in names if name in found}

    def model(self) -> RelevanceModel:
        """The relevance model: fitted maps saved by ``store.calibrate``, else the prior."""
        with self._lock:
            if self._model is None:
                saved = self._backend.read_metadata().get(CALIBRATION_KEY) if self._backend.exists else None
                self._model = RelevanceModel.from_dict(saved) if isinstance(saved, Mapping) else RelevanceModel()
            return self._model

    def set_model(self, model: RelevanceModel) -> None:
        with self._lock:
            metadata = self._backend.read_metadata()
            metadata[CALIBRATION_KEY] = model.to_dict()
            self._backend.write_metadata(metadata)
            self._model = model

    def _fetch(self, ids: Sequence[str], name: str) -> dict[str, Any]:
        hits = self._backend.retrieve(list(ids), with_vectors=True)
        if name == SPARSE_VECTOR_NAME:
            return {hit.id: list(hit.sparse[name].indices) for hit in hits if name in hit.sparse}
        return {hit.id: hit.dense[name] for hit in hits if name in hit.dense}

    def _ensure(self, names: Sequence[str]) -> Samples:
        if self._samples is None:
            self._samples = self._saved() or self._rebuild(names)
        return self._samples

    def _saved(self) -> Optional[Samples]:
        """The saved sample, if the collection still holds as many points as when it was saved."""
        if not self._backend.exists:
            return Samples(self._capacity)
        record = self._backend.read_metadata().get(METADATA_KEY)
        if not isinstance(record, Mapping) or record.get("points") != self._backend.count(None):
            return None
        try:
            return Samples.from_dict(record.get("samples") or {}, self._capacity)
        except (ValueError, AttributeError):
            return None

    def _rebuild(self, names: Sequence[str]) -> Samples:
        """The sample from the collection itself: every id holding each vector, hashed here."""
        samples = Samples(self._capacity)
        for name in names:
            holds = models.Filter(must=[models.HasVectorCondition(has_vector=name)])
            sample = VectorSample(self._capacity)
            for hit in self._backend.scroll(holds, payload=False):
                sample.offer(hit.id, point_hash(hit.id))
            if sample.members:
                samples.vectors[name] = sample
        self._dirty = True
        return samples
