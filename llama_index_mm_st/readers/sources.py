"""Turn what the caller passes (files, folders, URLs, bytes, lists of these) into a lazy stream of sources.

Paths go through the one folder walker (``walk.py``), whose rules the CLI shares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Iterator, Sequence, Union

from ..errors import ImageLoadError, PathError
from ..fetch import is_url, unsupported_scheme, url_of
from .report import IgnoredPath
from .walk import WalkedFile, WalkPolicy, WalkTally, walk_path

SourceItem = Union[str, PurePath, bytes, bytearray, memoryview]
SOURCE_TYPES_HELP = (
    "a file or folder path (str or Path), an http(s) URL (with allow_urls=True), bytes, or a list of these"
)


@dataclass(frozen=True)
class Source:
    """One input to read. ``key`` is the stable part of the document id: the path relative to the folder
    being read (or its absolute path, if the reader is asked for absolute ids), the absolute path of a file
    given directly, or the URL; ``None`` for bytes, whose key comes from their content. ``label`` names the
    source in errors."""

    label: str
    key: str | None
    path: Path | None = None
    url: str | None = None
    data: bytes | None = field(default=None, repr=False)
    siblings: frozenset[str] | None = field(default=None, repr=False)
    """Names in the file's folder when a walk listed it (shared by the folder's sources), for caption lookups."""


WalkItem = Union[Source, IgnoredPath, PathError, ImageLoadError]


def check_sources(items: object, allow_urls: bool) -> list[SourceItem]:
    """Validate the caller's input before any work: a list of known types (a wrong type is a bug in
    the caller: ``TypeError``). A source that is refused by policy (a ``file://`` URL, a URL while URL
    reading is off) is not an error here: ``expand`` reports it by name and the other sources are read."""
    listed = list(items) if isinstance(items, (list, tuple)) else [items]
    for position, item in enumerate(listed):
        if not isinstance(item, (bytes, bytearray, memoryview, PurePath, str)):
            raise TypeError(
                f"source at position {position} has type {type(item).__name__}; accepted: {SOURCE_TYPES_HELP}"
            )
    return listed  # type: ignore[return-value]


def refusal(item: str, allow_urls: bool, local: bool = True) -> ImageLoadError | None:
    """Why a string source is refused by policy, naming it as given; None when it may be read. On another
    file system (``local=False``, fsspec) a path may carry its protocol (``s3://``): not judged here."""
    if not local and unsupported_scheme(item) is not None:
        return None
    try:
        url = url_of(item, item)
    except ImageLoadError as refused:  # a file:// URL, or a scheme other than http(s)
        return refused
    if url is not None and not allow_urls:
        return ImageLoadError(item, "URL reading is off: ImageReader(allow_urls=True) reads http(s) URLs")
    return None


def expand(
    items: Sequence[SourceItem],
    policy: WalkPolicy,
    absolute_keys: bool = False,
    tally: WalkTally | None = None,
    local: bool = True,
    allow_urls: bool = True,
) -> Iterator[WalkItem]:
    """Sources in input order, folders expanded in sorted order. A file found in a folder is keyed by its
    path relative to that folder, or by its absolute path with ``absolute_keys``. With ``local=False``
    (a path on another fsspec file system, from ``SimpleDirectoryReader``) paths are taken as files as given.
    A refused source (``refusal``) comes out as its ``ImageLoadError``, in its place."""
    for position, item in enumerate(items):
        refused = refusal(item, allow_urls, local) if isinstance(item, str) else None
        if refused is not None:
            yield refused
        elif isinstance(item, (bytes, bytearray, memoryview)):
            yield Source(label=f"bytes at position {position}", key=None, data=bytes(item))
        elif isinstance(item, str) and is_url(item):
            yield Source(label=item, key=item, url=item)
        elif not local:
            path = Path(item)
            yield Source(label=str(item), key=path.as_posix(), path=path)
        else:
            for walked in walk_path(item, policy, tally):
                yield source_of(walked, absolute_keys) if isinstance(walked, WalkedFile) else walked


def source_of(walked: WalkedFile, absolute_keys: bool) -> Source:
    """The source a walked file is read as, keyed by its relative path (or absolute, ``absolute_keys``)."""
    path = walked.path
    key = str(path) if absolute_keys else walked.rel
    return Source(label=str(path), key=key, path=path, siblings=walked.siblings)
