"""The three kinds of evidence a hit carries, and their JSON shapes.

- ``Region``: a box on an image or a page, normalised to 0..1 of its width and height (x to the
  right, y down), with the 1-based ``page`` of a PDF page (None for an image or a video frame).
- ``Span``: a moment of audio or video, in seconds from the start of the recording.
- ``Passage``: character offsets ``[start, end)`` into the node's own text
  (``node.get_content(metadata_mode=MetadataMode.NONE)``).

Every kind has a ``score`` (higher is better; what it measures depends on the method, see each
localiser) and turns into the issue's JSON with ``to_dict()``; ``evidence_from_dict`` reads it back
(the remote clients and the CLI's ``--json`` rows use the same shape).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Optional, Sequence, Union

EvidenceKind = Literal["region", "span", "passage"]
EVIDENCE_KINDS: tuple[EvidenceKind, ...] = ("region", "span", "passage")


def _finite(value: float, what: str) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return number


@dataclass(frozen=True)
class Region:
    """A box ``(x0, y0, x1, y1)`` in 0..1 of the image or page (x right, y down); ``page`` is 1-based."""

    box: tuple[float, float, float, float]
    score: float
    page: Optional[int] = None

    def __post_init__(self) -> None:
        if len(self.box) != 4:
            raise ValueError(f"a region's box is (x0, y0, x1, y1), got {self.box!r}")
        x0, y0, x1, y1 = (min(1.0, max(0.0, _finite(v, "a box coordinate"))) for v in self.box)
        if x1 < x0 or y1 < y0:
            raise ValueError(f"a region's box must have x0 <= x1 and y0 <= y1, got {self.box!r}")
        object.__setattr__(self, "box", (x0, y0, x1, y1))
        object.__setattr__(self, "score", _finite(self.score, "a score"))

    @property
    def kind(self) -> EvidenceKind:
        return "region"

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return (x1 - x0) * (y1 - y0)

    def pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The box in pixels of an image of this size (PIL's ``crop`` box), at least one pixel wide and high."""
        x0, y0, x1, y1 = self.box
        left, top = min(int(math.floor(x0 * width)), width - 1), min(int(math.floor(y0 * height)), height - 1)
        right, bottom = max(int(math.ceil(x1 * width)), left + 1), max(int(math.ceil(y1 * height)), top + 1)
        return left, top, min(right, width), min(bottom, height)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "region", "box": [round(v, 4) for v in self.box], "page": self.page,
                "score": round(self.score, 6)}


@dataclass(frozen=True)
class Span:
    """A moment ``[start_s, end_s]`` of audio or video, in seconds."""

    start_s: float
    end_s: float
    score: float

    def __post_init__(self) -> None:
        start, end = _finite(self.start_s, "start_s"), _finite(self.end_s, "end_s")
        if start < 0 or end < start:
            raise ValueError(f"a span needs 0 <= start_s <= end_s, got {start}..{end}")
        object.__setattr__(self, "start_s", start)
        object.__setattr__(self, "end_s", end)
        object.__setattr__(self, "score", _finite(self.score, "a score"))

    @property
    def kind(self) -> EvidenceKind:
        return "span"

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "span", "start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3),
                "score": round(self.score, 6)}


@dataclass(frozen=True)
class Passage:
    """Characters ``[start, end)`` of the node's own text."""

    start: int
    end: int
    score: float

    def __post_init__(self) -> None:
        if isinstance(self.start, bool) or isinstance(self.end, bool) or int(self.start) != self.start \
                or int(self.end) != self.end:
            raise ValueError(f"a passage's offsets are integers, got {self.start!r}..{self.end!r}")
        if self.start < 0 or self.end < self.start:
            raise ValueError(f"a passage needs 0 <= start <= end, got {self.start}..{self.end}")
        object.__setattr__(self, "start", int(self.start))
        object.__setattr__(self, "end", int(self.end))
        object.__setattr__(self, "score", _finite(self.score, "a score"))

    @property
    def kind(self) -> EvidenceKind:
        return "passage"

    def text_of(self, text: str) -> str:
        """The passage's characters in ``text`` (the node's own text)."""
        return text[self.start:self.end]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "passage", "start": self.start, "end": self.end, "score": round(self.score, 6)}


Evidence = Union[Region, Span, Passage]
"""One piece of evidence: where in a hit it matched."""


def evidence_from_dict(data: Mapping[str, Any]) -> Evidence:
    """The evidence a ``to_dict()`` row describes (what the server sends and ``--json`` prints)."""
    kind = data.get("kind")
    try:
        if kind == "region":
            page = data.get("page")
            return Region(tuple(data["box"]), data["score"], None if page is None else int(page))  # type: ignore[arg-type]
        if kind == "span":
            return Span(data["start_s"], data["end_s"], data["score"])
        if kind == "passage":
            return Passage(data["start"], data["end"], data["score"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"evidence of kind {kind!r} is missing or has a bad field: {exc}") from None
    raise ValueError(f"evidence kind must be one of {list(EVIDENCE_KINDS)}, got {kind!r}")


def by_kind(items: Sequence[Evidence]) -> list[Evidence]:
    """Regions, then spans, then passages, each kind in the order given (a localiser's best first; text-layer
    lines before model regions, whose scores are on other scales)."""
    order = {kind: position for position, kind in enumerate(EVIDENCE_KINDS)}
    return sorted(items, key=lambda item: order[item.kind])


def best_first(items: Sequence[Evidence]) -> list[Evidence]:
    """Each kind best first, kinds in the order region, span, passage; equal scores keep their given order."""
    order = {kind: position for position, kind in enumerate(EVIDENCE_KINDS)}
    return sorted(items, key=lambda item: (order[item.kind], -item.score))


def clock(start_s: float, end_s: float) -> str:
    """A span as people read it: "1:04-1:12" (tenths of a second for a span under two seconds)."""
    def one(seconds: float, tenths: bool) -> str:
        minutes, rest = divmod(seconds, 60)
        return f"{int(minutes)}:{rest:04.1f}" if tenths else f"{int(minutes)}:{int(rest):02d}"

    tenths = end_s - start_s < 2
    return f"{one(start_s, tenths)}-{one(end_s if tenths else math.ceil(end_s), tenths)}"


def describe(piece: Evidence, text: str = "") -> str:
    """One piece of evidence in words: ``page 3, (0.12, 0.40)-(0.55, 0.62)``, ``1:04-1:12``, or a passage's
    characters (quoted from ``text``, the node's own text, when given)."""
    if isinstance(piece, Region):
        x0, y0, x1, y1 = piece.box
        where = f"({x0:.2f}, {y0:.2f})-({x1:.2f}, {y1:.2f})"
        return f"page {piece.page}, {where}" if piece.page is not None else where
    if isinstance(piece, Span):
        return clock(piece.start_s, piece.end_s)
    quote = " ".join(piece.text_of(text).split())
    return f"chars {piece.start}-{piece.end}" + (f' "{quote}"' if quote else "")
