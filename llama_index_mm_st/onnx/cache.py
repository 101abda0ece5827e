"""The on-disk cache of exported graphs: built once, reused by later processes, never trusted blindly.

Layout: ``<root>/graphs/<key>/`` holds ``graph.onnx`` and ``meta.json``. The key hashes everything
the graph depends on (the checkpoint's files, what was exported, the exporter's and the runtime's
versions), so a changed checkpoint or an upgraded torch or ONNX Runtime builds a new entry.

- ``meta.json`` is written last and records the graph's size and sha256: an entry whose graph is
  missing, truncated or altered fails the check and is rebuilt, not loaded.
- A build happens under a file lock per key, in a temporary folder renamed into place: two processes
  starting at once build the graph once (the second waits, then finds it), and a crash mid-export
  leaves no entry that looks complete.
- A graph that does not export or does not verify is remembered as a failure (with its reason), so
  later processes don't spend the export again; an upgrade of any version in the key retries it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import platformdirs
from filelock import FileLock

from .fingerprint import file_sha256, write_text_atomic

GRAPH_FILE = "graph.onnx"
META_FILE = "meta.json"
CACHE_ENV = "MMST_ONNX_CACHE"


def default_cache_root() -> Path:
    """``$MMST_ONNX_CACHE`` if set, else the platform's user cache folder (``~/.cache/llama-index-mm-st/onnx``)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("llama-index-mm-st")) / "onnx"


class ExportFailed(Exception):
    """A graph could not be exported, or the exported graph does not reproduce torch's outputs."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class CachedGraph:
    """A verified entry: the graph file and what its builder recorded."""

    path: Path
    meta: Mapping[str, Any]


class GraphCache:
    """Exported graphs under ``root`` (see the module docstring)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_root()

    @property
    def graphs(self) -> Path:
        return self.root / "graphs"

    @property
    def memo(self) -> Path:
        """Where file hashes are remembered by their stat (``fingerprint.file_sha256``)."""
        return self.root / "hashes"

    def entry(self, key: str) -> Path:
        return self.graphs / key

    def load(self, key: str) -> CachedGraph | None:
        """The entry if it is complete and intact; None if absent, stale or corrupt.
        Raises ``ExportFailed`` for a remembered failure."""
        folder = self.entry(key)
        try:
            meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or meta.get("key") != key:
            return None
        if meta.get("failed"):
            raise ExportFailed(str(meta["failed"]))
        graph = folder / GRAPH_FILE
        try:
            intact = graph.stat().st_size == meta.get("graph_bytes") and \
                file_sha256(graph, self.memo) == meta.get("graph_sha256")
        except OSError:
            return None
        return CachedGraph(graph, meta) if intact else None

    def get_or_build(self, key: str, build: Callable[[Path], Mapping[str, Any]],
                     about: Mapping[str, Any] | None = None) -> CachedGraph:
        """The entry for ``key``, built by ``build(graph_path) -> meta`` if it is not there (or not intact).
        ``build`` raises ``ExportFailed`` to record that this graph can't be had; ``about`` (what the
        graph is, for people reading the cache) is recorded either way."""
        found = self.load(key)
        if found is not None:
            return found
        self.graphs.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.graphs / f"{key}.lock")):
            found = self.load(key)  # another process may have built it while we waited
            if found is not None:
                return found
            self._build(key, build, dict(about or {}))
        built = self.load(key)
        if built is None:
            raise ExportFailed(f"the cache entry {self.entry(key)} did not verify right after it was built")
        return built

    def _build(self, key: str, build: Callable[[Path], Mapping[str, Any]], about: dict[str, Any]) -> None:
        prefix = f".build-{key[:16]}-"
        for leftover in self.graphs.glob(prefix + "*"):  # a crashed build of this key (we hold its lock)
            shutil.rmtree(leftover, ignore_errors=True)
        shutil.rmtree(self.entry(key), ignore_errors=True)  # stale or corrupt
        staging = Path(tempfile.mkdtemp(dir=self.graphs, prefix=prefix))
        record: dict[str, Any] = {**about, "key": key, "built_at": time.time(), "builder_pid": os.getpid()}
        try:
            try:
                record.update(build(staging / GRAPH_FILE))
                graph = staging / GRAPH_FILE
                record["graph_bytes"] = graph.stat().st_size
                record["graph_sha256"] = file_sha256(graph)
            except ExportFailed as failure:
                for path in staging.iterdir():
                    path.unlink()
                record["failed"] = failure.reason
            write_text_atomic(staging / META_FILE, json.dumps(record, indent=1, sort_keys=True))
            os.replace(staging, self.entry(key))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
