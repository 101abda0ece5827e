"""The driver's share of reading: list what the paths hold, without opening any file.

Files are listed by ``mmst index``'s own walk (``cli.collect.walk_inputs``: the reader's walker, its
rules for links, special files and names, and its count of ignored types), so a Ray job sees exactly
the files ``mmst index`` would, and reads each one on a worker into the very documents it would make.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..cli.collect import walk_inputs
from ..readers import ImageReader
from ..readers.sources import Source


@dataclass
class Listing:
    """Work units (one row per file) and what the walk refused or passed over (with why)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    not_followed: list[tuple[str, str]] = field(default_factory=list)
    ignored_types: Counter = field(default_factory=Counter)


def list_files(paths: Sequence[str], reader: ImageReader) -> Listing:
    """One row per media or text file under ``paths``, in walk order; a missing path is an error."""
    media, texts, walked = walk_inputs(paths, reader)
    listing = Listing(skipped=list(walked.skipped), not_followed=list(walked.ignored),
                      ignored_types=Counter(walked.ignored_types))
    listing.rows += [{"kind": "media", "label": path, "key": path, "path": path} for path in media]
    listing.rows += [{"kind": "text", "label": str(path), "key": "", "path": str(path)} for path in texts]
    return listing


def media_source(row: dict[str, Any]) -> Source:
    """The ``Source`` a media row stands for, on the worker that reads it. Its key is the absolute path
    (the walk gives absolute paths), which is how ``mmst index`` keys its documents (``absolute_ids``)."""
    return Source(label=str(row["label"]), key=str(row["key"]), path=Path(str(row["path"])))
