"""Turn the paths given to ``mmst index`` into documents: images and PDF pages through ``ImageReader``,
audio and video through ``MediaReader``, text and markdown through LlamaIndex's ``SimpleDirectoryReader``.

Every path goes through the reader's one walker (``readers/walk.py``), once: links outside a folder,
link loops, broken links, FIFOs and undecodable names get the same treatment for text as for images,
and a bad entry is listed in ``skipped`` while the good files beside it go through.

Document ids are keyed by absolute path (plus page or frame, or part for text), so two folders that
both hold ``a.jpg`` never overwrite each other, and reading unchanged files again gives the same ids.
The reader makes the media ids itself (``absolute_ids=True``); this module makes the text ids.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from llama_index.core import SimpleDirectoryReader
from llama_index.core.schema import Document

from ..errors import ItemFailure, MissingDependencyError, PathError, SkippedItemsWarning
from ..files import file_error_reason
from ..ids import stable_id
from ..readers import (
    BOOKKEEPING_KEYS,
    LLM_NOISE_KEYS,
    NO_EXTENSION,
    MEDIA_SUFFIXES,
    IgnoredPath,
    ImageReader,
    MediaReader,
    ReadReport,
    WalkedFile,
    WalkPolicy,
    WalkTally,
    default_cache_dir,
    is_transcript_sidecar,
    supported_extensions,
    walk_path,
)

TEXT_EXTENSIONS = frozenset({".txt", ".md", ".markdown", ".rst"})
SUBTITLE_EXTENSIONS = frozenset({".srt", ".vtt"})
"""Read only as the transcript of the audio or video file beside them (``MediaReader``)."""
HASH_BLOCK = 1 << 20
"""Bytes read per step when hashing a text file."""


@dataclass
class Collected:
    """What the paths held: documents to index, files that could not be read (with why), paths not
    followed by policy (with why), and how many files were passed over for their type."""

    documents: list[Document] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)
    ignored_types: Counter[str] = field(default_factory=Counter)
    """Files in the folders walked that are neither media nor text, by extension, e.g.
    ``Counter({".docx": 3, ".json": 1})``; files without an extension count under ``"(no extension)"``."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(HASH_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def walk_policy(reader: ImageReader, audio_video: bool = False) -> WalkPolicy:
    """The reader's walking rules, widened to text files (one walk finds both), and with ``audio_video``
    to audio, video and subtitle files."""
    extra = MEDIA_SUFFIXES | SUBTITLE_EXTENSIONS if audio_video else frozenset()
    return WalkPolicy(
        extensions=supported_extensions() | TEXT_EXTENSIONS | extra,
        include=tuple(reader.include) if reader.include is not None else None,
        exclude=tuple(reader.exclude),
        recursive=reader.recursive,
        exclude_hidden=reader.exclude_hidden,
        follow_external_links=reader.follow_external_links,
        prune=frozenset({os.path.realpath(reader.cache_dir or default_cache_dir())}),
    )


def collect(paths: Sequence[str], reader: ImageReader) -> Collected:
    """Read every path (file or folder); a missing path is an error, a bad file is skipped and listed."""
    media, texts, collected = walk_inputs(paths, reader, audio_video=True)
    if media:
        _read_media(media, reader, collected)
    if texts:
        read_texts(texts, collected)
    return collected


def walk_inputs(paths: Sequence[str], reader: ImageReader, audio_video: bool = False
                ) -> tuple[list[str], list[Path], Collected]:
    """The one walk of ``mmst index`` (and of its Ray job): media files, text files, and a
    ``Collected`` holding what the walk refused or passed over. Nothing is read yet. Audio and video
    files are media only with ``audio_video`` (the Ray job reads images, PDFs and text; it counts them
    as ignored types)."""
    missing = [p for p in paths if not os.path.lexists(p)]
    if missing:
        raise FileNotFoundError(f"no such file or folder: {', '.join(missing)}")
    collected = Collected()
    media: list[str] = []
    texts: list[Path] = []
    tally = WalkTally(collected.ignored_types)
    for path in paths:
        for item in walk_path(path, walk_policy(reader, audio_video), tally):
            if isinstance(item, PathError):
                collected.skipped.append((item.item, item.reason))
            elif isinstance(item, IgnoredPath):
                collected.ignored.append((item.path, item.reason))
            else:
                _sort_file(item, media, texts, collected, audio_video)
    return media, texts, collected


def _sort_file(item: WalkedFile, media: list[str], texts: list[Path], collected: Collected,
               audio_video: bool = False) -> None:
    suffix = item.path.suffix.lower()
    sidecar = audio_video and not item.named_directly and is_transcript_sidecar(item.path)
    if suffix in supported_extensions() or (audio_video and suffix in MEDIA_SUFFIXES):
        media.append(str(item.path))
    elif suffix in SUBTITLE_EXTENSIONS and audio_video:
        if not sidecar:  # subtitles without their media are not indexed on their own
            collected.ignored_types[suffix] += 1
    elif suffix in TEXT_EXTENSIONS:
        if item.named_directly or not (is_caption_sidecar(item.path) or sidecar):
            texts.append(item.path)
    else:  # only a file named directly gets here: a walk counts other types in ignored_types itself
        collected.ignored_types[suffix or NO_EXTENSION] += 1


def _read_media(paths: Sequence[str], reader: ImageReader, collected: Collected) -> None:
    """The walked files through the reader, which keys their ids by absolute path as the CLI always has."""
    report = ReadReport()
    keyed = reader.model_copy(update={"absolute_ids": True})
    audio_video = [p for p in paths if Path(p).suffix.lower() in MEDIA_SUFFIXES]
    images = [p for p in paths if Path(p).suffix.lower() not in MEDIA_SUFFIXES]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedItemsWarning)  # reported in the summary instead
        if images:
            collected.documents += keyed.load_data(images, report=report)
        if audio_video:
            try:
                media_reader = _media_reader(reader)
            except MissingDependencyError as exc:  # the files are named, the run goes on
                collected.skipped += [(path, str(exc)) for path in audio_video]
            else:
                collected.documents += media_reader.load_data(audio_video, report=report)
    collected.skipped += [(failure.item, _reason(failure)) for failure in report.failures]
    collected.ignored += [(ignored.path, ignored.reason) for ignored in report.ignored]


def _media_reader(reader: ImageReader) -> MediaReader:
    """The audio/video reader with the image reader's walking rules; ``MissingDependencyError`` (with its
    install line) when PyAV is not installed."""
    from ..media import damaged_errors

    damaged_errors()  # raises MissingDependencyError naming the extra when PyAV is not installed
    return MediaReader(exclude=list(reader.exclude), recursive=reader.recursive, exclude_hidden=reader.exclude_hidden,
                       follow_external_links=reader.follow_external_links, absolute_ids=True)


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


def read_texts(files: Sequence[Path], collected: Collected) -> None:
    """Each text file into documents whose embedded text is their words alone (no path, no hash)."""
    for path in files:
        absolute = path.resolve()
        try:
            documents = SimpleDirectoryReader(input_files=[absolute], raise_on_error=True).load_data()
            digest = sha256_file(absolute)
        except OSError as exc:
            collected.skipped.append((str(path), file_error_reason(exc)))
            continue
        except (ValueError, UnicodeDecodeError) as exc:
            collected.skipped.append((str(path), f"cannot read as text ({exc})"))
            continue
        for part, document in enumerate(documents):
            document.id_ = stable_id(absolute, "part", part)
            document.metadata.update({"file_path": str(absolute), "file_name": absolute.name, "sha256": digest})
            document.excluded_embed_metadata_keys = _merged(document.excluded_embed_metadata_keys, BOOKKEEPING_KEYS)
            document.excluded_llm_metadata_keys = _merged(document.excluded_llm_metadata_keys, LLM_NOISE_KEYS)
            collected.documents.append(document)


def _merged(existing: Sequence[str], extra: Sequence[str]) -> list[str]:
    return list(dict.fromkeys([*existing, *extra]))
