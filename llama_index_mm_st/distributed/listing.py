"""The driver's share of reading: list what the paths hold, without opening any file.

Media files are listed by the reader's own folder walk, so each ``Source`` keeps the key
``ImageReader`` gives it (its path relative to the folder named), and documents read from it on a
Ray worker are the very documents ``mmst index`` reads. Text files are listed by ``collect``'s walk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import ImageLoadError
from ..readers import ImageReader, supported_extensions
from ..readers.report import IgnoredPath
from ..readers.sources import Source, WalkPolicy, check_sources, expand
from ..cli.collect import _text_files, unsupported_files


@dataclass
class Listing:
    """Work units (one row per file) and what was refused before reading (with why)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)


def walk_policy(reader: ImageReader, cache_root: str) -> WalkPolicy:
    """The walk ``ImageReader.lazy_load_data`` makes, from the same reader fields."""
    return WalkPolicy(
        extensions=supported_extensions(),
        include=tuple(reader.include) if reader.include is not None else None,
        exclude=tuple(reader.exclude),
        recursive=reader.recursive,
        exclude_hidden=reader.exclude_hidden,
        follow_external_links=reader.follow_external_links,
        prune=frozenset({os.path.realpath(cache_root)}),
    )


def list_files(paths: Sequence[str], reader: ImageReader, cache_root: str) -> Listing:
    """One row per media or text file under ``paths``, in walk order; a missing path is an error."""
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(f"no such file or folder: {', '.join(missing)}")
    listing = Listing()
    media = [p for p in paths if os.path.isdir(p) or os.path.splitext(p)[1].lower() in supported_extensions()]
    for item in expand(check_sources(media, reader.allow_urls), walk_policy(reader, cache_root)):
        if isinstance(item, IgnoredPath):
            listing.ignored.append((item.path, item.reason))
        elif isinstance(item, ImageLoadError):
            listing.skipped.append((item.item, item.reason))
        else:
            listing.rows.append(media_row(item))
    listing.rows += [{"kind": "text", "label": str(path), "key": "", "path": str(path)} for path in _text_files(paths)]
    listing.skipped += unsupported_files(paths)
    return listing


def media_row(source: Source) -> dict[str, Any]:
    # The walk's shared folder listing (siblings) is dropped: per row it would ship the whole folder;
    # without it, caption lookups ask the file system, with the same answer.
    return {"kind": "media", "label": source.label, "key": source.key or "", "path": str(source.path)}


def media_source(row: dict[str, Any]) -> Source:
    """The ``Source`` a media row stands for, on the worker that reads it."""
    return Source(label=str(row["label"]), key=str(row["key"]) or None, path=Path(str(row["path"])))
