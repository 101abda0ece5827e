"""What a read left out, so nothing is dropped silently.

``failures`` are bad inputs (corrupt, truncated, unreadable, over a limit, broken PDFs): each also raised
a ``SkippedItemsWarning``, and in ``on_error="raise"`` mode the first one stops the read instead.
``ignored`` are paths left out on purpose by policy (a link leading outside the folder being read):
they are not errors, but the caller can still see them. ``ignored_types`` counts files of other types.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..errors import ItemFailure


@dataclass(frozen=True)
class IgnoredPath:
    """A path the walk did not follow, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class ReadReport:
    """Counts and lists for one or more reads. Pass one to ``load_data(..., report=...)`` to collect
    several reads into it; ``ImageReader.last_report`` holds the report of the latest read."""

    sources: int = 0
    documents: int = 0
    failures: list[ItemFailure] = field(default_factory=list)
    ignored: list[IgnoredPath] = field(default_factory=list)
    ignored_types: Counter[str] = field(default_factory=Counter)
    """Files in walked folders left out for their type, by extension (``{".docx": 3}``)."""

    @property
    def ok(self) -> bool:
        """True when no input failed (ignored paths are policy, not failures)."""
        return not self.failures

    def summary(self) -> str:
        """One line for logs."""
        return (
            f"{self.sources} source(s), {self.documents} document(s), "
            f"{len(self.failures)} failed, {len(self.ignored)} ignored"
        )
