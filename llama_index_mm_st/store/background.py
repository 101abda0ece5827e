"""The statistics relevance needs, kept up to date on add and delete: pure, no I/O.

Per named vector, a *bottom-k sample*: the points whose hash is below a threshold ``tau``, where a
point's hash is a number in [0, 1) read from its id (a UUID5, whose bits are uniform). Such a sample
is a uniform random sample of the points holding the vector, and it is a function of *which* points
there are, not of the order they came in (``tau`` only takes powers of two, see ``_shrink``): two
engines holding the same points hold the same sample, a deleted point leaves it without biasing it,
and a re-added one comes back.

The BM25 vector is sampled the same way, for its terms: how many sampled points hold each term estimates
its IDF (``WordBackground``). A write costs a hash and a comparison per point: the sample holds ids only. Vectors are read from the
collection when the background is refitted (``VectorSample.background(fetch)``), only for members not
read before, and only once the sample has changed by more than ``REFIT_SHARE`` since the last fit, so
neither a bulk load nor a query after a small write pays for it. The point count is estimated as
``len(sample) / tau`` (exact while ``tau`` is 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Collection, Iterable, Mapping, Optional, Sequence

import numpy as np

from llama_index_mm_st.store.relevance import Background, WordBackground

DEFAULT_CAPACITY = 1024
"""The sample holds from about this many to twice as many points per vector (all of them below that)."""
REFIT_SHARE = 0.05
"""Refit a background once this share of its sample (or of the point count) has changed since the last fit."""

Fetch = Callable[[Sequence[str], str], Mapping[str, Sequence[float]]]
"""Point ids and a vector name -> those points' vectors of that name (missing points left out): a dense
vector's values, or a word vector's term indices."""
WORD_VECTORS = ("bm25",)
"""Sparse vectors sampled for their terms (``WordBackground``), beside the dense ones (``Background``)."""


def point_hash(point_id: str) -> float:
    """A point id (a UUID string) as a number in [0, 1): its first 32 bits."""
    return int(point_id[:8], 16) / 4294967296.0


@dataclass
class VectorSample:
    """One named vector's bottom-k sample: member point ids with their hashes, and the vectors read so far."""

    capacity: int = DEFAULT_CAPACITY
    tau: float = 1.0
    members: dict[str, float] = field(default_factory=dict)
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    _fitted: Optional[Any] = None
    _changes: int = 0

    def offer(self, point_id: str, hashed: float) -> None:
        """A point written with this vector (a new one, or a new version of one)."""
        if hashed >= self.tau:
            return
        self.members[point_id] = hashed
        self.vectors.pop(point_id, None)  # a new version: read again at the next fit
        self._changes += 1
        if len(self.members) > 2 * self.capacity:
            self._shrink()

    def discard(self, point_ids: Iterable[str]) -> None:
        """Points deleted (or rewritten without this vector)."""
        for point_id in point_ids:
            if self.members.pop(point_id, None) is not None:
                self.vectors.pop(point_id, None)
                self._changes += 1

    def _shrink(self) -> None:
        """Halve ``tau`` until at most twice the capacity is below it. Thresholds are powers of two, so
        after any order of additions ``tau`` is the largest one that holds at most ``2 * capacity``
        points: the sample is a function of the points alone."""
        while len(self.members) > 2 * self.capacity:
            self.tau /= 2
            self.members = {i: h for i, h in self.members.items() if h < self.tau}
        self.vectors = {i: v for i, v in self.vectors.items() if i in self.members}

    @property
    def count(self) -> int:
        """The points holding the vector: exact while every point is sampled, else estimated."""
        if self.tau >= 1.0:
            return len(self.members)
        return max(len(self.members), round(len(self.members) / self.tau))

    def background(self, name: str, fetch: Fetch) -> Optional[Any]:
        """The background of this vector's points, refitted when the sample has changed enough since
        the last fit (the members' vectors not read yet are read through ``fetch``)."""
        if not self.members:
            self._fitted = None
            return None
        if self._fitted is None or self._changes > REFIT_SHARE * len(self.members):
            missing = sorted(i for i in self.members if i not in self.vectors)
            if missing:
                found = fetch(missing, name)
                for point_id in missing:
                    vector = found.get(point_id)
                    if vector is None:  # gone from the collection: no longer a member
                        self.members.pop(point_id, None)
                    else:
                        self.vectors[point_id] = np.asarray(vector, dtype=np.int64 if name in WORD_VECTORS
                                                            else np.float32)
            if not self.members:
                self._fitted = None
                return None
            ids = sorted(self.members)  # a fixed order: the same sample gives the same floats
            if name in WORD_VECTORS:
                self._fitted = WordBackground.of([self.vectors[i].tolist() for i in ids], self.count)
            else:
                self._fitted = Background.of(np.stack([self.vectors[i] for i in ids]), self.count)
            self._changes = 0
        elif self._fitted.count != self.count:
            self._fitted = replace(self._fitted, count=self.count)
        return self._fitted

    def to_dict(self) -> dict[str, Any]:
        return {"tau": self.tau, "ids": sorted(self.members)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], capacity: int = DEFAULT_CAPACITY) -> "VectorSample":
        tau = data.get("tau")
        ids = data.get("ids")
        if not isinstance(tau, (int, float)) or not 0 < tau <= 1 or not isinstance(ids, list) \
                or not all(isinstance(i, str) for i in ids):
            raise ValueError("a vector sample is {'tau': a number in (0, 1], 'ids': [point ids]}")
        return cls(capacity, float(tau), {i: point_hash(i) for i in ids})


@dataclass
class Samples:
    """Every named vector's sample: what the store keeps beside its collection."""

    capacity: int = DEFAULT_CAPACITY
    vectors: dict[str, VectorSample] = field(default_factory=dict)

    def sample(self, name: str) -> VectorSample:
        if name not in self.vectors:
            self.vectors[name] = VectorSample(self.capacity)
        return self.vectors[name]

    def offer(self, point_id: str, held: Collection[str]) -> None:
        """A point written with the dense vectors ``held`` (names; and without any other)."""
        hashed = point_hash(point_id)
        for name in held:
            self.sample(name).offer(point_id, hashed)
        if len(held) < len(self.vectors):
            for name, sample in self.vectors.items():
                if name not in held and point_id in sample.members:
                    sample.discard([point_id])  # rewritten without this vector

    def discard(self, point_ids: Iterable[str]) -> None:
        ids = list(point_ids)
        for sample in self.vectors.values():
            sample.discard(ids)

    def member_ids(self) -> set[str]:
        return {point_id for sample in self.vectors.values() for point_id in sample.members}

    def backgrounds(self, fetch: Fetch) -> dict[str, Any]:
        out = {}
        for name, sample in sorted(self.vectors.items()):
            background = sample.background(name, fetch)
            if background is not None:
                out[name] = background
        return out

    def to_dict(self) -> dict[str, Any]:
        return {name: sample.to_dict() for name, sample in sorted(self.vectors.items())}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], capacity: int = DEFAULT_CAPACITY) -> "Samples":
        return cls(capacity, {str(name): VectorSample.from_dict(d, capacity) for name, d in data.items()})
