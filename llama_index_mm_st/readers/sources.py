"""Turn what the caller passes (files, folders, URLs, bytes, lists of these) into a lazy stream of sources.

Folders are walked lazily, one directory listing at a time and in sorted order, so the order (and so
the report's positions) is the same on every read and memory does not grow with the folder's size.
A symbolic link whose target lies outside the folder being read is not followed unless asked: reading
a folder must not wander into the rest of the disk. Link cycles are cut.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path, PurePath
from typing import Iterator, Sequence, Union

from ..errors import ImageLoadError
from ..fetch import is_url
from .report import IgnoredPath

SourceItem = Union[str, PurePath, bytes, bytearray, memoryview]
SOURCE_TYPES_HELP = (
    "a file or folder path (str or Path), an http(s) URL (with allow_urls=True), bytes, or a list of these"
)


@dataclass(frozen=True)
class Source:
    """One input to read. ``key`` is the stable part of the document id: the path relative to the folder
    being read, the absolute path of a file given directly, or the URL; ``None`` for bytes, whose key
    comes from their content. ``label`` names the source in errors."""

    label: str
    key: str | None
    path: Path | None = None
    url: str | None = None
    data: bytes | None = field(default=None, repr=False)
    siblings: frozenset[str] | None = field(default=None, repr=False)
    """Names in the file's folder when a walk listed it (shared by the folder's sources), for caption lookups."""


@dataclass(frozen=True)
class WalkPolicy:
    """Which files a folder walk yields. Patterns are fnmatch-style, tried against the path relative to
    the folder (``*`` also crosses ``/``) and against the file name."""

    extensions: frozenset[str]
    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    recursive: bool = True
    exclude_hidden: bool = True
    follow_external_links: bool = False
    prune: frozenset[str] = frozenset()
    """Real paths of folders never walked (the reader's own cache, if it lies inside a folder being read)."""

    def excluded(self, rel: str, name: str) -> bool:
        if self.exclude_hidden and name.startswith("."):
            return True
        return any(fnmatch(rel, p) or fnmatch(name, p) for p in self.exclude)

    def wanted(self, rel: str, name: str) -> bool:
        if os.path.splitext(name)[1].lower() not in self.extensions:
            return False
        return self.include is None or any(fnmatch(rel, p) or fnmatch(name, p) for p in self.include)


WalkItem = Union[Source, IgnoredPath, ImageLoadError]


def check_sources(items: object, allow_urls: bool) -> list[SourceItem]:
    """Validate the caller's input before any work: a list of known types; URLs only when allowed."""
    listed = list(items) if isinstance(items, (list, tuple)) else [items]
    for position, item in enumerate(listed):
        if isinstance(item, (bytes, bytearray, memoryview, PurePath)):
            continue
        if not isinstance(item, str):
            raise TypeError(
                f"source at position {position} has type {type(item).__name__}; accepted: {SOURCE_TYPES_HELP}"
            )
        if is_url(item) and not allow_urls:
            raise ValueError(
                f"source at position {position} is a URL ({item}); URL reading is off: ImageReader(allow_urls=True)"
            )
    return listed  # type: ignore[return-value]


def expand(items: Sequence[SourceItem], policy: WalkPolicy) -> Iterator[WalkItem]:
    """Sources in input order, folders expanded in sorted order."""
    for position, item in enumerate(items):
        if isinstance(item, (bytes, bytearray, memoryview)):
            yield Source(label=f"bytes at position {position}", key=None, data=bytes(item))
        elif isinstance(item, str) and is_url(item):
            yield Source(label=item, key=item, url=item)
        elif os.path.isdir(item):
            yield from walk_folder(Path(os.path.abspath(item)), policy)
        else:
            path = Path(os.path.abspath(item))  # documents carry absolute paths: they outlive the working directory
            yield Source(label=str(item), key=path.as_posix(), path=path)


def walk_folder(root: Path, policy: WalkPolicy) -> Iterator[WalkItem]:
    """Files under ``root`` that the policy wants, keyed by their path relative to ``root``."""
    root_real = os.path.realpath(root)
    yield from _walk(root, "", root_real, policy, frozenset({root_real}))


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _walk(
    folder: Path, prefix: str, root_real: str, policy: WalkPolicy, ancestors: frozenset[str]
) -> Iterator[WalkItem]:
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda e: e.name)
        names = frozenset(entry.name for entry in entries)
    except OSError as exc:
        yield ImageLoadError(str(folder), f"cannot list folder ({exc.strerror or exc})")
        return
    for entry in entries:
        rel = prefix + entry.name
        if policy.excluded(rel, entry.name):
            continue
        if entry.is_symlink():
            target = os.path.realpath(entry.path)
            if not policy.follow_external_links and not _inside(target, root_real):
                yield IgnoredPath(
                    entry.path,
                    f"symbolic link to {target}, outside the folder being read; "
                    "not followed (follow_external_links=True follows it)",
                )
                continue
        if entry.is_dir():
            if not policy.recursive:
                continue
            real = os.path.realpath(entry.path)
            if real in policy.prune:
                continue
            if real in ancestors:
                yield IgnoredPath(entry.path, "link cycle: it leads back to a folder being walked")
                continue
            yield from _walk(Path(entry.path), rel + "/", root_real, policy, ancestors | {real})
        elif policy.wanted(rel, entry.name):
            yield Source(label=entry.path, key=rel, path=Path(entry.path), siblings=names)
