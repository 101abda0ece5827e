"""``MediaReader``: audio and video files into LlamaIndex ``Document``s that point at their media.

A document never holds samples or frames: ``audio_resource``/``video_resource`` carry the path, the
metadata carries what the header says (duration, sample rate, channels; width, height, fps, frames),
the file's size and sha256. A transcript or subtitles beside the file (``talk.txt``, ``talk.mp3.txt``,
``talk.srt``, ``talk.vtt``) become the document's words, so BM25 finds what was said. Bad, truncated,
zero-length or over-limit files, and content that is not what its name says (a JPEG called ``x.wav``),
are listed in the ``ReadReport`` and never stop a read; so is a sidecar that can't be read as text
(the media file is still read, without those words).
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from pathlib import Path
from typing import Any, Iterable, Literal, Optional, Union

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.readers.base import BasePydanticReader
from llama_index.core.schema import Document, MediaResource

from ..defaults import DEFAULT_MAX_MEDIA_BYTES, DEFAULT_MAX_MEDIA_SECONDS, DEFAULT_MAX_PIXELS
from ..docs import document_parameters
from ..errors import CaptionFileError, ItemFailure, MediaLoadError, PathError, SkippedItemsWarning
from ..files import read_sidecar_text, undecodable_text
from ..ids import media_document_id
from ..media import (
    AUDIO_SUFFIXES,
    VIDEO_SUFFIXES,
    MediaInfo,
    MediaLimits,
    load_audio,
    load_video,
    probe,
    require_kind,
)
from ..strict import RefusesUnknownFields
from ..types import OnError
from .metadata import BOOKKEEPING_KEYS, LLM_NOISE_KEYS
from .report import IgnoredPath, ReadReport
from .walk import WalkPolicy, WalkTally, WalkedFile, walk_path

MEDIA_SUFFIXES = AUDIO_SUFFIXES | VIDEO_SUFFIXES
TRANSCRIPT_SUFFIXES = (".txt", ".srt", ".vtt")
"""Sidecar files read as a media file's words, tried in this order (``x.mp3.txt`` before ``x.txt``)."""
MEDIA_BOOKKEEPING_KEYS = ("media_kind", "duration_s", "sample_rate", "channels", "width", "height", "fps",
                          "frames", "transcript_file")
HASH_BLOCK = 1 << 20
Verify = Literal["header", "decode"]

"""Byte-order marks a subtitle editor may write; text without one is read as UTF-8 (WebVTT's only encoding)."""
_CUE_TIMING = re.compile(r"^\s*(\d+:)?\d{1,2}:\d{2}[.,]\d{3}\s*-->\s*")
_TAG = re.compile(r"<[^>]+>")


def subtitle_words(text: str) -> str:
    """The spoken words of an SRT or WebVTT file: cue numbers, timings, headers, notes and tags dropped."""
    words: list[str] = []
    skipping_block = False
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            skipping_block = False
            continue
        if skipping_block or stripped == "WEBVTT" or stripped.startswith(("WEBVTT ", "NOTE", "STYLE", "REGION")):
            skipping_block = not stripped.startswith("WEBVTT")
            continue
        if stripped.isdigit() or _CUE_TIMING.match(stripped):
            continue
        words.append(_TAG.sub("", stripped))
    return "\n".join(words)


def find_transcript(path: Path, siblings: Optional[frozenset[str]] = None) -> Optional[Path]:
    """The sidecar transcript of a media file, if there is one."""
    names = siblings if siblings is not None else frozenset(os.listdir(path.parent))
    for suffix in TRANSCRIPT_SUFFIXES:
        for name in (path.name + suffix, path.stem + suffix):
            if name in names and (path.parent / name).is_file():
                return path.parent / name
    return None


def is_transcript_sidecar(path: Path) -> bool:
    """``talk.srt``, ``talk.txt`` or ``talk.mp3.txt`` beside ``talk.mp3`` is that file's transcript."""
    if path.suffix.lower() not in TRANSCRIPT_SUFFIXES:
        return False
    inner = Path(path.stem)
    if inner.suffix.lower() in MEDIA_SUFFIXES and (path.parent / inner).exists():
        return True
    return any((path.parent / (path.stem + suffix)).exists() for suffix in MEDIA_SUFFIXES)


def media_kind(path: Union[str, Path]) -> Optional[str]:
    suffix = Path(path).suffix.lower()
    return "audio" if suffix in AUDIO_SUFFIXES else "video" if suffix in VIDEO_SUFFIXES else None


@document_parameters()
class MediaReader(RefusesUnknownFields, BasePydanticReader):
    """Read audio (.wav .flac .mp3 .ogg .m4a ...) and video (.mp4 .webm .mov .mkv ...) files and folders.

    ``load_data(sources)`` takes files, folders (walked with the reader's one walker) or a list of them.
    Needs the ``[audio]`` or ``[video]`` extra (PyAV). The report of the latest read is ``last_report``.
    """

    exclude: list[str] = Field(default_factory=list, description="Globs of files or folders to leave out.")
    recursive: bool = Field(default=True, description="Walk sub-folders.")
    exclude_hidden: bool = Field(default=True, description="Leave out names that start with a dot.")
    follow_external_links: bool = Field(default=False, description="Follow links that lead outside the folder.")
    max_duration_s: Optional[float] = Field(default=DEFAULT_MAX_MEDIA_SECONDS, gt=0, description="Refuse longer media (from the header).")
    max_bytes: Optional[int] = Field(default=DEFAULT_MAX_MEDIA_BYTES, gt=0, description="Refuse larger files.")
    max_frame_pixels: Optional[int] = Field(
        default=DEFAULT_MAX_PIXELS, gt=0,
        description="Refuse video whose frames are larger (from the stream header, before any frame is decoded).",
    )
    verify: Verify = Field(
        default="decode",
        description='"decode" decodes all audio samples (catches truncation) and a video\'s first frame; '
                    '"header" reads the container header only.',
    )
    transcripts: bool = Field(default=True, description="Read a sidecar .txt/.srt/.vtt as the document's words.")
    absolute_ids: bool = Field(default=False, description="Key ids by absolute path (what mmst index uses).")
    on_error: OnError = Field(default="skip", description="skip: report bad files; raise: the first one raises.")

    _last_report: ReadReport = PrivateAttr(default_factory=ReadReport)

    @classmethod
    def class_name(cls) -> str:
        return "MediaReader"

    @property
    def last_report(self) -> ReadReport:
        return self._last_report

    def _policy(self) -> WalkPolicy:
        return WalkPolicy(extensions=frozenset(MEDIA_SUFFIXES), exclude=tuple(self.exclude), recursive=self.recursive,
                          exclude_hidden=self.exclude_hidden, follow_external_links=self.follow_external_links)

    def _limits(self) -> MediaLimits:
        return MediaLimits(max_duration_s=self.max_duration_s, max_bytes=self.max_bytes,
                           max_frame_pixels=self.max_frame_pixels)

    def load_data(self, sources: Union[str, Path, Iterable[Union[str, Path]]], report: Optional[ReadReport] = None,
                  **_: Any) -> list[Document]:
        """Documents for every readable media file; the others go to the report (and a warning)."""
        report = report if report is not None else ReadReport()
        self._last_report = report
        items = [sources] if isinstance(sources, (str, Path)) else list(sources)
        documents: list[Document] = []
        failures_before = len(report.failures)
        tally = WalkTally(report.ignored_types)
        for source in items:
            report.sources += 1
            root = Path(os.path.abspath(source))
            for entry in walk_path(source, self._policy(), tally):
                if isinstance(entry, IgnoredPath):
                    report.ignored.append(entry)
                elif isinstance(entry, PathError):
                    self._fail(report, entry)
                else:
                    document = self._read(entry, root, report)
                    if document is not None:
                        documents.append(document)
        report.documents += len(documents)
        new = report.failures[failures_before:]
        if new:
            warnings.warn(SkippedItemsWarning("media reader", new), stacklevel=2)
        return documents

    async def aload_data(self, *args: Any, **kwargs: Any) -> list[Document]:
        import asyncio

        return await asyncio.to_thread(self.load_data, *args, **kwargs)

    def _fail(self, report: ReadReport, error: Exception) -> None:
        if self.on_error == "raise":
            raise error
        report.failures.append(ItemFailure(len(report.failures), getattr(error, "item", "?"), error))

    def _read(self, entry: WalkedFile, root: Path, report: ReadReport) -> Optional[Document]:
        try:
            return self.read_file(entry, report)
        except MediaLoadError as exc:
            self._fail(report, exc)
            return None

    def read_file(self, entry: WalkedFile, report: Optional[ReadReport] = None) -> Document:
        """One file the walker found, as its document; ``MediaLoadError`` naming it when it can't be
        read. A transcript sidecar that can't be read goes to ``report`` (the file is read without its
        words). The per-file step of ``load_data``, public for runners that walk once and read the
        files themselves (the ingestion job, its Ray read tasks)."""
        report = report if report is not None else ReadReport()
        kind = media_kind(entry.path)
        label = str(entry.path)
        if kind is None:
            raise MediaLoadError(label, f"{entry.path.suffix or 'no extension'} is not an audio or "
                                        "video type this reader knows")
        try:
            info = self._check(entry.path, label, kind)
            digest, size = _sha256(entry.path)
            words, transcript = self._words(entry, report)
        except OSError as exc:
            raise MediaLoadError(label, str(exc.strerror or exc)) from None
        key = str(entry.path) if self.absolute_ids or entry.named_directly else entry.rel
        metadata = _metadata(entry.path, kind, info, digest, size, transcript)
        resource = MediaResource(path=entry.path, mimetype=None)
        return Document(
            id_=media_document_id(key), text=words, metadata=metadata,
            excluded_embed_metadata_keys=list(dict.fromkeys([*BOOKKEEPING_KEYS, *MEDIA_BOOKKEEPING_KEYS])),
            excluded_llm_metadata_keys=list(LLM_NOISE_KEYS),
            **{f"{kind}_resource": resource},
        )

    def _check(self, path: Path, label: str, kind: str) -> MediaInfo:
        limits = self._limits()
        info = probe(path, label, limits)
        require_kind(info, kind, label)  # the content, whatever the suffix says
        if self.verify == "decode":
            if kind == "audio":
                load_audio(path, label, info.sample_rate or 16000, limits)
            else:
                load_video(path, label, lambda _: [0], limits)
        return info

    def _words(self, entry: WalkedFile, report: ReadReport) -> tuple[str, Optional[str]]:
        if not self.transcripts:
            return "", None
        sidecar = find_transcript(entry.path, entry.siblings)
        if sidecar is None:
            return "", None
        try:
            text = read_sidecar_text(sidecar)
        except UnicodeDecodeError as exc:
            reason = undecodable_text(exc)
        except OSError as exc:
            reason = str(exc.strerror or exc)
        else:
            words = text if sidecar.suffix.lower() == ".txt" else subtitle_words(text)
            return words.strip(), str(sidecar)
        # The media file is still read, without these words; the report says why they are missing.
        self._fail(report, CaptionFileError(str(sidecar), f"{reason}; {entry.path.name} is read without its words"))
        return "", None


def _sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(HASH_BLOCK), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _metadata(path: Path, kind: str, info: MediaInfo, digest: str, size: int,
              transcript: Optional[str]) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "file_path": str(path), "file_name": path.name, "file_size": size, "sha256": digest,
        "media_kind": kind, "duration_s": round(info.duration_s, 3),
    }
    fields = {"sample_rate": info.sample_rate, "channels": info.channels}
    if kind == "video":
        fields |= {"width": info.width, "height": info.height, "fps": info.fps, "frames": info.frames}
    metadata.update({key: value for key, value in fields.items() if value is not None})
    if transcript is not None:
        metadata["transcript_file"] = transcript
    return metadata
