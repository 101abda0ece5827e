"""On-disk cache of pixels the reader had to produce or fetch: rendered PDF pages, frames of animated
images, and downloaded or in-memory images. Documents point at these files (``image_path``), so the
embedding reads a PNG instead of rendering again, and no document carries pixels.

Entries are keyed by content: ``<root>/<sha[:2]>/<sha256 of the source>/<name>``. A changed file has a
new hash and so new entries; an unchanged one hits the cache on every read. Writes go to a temporary file
that is renamed into place, so a crash or a concurrent reader never sees half a file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import platformdirs
from PIL import Image

PNG_COMPRESS_LEVEL = 1
"""Fast zlib level: rendered pages are large and written once, read once by the embedding."""


def default_cache_dir() -> Path:
    """``$MMST_CACHE_DIR`` if set, else the platform's user cache folder (e.g. ``~/.cache/llama-index-mm-st``)."""
    env = os.environ.get("MMST_CACHE_DIR")
    return Path(env) if env else Path(platformdirs.user_cache_dir("llama-index-mm-st")) / "renders"


class RenderCache:
    """Content-keyed files under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, sha256: str, name: str) -> Path:
        return self.root / sha256[:2] / sha256 / name

    def put_png(self, target: Path, image: Image.Image) -> None:
        self._atomic(target, lambda handle: image.save(handle, format="PNG", compress_level=PNG_COMPRESS_LEVEL))

    def put_bytes(self, target: Path, data: bytes) -> None:
        self._atomic(target, lambda handle: handle.write(data))

    @staticmethod
    def _atomic(target: Path, write) -> None:  # type: ignore[no-untyped-def]
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=target.suffix)
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise
