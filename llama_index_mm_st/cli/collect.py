"""Turn the paths given to ``mmst index`` into documents: images and PDF pages through ``ImageReader``,
text and markdown through LlamaIndex's ``SimpleDirectoryReader``.

Document ids are keyed by absolute path (plus page or part), so two folders that both hold
``a.jpg`` never overwrite each other, and reading unchanged files again gives the same ids.
"""

from __future__ import annotations

import hashlib
import os
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from llama_index.core import SimpleDirectoryReader
from llama_index.core.schema import Document

from ..errors import ItemFailure, SkippedItemsWarning
from ..readers import ImageReader, ReadReport, supported_extensions

TEXT_EXTENSIONS = frozenset({".txt", ".md", ".markdown", ".rst"})
ID_NAMESPACE = uuid.UUID("6a1d1f0e-58f5-4d0a-9d8e-3f1f7f0b8e21")


@dataclass
class Collected:
    """What the paths held: documents to index, and files that could not be read (with why)."""

    documents: list[Document] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)


def stable_id(*parts: object) -> str:
    """A UUID (Qdrant accepts these as point ids) derived from the parts."""
    return str(uuid.uuid5(ID_NAMESPACE, "\x1f".join(str(p) for p in parts)))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def collect(paths: Sequence[str], reader: ImageReader) -> Collected:
    """Read every path (file or folder); a missing path is an error, a bad file is skipped and listed."""
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(f"no such file or folder: {', '.join(missing)}")
    collected = Collected()
    media = [p for p in paths if os.path.isdir(p) or Path(p).suffix.lower() in supported_extensions()]
    if media:
        _read_media(media, reader, collected)
    texts = list(_text_files(paths))
    if texts:
        _read_texts(texts, collected)
    collected.skipped += unsupported_files(paths)
    return collected


def unsupported_files(paths: Sequence[str]) -> list[tuple[str, str]]:
    """Files named directly whose type ``mmst index`` does not read, with why."""
    return [(path, f"unsupported file type {Path(path).suffix or '(none)'}") for path in paths
            if os.path.isfile(path) and Path(path).suffix.lower() not in supported_extensions() | TEXT_EXTENSIONS]


def _read_media(paths: Sequence[str], reader: ImageReader, collected: Collected) -> None:
    report = ReadReport()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedItemsWarning)  # reported in the summary instead
        documents = reader.load_data(list(paths), report=report)
    for document in documents:
        collected.documents.append(key_media_document(document))
    collected.skipped += [(failure.item, _reason(failure)) for failure in report.failures]
    collected.ignored += [(ignored.path, ignored.reason) for ignored in report.ignored]


def key_media_document(document: Document) -> Document:
    """Give an image or PDF-page document its index id (absolute path, page, frame), in place."""
    file_path = os.path.abspath(document.metadata.get("file_path") or document.image_path or "")
    document.id_ = stable_id(file_path, document.metadata.get("page", ""), document.metadata.get("frame", ""))
    document.metadata["file_path"] = file_path
    return document


def _reason(failure: ItemFailure) -> str:
    return str(getattr(failure.error, "reason", None) or failure.error)


def is_caption_sidecar(path: Path) -> bool:
    """``photo.jpg.txt`` or ``photo.txt`` beside an image is that image's caption (ImageReader reads it),
    not a text document of its own."""
    if path.suffix.lower() != ".txt":
        return False
    inner = Path(path.stem)
    if inner.suffix.lower() in supported_extensions() and (path.parent / inner).exists():
        return True
    return any((path.parent / (path.stem + ext)).exists() for ext in supported_extensions())


def _text_files(paths: Iterable[str]) -> Iterable[Path]:
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    candidate = Path(root, name)
                    if (candidate.suffix.lower() in TEXT_EXTENSIONS and not name.startswith(".")
                            and not is_caption_sidecar(candidate)):
                        yield candidate
        elif Path(path).suffix.lower() in TEXT_EXTENSIONS:
            yield Path(path)


def _read_texts(files: Sequence[Path], collected: Collected) -> None:
    for path in files:
        absolute = path.resolve()
        try:
            documents = SimpleDirectoryReader(input_files=[absolute], raise_on_error=True).load_data()
            digest = sha256_file(absolute)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            collected.skipped.append((str(path), str(exc)))
            continue
        for part, document in enumerate(documents):
            document.id_ = stable_id(absolute, "part", part)
            document.metadata.update({"file_path": str(absolute), "file_name": absolute.name, "sha256": digest})
            collected.documents.append(document)
