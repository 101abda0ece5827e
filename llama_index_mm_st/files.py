"""Local files as the package meets them: one mapping from ``OSError`` to a reason in words, and the
checks that keep a special file (a FIFO would block the reader forever) or a name that is not UTF-8
from turning into an exception that stops a whole run.

The reader, the image decoder and the CLI's text reading all use these, so a file fails with the same
words wherever it is met.
"""

from __future__ import annotations

import codecs
import errno
import os
import stat
from pathlib import Path

from .errors import ImageLoadError, ItemError

_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def file_error_reason(exc: OSError) -> str:
    """Why opening, listing or reading a path failed, in words."""
    if isinstance(exc, FileNotFoundError):
        return "file not found (or a broken symbolic link)"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not a file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if exc.errno == errno.ELOOP:
        return "symbolic link loop (the link leads back to itself)"
    return f"unreadable ({exc.strerror or exc})"


def special_file_reason(mode: int) -> str:
    """Why a path that is neither a regular file nor a folder is not read."""
    for test, kind in _SPECIAL_KINDS:
        if test(mode):
            return f"{kind}, not a regular file"
    return "not a regular file"


def printable_path(path: str | bytes) -> str:
    """A path as text that can always be printed, logged and stored: bytes that are not UTF-8 (kept by
    ``os.fsdecode`` as surrogates) are shown as ``\\xNN`` escapes."""
    raw = path if isinstance(path, bytes) else path.encode("utf-8", "surrogateescape")
    return raw.decode("utf-8", "backslashreplace")


def valid_utf8(path: str) -> bool:
    """False when ``path`` holds bytes that are not UTF-8 (``os.fsdecode`` keeps them as surrogates)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def regular_file_size(path: str | os.PathLike[str], label: str,
                      error: type[ItemError] = ImageLoadError) -> int:
    """The size of a regular file; an ``error`` (``ImageLoadError`` unless given) naming ``label`` for
    anything else, before any ``open``: opening a FIFO blocks until a writer comes, which may be never."""
    try:
        status = os.stat(path)
    except OSError as exc:
        raise error(label, file_error_reason(exc)) from None
    if stat.S_ISDIR(status.st_mode):
        raise error(label, "is a directory, not a file")
    if not stat.S_ISREG(status.st_mode):
        raise error(label, special_file_reason(status.st_mode))
    return status.st_size


_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def read_sidecar_text(path: Path) -> str:
    """A sidecar's text (a media file's transcript, an image's caption): UTF-8, or UTF-16/UTF-8 marked
    by a byte-order mark. ``UnicodeDecodeError`` for anything else, so the caller names the file instead
    of indexing replacement characters (and ``OSError`` for a file that can't be read)."""
    data = path.read_bytes()
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding)
    return data.decode("utf-8")


def undecodable_text(exc: UnicodeDecodeError) -> str:
    """Why a sidecar is not text, in words that point at the bad byte."""
    return f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
