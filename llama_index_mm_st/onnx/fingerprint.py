"""Content fingerprints of a checkpoint's files, so a cached graph is keyed by what it was built from.

Hashing a 600 MB checkpoint takes about half a second, on every process start. A file's hash is
therefore remembered under its (path, size, mtime, inode): a file that was not touched is not read
again, and any write changes the stat and so forces a new hash. The memo is one small file per
entry, written atomically, so concurrent processes need no lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterable

CHUNK_BYTES = 8 * 1024 * 1024
SKIPPED_DIRS = frozenset({".git", ".cache", "onnx", "openvino", "__pycache__"})
"""Folders of a checkpoint that don't feed the torch model (another runtime's exports, VCS data)."""


def file_sha256(path: Path, memo_dir: Path | None = None) -> str:
    """The sha256 of a file's content, remembered by its stat in ``memo_dir`` when given."""
    resolved = Path(os.path.realpath(path))
    stat = resolved.stat()
    memo = None
    if memo_dir is not None:
        token = f"{resolved}\0{stat.st_size}\0{stat.st_mtime_ns}\0{stat.st_ino}"
        memo = memo_dir / hashlib.sha1(token.encode("utf-8", "surrogateescape")).hexdigest()
        try:
            remembered = memo.read_text().strip()
        except OSError:
            remembered = ""
        if len(remembered) == 64:
            return remembered
    digest = hashlib.sha256()
    with open(resolved, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(block)
    value = digest.hexdigest()
    if memo is not None:
        write_text_atomic(memo, value)
    return value


def checkpoint_files(directory: Path) -> list[Path]:
    """The files of a checkpoint folder, in a stable order, leaving out other runtimes' exports."""
    found = []
    for root, dirs, files in os.walk(directory, followlinks=True):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith("."))
        found.extend(Path(root) / name for name in sorted(files) if not name.startswith("."))
    return found


def directory_fingerprint(directory: Path, memo_dir: Path | None = None) -> str:
    """One hash over a checkpoint folder: every file's relative path and content hash."""
    digest = hashlib.sha256()
    for path in checkpoint_files(directory):
        digest.update(str(path.relative_to(directory)).encode("utf-8", "surrogateescape") + b"\0")
        digest.update(file_sha256(path, memo_dir).encode() + b"\n")
    return digest.hexdigest()


def checkpoint_directory(name_or_path: str) -> Path | None:
    """The local folder of a checkpoint: the path itself, or a hub id's snapshot in the local cache
    (loading put it there). None when neither exists."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path.resolve()
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:
        return None
    try:
        return Path(snapshot_download(name_or_path, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None


def stable_hash(parts: Iterable[object]) -> str:
    """A sha256 over JSON-serialisable parts (a cache key)."""
    return hashlib.sha256(json.dumps(list(parts), sort_keys=True, default=str).encode()).hexdigest()


def write_text_atomic(target: Path, text: str) -> None:
    """Write a file so a concurrent reader sees the old content or the new, never half of it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
