"""The statistics relevance needs, kept up to date on add and delete: pure, no I/O.

Per named vector, a *bottom-k sample*: the points whose hash is below a threshold ``tau``, where a
point's hash is a number in [0, 1) read from its id (a UUID5, whose bits are uniform). Such a sample
is a uniform random sample of the points holding the vector, and it is a function of *which* points
there are, not of the order they came in: two engines holding the same points hold the same sample,
a deleted point leaves it without biasing it, and a re-added one comes back. The store writes each
point's hash into its payload (``SAMPLE_KEY``), so the sample of a reopened collection is one filtered
read (``hash < tau``), and only ``tau`` per vector is recorded with the collection.

The sample holds about ``capacity`` to ``2 * capacity`` points once the vector has that many (all of
them before): when it passes twice the capacity, ``tau`` halves. The point count is estimated as ``len(sample) / tau`` (exact while ``tau`` is 1).
The mean and covariance are recomputed from the sample only when it has changed by more than
``REFIT_SHARE`` since the last fit, so a query after a small write costs nothing extra.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np

from llama_index_mm_st.store.relevance import Background

SAMPLE_KEY = "_sample"
"""Payload key holding a point's hash in [0, 1): what a reopened store reads its sample back by."""
DEFAULT_CAPACITY = 1024
REFIT_SHARE = 0.05
"""Refit the background once this share of the sample (or of the point count) has changed since the last fit."""


def point_hash(point_id: str) -> float:
    """A point id (a UUID string) as a number in [0, 1): its first 52 bits."""
    return int(point_id.replace("-", "")[:13], 16) / float(1 << 52)


@dataclass
class VectorSample:
    """One named vector's bottom-k sample: point id -> (hash, unit vector)."""

    capacity: int = DEFAULT_CAPACITY
    tau: float = 1.0
    members: dict[str, tuple[float, np.ndarray]] = field(default_factory=dict)
    _fitted: Optional[Background] = None
    _changes: int = 0

    def offer(self, point_id: str, hashed: float, vector: Sequence[float]) -> None:
        """A point written with this vector (a new one, or a new version of one): kept if it is in the sample."""
        if hashed >= self.tau:
            self.members.pop(point_id, None)  # cannot be in it, but a changed tau is no reason to trust that
            return
        self.members[point_id] = (hashed, np.asarray(vector, dtype=np.float32))
        self._changes += 1
        if len(self.members) > 2 * self.capacity:
            self._shrink()

    def discard(self, point_ids: Iterable[str]) -> None:
        """Points deleted (or rewritten without this vector)."""
        for point_id in point_ids:
            if self.members.pop(point_id, None) is not None:
                self._changes += 1

    def _shrink(self) -> None:
        """Halve ``tau`` until at most twice the capacity is below it. Thresholds are powers of two, so
        after any order of additions ``tau`` is the largest one that holds at most ``2 * capacity``
        points: the sample is a function of the points alone."""
        while len(self.members) > 2 * self.capacity:
            self.tau /= 2
            self.members = {i: m for i, m in self.members.items() if m[0] < self.tau}

    @property
    def count(self) -> int:
        """The points holding the vector: exact while every point is sampled, else estimated."""
        if self.tau >= 1.0:
            return len(self.members)
        return max(len(self.members), round(len(self.members) / self.tau))

    def background(self) -> Optional[Background]:
        """The mean and covariance of the sample, refitted when it has changed enough since the last fit."""
        if not self.members:
            return None
        stale = self._fitted is None or self._changes > REFIT_SHARE * max(len(self.members), 1)
        if stale:
            ids = sorted(self.members)  # a fixed order: the same sample gives the same floats
            self._fitted = Background.of(np.stack([self.members[i][1] for i in ids]), self.count)
            self._changes = 0
        elif self._fitted is not None and self._fitted.count != self.count:
            self._fitted = replace(self._fitted, count=self.count)
        return self._fitted


@dataclass
class Samples:
    """Every named vector's sample; what the store keeps beside its collection."""

    capacity: int = DEFAULT_CAPACITY
    vectors: dict[str, VectorSample] = field(default_factory=dict)

    def sample(self, name: str) -> VectorSample:
        if name not in self.vectors:
            self.vectors[name] = VectorSample(self.capacity)
        return self.vectors[name]

    def offer(self, point_id: str, vectors: Mapping[str, Sequence[float]]) -> float:
        """A point written with these dense vectors; returns its hash (for its payload)."""
        hashed = point_hash(point_id)
        for name, vector in vectors.items():
            self.sample(name).offer(point_id, hashed, vector)
        for name, sample in self.vectors.items():
            if name not in vectors and point_id in sample.members:
                sample.discard([point_id])  # rewritten without this vector
        return hashed

    def discard(self, point_ids: Iterable[str]) -> None:
        ids = list(point_ids)
        for sample in self.vectors.values():
            sample.discard(ids)

    def member_ids(self) -> set[str]:
        return {point_id for sample in self.vectors.values() for point_id in sample.members}

    def backgrounds(self) -> dict[str, Background]:
        out = {}
        for name, sample in self.vectors.items():
            background = sample.background()
            if background is not None:
                out[name] = background
        return out

    def taus(self) -> dict[str, float]:
        """What is recorded with the collection: each vector's threshold."""
        return {name: sample.tau for name, sample in sorted(self.vectors.items())}
