"""The one walk of an ingestion job: what the paths hold, listed once, before anything is read.

Every path goes through the reader's one walker (``readers/walk.py``): links outside a folder, link
loops, broken links, FIFOs and undecodable names get the same treatment for text as for images and
media, and a bad entry is listed in ``skipped`` while the good files beside it go through. Each file
is listed with the reader that will read it (``FileItem.kind``); both runners (in-process and Ray)
read exactly these files.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Sequence

from ..errors import PathError
from ..readers import (
    MEDIA_SUFFIXES,
    NO_EXTENSION,
    IgnoredPath,
    ImageReader,
    WalkedFile,
    WalkPolicy,
    WalkTally,
    default_cache_dir,
    is_transcript_sidecar,
    supported_extensions,
    walk_path,
)
from ..readers.walk import url_refusal

TEXT_EXTENSIONS = frozenset({".txt", ".md", ".markdown", ".rst"})
SUBTITLE_EXTENSIONS = frozenset({".srt", ".vtt"})
"""Read only as the transcript of the audio or video file beside them (``MediaReader``)."""

FileKind = Literal["image", "media", "text"]
"""Who reads a file: ``ImageReader`` (images and PDFs), ``MediaReader`` (audio and video), or LlamaIndex's
text reader."""


@dataclass(frozen=True)
class FileItem:
    """One file to read, as the walk found it (picklable: a Ray read task gets it as is)."""

    walked: WalkedFile
    kind: FileKind

    @property
    def path(self) -> Path:
        return self.walked.path


@dataclass
class Listing:
    """The files to read, in walk order, and what the walk refused (``skipped``, with why), did not
    follow by policy (``not_followed``, with why) or passed over for its type (``ignored_types``, by
    extension, e.g. ``Counter({".docx": 3})``)."""

    files: list[FileItem] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    not_followed: list[tuple[str, str]] = field(default_factory=list)
    ignored_types: Counter = field(default_factory=Counter)


def walk_policy(reader: ImageReader) -> WalkPolicy:
    """The reader's walking rules, widened to text, audio, video and subtitle files (one walk finds all)."""
    return WalkPolicy(
        extensions=supported_extensions() | TEXT_EXTENSIONS | MEDIA_SUFFIXES | SUBTITLE_EXTENSIONS,
        include=tuple(reader.include) if reader.include is not None else None,
        exclude=tuple(reader.exclude),
        recursive=reader.recursive,
        exclude_hidden=reader.exclude_hidden,
        follow_external_links=reader.follow_external_links,
        prune=frozenset({os.path.realpath(reader.cache_dir or default_cache_dir())}),
    )


def list_inputs(paths: Sequence[str], reader: ImageReader) -> Listing:
    """Walk every path (file or folder) once; a path that does not exist is an error before any work."""
    missing = [p for p in paths if not os.path.lexists(p) and url_refusal(p) is None]  # a URL: named by the walk
    if missing:
        raise FileNotFoundError(f"no such file or folder: {', '.join(missing)}")
    listing = Listing()
    tally = WalkTally(listing.ignored_types)
    policy = walk_policy(reader)
    for path in paths:
        for item in walk_path(path, policy, tally):
            if isinstance(item, PathError):
                listing.skipped.append((item.item, item.reason))
            elif isinstance(item, IgnoredPath):
                listing.not_followed.append((item.path, item.reason))
            else:
                _sort_file(item, listing)
    return listing


def _sort_file(item: WalkedFile, listing: Listing) -> None:
    suffix = item.path.suffix.lower()
    sidecar = not item.named_directly and is_transcript_sidecar(item.path)
    if suffix in supported_extensions():
        listing.files.append(FileItem(item, "image"))
    elif suffix in MEDIA_SUFFIXES:
        listing.files.append(FileItem(item, "media"))
    elif suffix in SUBTITLE_EXTENSIONS:
        if not sidecar:  # subtitles without their media are not indexed on their own
            listing.ignored_types[suffix] += 1
    elif suffix in TEXT_EXTENSIONS:
        if item.named_directly or not (is_caption_sidecar(item.path) or sidecar):
            listing.files.append(FileItem(item, "text"))
    else:  # only a file named directly gets here: a walk counts other types in ignored_types itself
        listing.ignored_types[suffix or NO_EXTENSION] += 1


def is_caption_sidecar(path: Path) -> bool:
    """``photo.jpg.txt`` or ``photo.txt`` beside an image is that image's caption (ImageReader reads it),
    not a text document of its own."""
    if path.suffix.lower() != ".txt":
        return False
    inner = Path(path.stem)
    if inner.suffix.lower() in supported_extensions() and (path.parent / inner).exists():
        return True
    return any((path.parent / (path.stem + ext)).exists() for ext in supported_extensions())
