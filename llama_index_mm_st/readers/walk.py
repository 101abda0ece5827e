"""One folder walker with one set of rules, for the reader and for ``mmst index``'s text files alike.

Folders are walked lazily, one directory listing at a time and in sorted order, so the order (and so
the report's positions) is the same on every read and memory does not grow with the folder's size.

Rules, in the order they apply to each entry:

- a hidden name (``.x``) or an ``exclude`` glob is left out silently: the caller asked for that;
- a name that is not valid UTF-8 is a ``PathError``: LlamaIndex hashes paths as UTF-8 and stores them
  in JSON, so such a file can never become a document (its id, from ``stable_id``, would be fine);
- a symbolic link whose target lies outside the folder being read is an ``IgnoredPath`` unless
  ``follow_external_links``: reading a folder must not wander into the rest of the disk;
- a link loop, a broken link, a FIFO, socket or device, or a path that cannot be examined is a
  ``PathError`` naming it, never an exception that stops the walk (opening a FIFO would block forever);
- a folder is walked (link cycles back to a folder being walked are cut and reported);
- a regular file is yielded when its extension is wanted; otherwise its extension is counted in
  ``WalkTally.ignored_types`` (e.g. ``{".docx": 3}``), so summaries can say what was passed over.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Iterator, Union

from ..errors import PathError
from ..fetch import url_of
from ..files import file_error_reason, printable_path, special_file_reason, valid_utf8
from .report import IgnoredPath

NO_EXTENSION = "(no extension)"
"""The key ``WalkTally.ignored_types`` counts files without an extension under."""

@dataclass(frozen=True)
class WalkPolicy:
    """Which files a walk yields. Patterns are fnmatch-style, tried against the path relative to the
    folder (``*`` also crosses ``/``) and against the file name."""

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

    def wanted_type(self, name: str) -> bool:
        return os.path.splitext(name)[1].lower() in self.extensions

    def included(self, rel: str, name: str) -> bool:
        return self.include is None or any(fnmatch(rel, p) or fnmatch(name, p) for p in self.include)


@dataclass
class WalkTally:
    """What a walk passed over without reporting each file: regular files of an unwanted type, by extension."""

    ignored_types: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class WalkedFile:
    """A regular file to read. ``rel`` is its path relative to the folder walked (its absolute path when
    it was named directly); ``siblings`` are the names in its folder when a walk listed them."""

    path: Path
    rel: str
    siblings: frozenset[str] | None = None
    named_directly: bool = False


WalkItem = Union[WalkedFile, IgnoredPath, PathError]


def _not_utf8(path: str) -> PathError:
    return PathError(
        printable_path(path), "the name is not valid UTF-8, so it cannot be stored as a document; rename it"
    )


def url_refusal(item: str) -> PathError | None:
    """Why a URL given where a path is read is refused, under the caller's own string; None for a path."""
    try:
        url = url_of(item, item, PathError)
    except PathError as refused:  # a file:// URL, or a scheme other than http(s)
        return refused
    if url is not None:
        return PathError(item, "a URL is not a file or folder: this reads local paths (download it first)")
    return None


def _stat_error(path: str, exc: OSError, is_link: bool) -> PathError:
    """A path that ``os.stat`` (which follows links) refused: say which kind of breakage it is."""
    if is_link and isinstance(exc, FileNotFoundError):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return PathError(printable_path(path), f"broken symbolic link (its target {printable_path(target)} does not exist)")
    return PathError(printable_path(path), file_error_reason(exc))


def _special(path: str, mode: int) -> PathError:
    return PathError(printable_path(path), special_file_reason(mode))


def _mode(entry: os.DirEntry[str], is_link: bool) -> int:
    """The entry's file type bits. A link is followed (ELOOP and ENOENT surface here); for anything else
    the type the listing already gave is used, so a plain folder costs no ``stat`` per file."""
    if is_link:
        return entry.stat().st_mode
    if entry.is_dir(follow_symlinks=False):
        return stat.S_IFDIR
    if entry.is_file(follow_symlinks=False):
        return stat.S_IFREG
    return entry.stat(follow_symlinks=False).st_mode


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def walk_path(item: str | os.PathLike[str], policy: WalkPolicy, tally: WalkTally | None = None) -> Iterator[WalkItem]:
    """A path the caller named: a folder is walked; a file is yielded whatever its extension (the caller
    chose it), unless it cannot be read as a file at all. A string written as a URL is not a path: it is
    named as given (``url_refusal``), not as the working directory joined to a mangled copy of it."""
    refused = url_refusal(item) if isinstance(item, str) else None
    if refused is not None:
        yield refused
        return
    path = os.path.abspath(item)  # documents carry absolute paths: they outlive the working directory
    if not valid_utf8(path):
        yield _not_utf8(path)
        return
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        yield _stat_error(path, exc, os.path.islink(path))
        return
    if stat.S_ISDIR(mode):
        yield from walk_folder(Path(path), policy, tally)
    elif stat.S_ISREG(mode):
        yield WalkedFile(Path(path), Path(path).as_posix(), named_directly=True)
    else:
        yield _special(path, mode)


def walk_folder(root: Path, policy: WalkPolicy, tally: WalkTally | None = None) -> Iterator[WalkItem]:
    """Files under ``root`` that the policy wants, keyed by their path relative to ``root``."""
    root_real = os.path.realpath(root)
    yield from _walk(root, "", root_real, policy, frozenset({root_real}), tally or WalkTally())


def _walk(
    folder: Path, prefix: str, root_real: str, policy: WalkPolicy, ancestors: frozenset[str], tally: WalkTally
) -> Iterator[WalkItem]:
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda e: e.name)
    except OSError as exc:
        yield PathError(printable_path(str(folder)), f"cannot list folder ({file_error_reason(exc)})")
        return
    names = frozenset(entry.name for entry in entries)
    for entry in entries:
        rel = prefix + entry.name
        if policy.excluded(rel, entry.name):
            continue
        if not valid_utf8(entry.name):
            yield _not_utf8(entry.path)
            continue
        is_link = entry.is_symlink()
        if is_link:
            target = os.path.realpath(entry.path)
            if not policy.follow_external_links and not _inside(target, root_real):
                yield IgnoredPath(
                    entry.path,
                    f"symbolic link to {printable_path(target)}, outside the folder being read; "
                    "not followed (follow_external_links=True follows it)",
                )
                continue
        try:
            mode = _mode(entry, is_link)
        except OSError as exc:
            yield _stat_error(entry.path, exc, is_link)
            continue
        if stat.S_ISDIR(mode):
            if not policy.recursive:
                continue
            real = os.path.realpath(entry.path)
            if real in policy.prune:
                continue
            if real in ancestors:
                yield IgnoredPath(entry.path, "link cycle: it leads back to a folder being walked")
                continue
            yield from _walk(Path(entry.path), rel + "/", root_real, policy, ancestors | {real}, tally)
        elif not stat.S_ISREG(mode):
            yield _special(entry.path, mode)
        elif not policy.wanted_type(entry.name):
            tally.ignored_types[os.path.splitext(entry.name)[1].lower() or NO_EXTENSION] += 1
        elif policy.included(rel, entry.name):
            yield WalkedFile(Path(entry.path), rel, siblings=names)
