"""Files ``mmst index`` leaves out because of their type, so the summary can say so ("ignored: 3 .docx").

The readers skip such files silently inside folders; listing them tells the user why a ``.docx`` never
shows up in a search. The walk mirrors the readers' rule for hidden names: they are left out.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

from ..readers import supported_extensions
from .collect import TEXT_EXTENSIONS


def indexable(path: Path) -> bool:
    return path.suffix.lower() in supported_extensions() | TEXT_EXTENSIONS


def ignored_by_type(paths: Sequence[str]) -> list[Path]:
    """Every file under ``paths`` whose type no reader takes, in walk order."""
    return [path for path in _files(paths) if not indexable(path)]


def _files(paths: Iterable[str]) -> Iterable[Path]:
    for path in paths:
        if os.path.isfile(path):
            yield Path(path)
            continue
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            yield from (Path(root, name) for name in sorted(files) if not name.startswith("."))


def describe(files: Sequence[Path]) -> str:
    """``3 .docx, 1 .json, 1 (no extension)``: most common type first."""
    counts = Counter(path.suffix.lower() or "(no extension)" for path in files)
    return ", ".join(f"{count} {suffix}" for suffix, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
