"""What an ingestion job did, counted by file (a changed PDF is one replaced file, however many pages),
and the lines ``mmst index`` prints for it. Both runners fill it from the same per-document records
(``nodes.DocumentWork``), so ``mmst index`` and ``mmst index --ray`` print the same summary."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..readers.frames import DEFAULT_EVERY_S
from ..types import MODALITIES
from .listing import Listing
from .nodes import DocumentWork

ACTIONS = ("new", "unchanged", "replace")
NAMES_SHOWN = 10
"""File names a summary line lists before it says how many more."""


@dataclass
class IndexSummary:
    """What one job did; files are keyed by path."""

    added: Counter = field(default_factory=Counter)
    """Nodes added by modality (new documents' nodes only; a replaced file's are not "added")."""
    new_files: set[str] = field(default_factory=set)
    unchanged: set[str] = field(default_factory=set)
    replaced: set[str] = field(default_factory=set)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """Files, pages and nodes that could not be read or embedded, with why."""
    not_followed: list[tuple[str, str]] = field(default_factory=list)
    ignored: Counter = field(default_factory=Counter)
    """Files left out because of their type, by extension."""
    unreadable: dict[str, set[str]] = field(default_factory=dict)
    """Files left out because the model can't read their modality, by modality."""
    model_reads: tuple[str, ...] = ()
    framed: set[str] = field(default_factory=set)
    """Videos indexed as sampled frames (an image-only model)."""
    frame_every_s: float = DEFAULT_EVERY_S
    total: dict[str, int] = field(default_factory=dict)
    """What the store holds after the job, by modality."""
    written: int = 0
    """Points written by this job (new and replacing)."""
    pruned: bool = False
    """Whether the job removed files gone from its folders (``Indexer(prune=True)``, ``mmst index``'s default)."""
    removed: set[str] = field(default_factory=set)
    """Files whose documents were deleted because they are gone from the folders indexed."""
    missing_kept: set[str] = field(default_factory=set)
    """Files gone from the folders indexed whose documents were kept (append-only: ``--keep-missing``)."""

    @property
    def changed(self) -> bool:
        """Whether the job wrote or deleted anything (a store worth optimising afterwards)."""
        return bool(self.written or self.replaced or self.removed)

    def record(self, work: DocumentWork) -> None:
        """Count one document's work under its file."""
        if work.status == "unreadable" and work.needs is not None:
            self.unreadable.setdefault(work.needs, set()).add(work.file)
            return
        if work.framed:
            self.framed.add(work.file)
        if work.action is not None:
            {"unchanged": self.unchanged, "replace": self.replaced, "new": self.new_files}[work.action].add(work.file)

    def settle(self) -> None:
        """A file with any replaced (or new) document is reported as that, never also as unchanged;
        problems are listed in one order whatever order the runner met them in."""
        self.unchanged -= self.replaced | self.new_files
        self.new_files -= self.replaced
        self.skipped = sorted(set(self.skipped))
        self.not_followed = sorted(set(self.not_followed))


def _files(count: int) -> str:
    return f"{count} file{'' if count == 1 else 's'}"


def format_summary(summary: IndexSummary) -> list[str]:
    """The lines for stdout: what was added, replaced, left alone and ignored, and what the index holds."""
    added = ", ".join(f"{count} {m}" for m, count in sorted(summary.added.items()))
    lines = [
        f"added: {added} (from {_files(len(summary.new_files))})" if added else "added: nothing new",
        f"replaced (changed): {_files(len(summary.replaced))}"
        + (": " + ", ".join(sorted(Path(p).name for p in summary.replaced)) if summary.replaced else ""),
        f"unchanged (already indexed): {_files(len(summary.unchanged))}",
    ]
    if summary.removed:
        names = sorted(Path(p).name for p in summary.removed)
        more = f" and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else ""
        lines.append(f"removed: {_files(len(names))} no longer there: {', '.join(names[:NAMES_SHOWN])}{more}")
    elif summary.pruned:
        lines.append("removed: nothing (every indexed file is still there)")
    if summary.missing_kept:
        lines.append(f"kept (--keep-missing): {_files(len(summary.missing_kept))} no longer there, still in the index")
    lines.append("in the index: " + ", ".join(f"{summary.total.get(m, 0)} {m}" for m in MODALITIES))
    if summary.framed:
        lines.append(f"videos as frames (the model reads images, not video): {_files(len(summary.framed))}, "
                     f"one frame every {summary.frame_every_s:g} s")
    if summary.unreadable:
        kinds = ", ".join(f"{_files(len(files))} of {m}" for m, files in sorted(summary.unreadable.items()))
        lines.append(f"not indexed, the model can't read them (it reads {', '.join(summary.model_reads)}): {kinds}")
    if summary.ignored:
        by_count = sorted(summary.ignored.items(), key=lambda kv: (-kv[1], kv[0]))
        lines.append("ignored (type not indexed): " + ", ".join(f"{count} {suffix}" for suffix, count in by_count))
    return lines


def format_problems(summary: IndexSummary) -> list[str]:
    """The lines for stderr: files that could not be read, and paths the walk did not follow."""
    lines = []
    if summary.skipped:
        lines.append(f"skipped {_files(len(summary.skipped))}:")
        lines += [f"  {item}: {reason}" for item, reason in summary.skipped]
    if summary.not_followed:
        lines.append(f"not followed: {len(summary.not_followed)} path(s):")
        lines += [f"  {item}: {reason}" for item, reason in summary.not_followed]
    return lines


def empty_summary(listing: Listing, model_reads: tuple[str, ...], frame_every_s: Optional[float] = None) -> IndexSummary:
    """A summary that starts from what the walk found (``listing.Listing``)."""
    return IndexSummary(skipped=list(listing.skipped), not_followed=list(listing.not_followed),
                        ignored=Counter(listing.ignored_types), model_reads=model_reads,
                        frame_every_s=frame_every_s or DEFAULT_EVERY_S)
