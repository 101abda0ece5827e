"""The items of a ``POST /v1/documents``, from JSON or a multipart upload, and where each is put to be read.

An item is one document as a client names it: words (``text``), a medium (``image``/``audio``/``video``,
a ``data:`` URI or, with ``--allow-urls``, an http(s) URL; ``text`` beside it is its caption or
transcript), any file the index reads (``file``: a PDF, a Markdown file, ...), or a file or folder on
the server (``path``, read only under ``--index-root``). Its ``id`` is the client's, or else its
``name``, or else the digest of its content, so sending the same thing twice never makes two documents.

An uploaded item is written to the server's files folder, ``<files>/<id key>/<content key>/<name>``
(its words beside it as the sidecar the readers read as a caption or transcript), and read from there
by the very step ``mmst index`` runs (``ingest.read_file``): the index points at its pixels and never
holds them, as it does for files indexed from disk. A new version lands in a folder of its own, so
what a search returns while the new version is written still points at the old file.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from pydantic import BaseModel, ConfigDict, ValidationError

from ..ids import stable_id
from ..ingest.listing import TEXT_EXTENSIONS, FileItem, list_inputs
from ..media import AUDIO_SUFFIXES, VIDEO_SUFFIXES
from ..readers import ImageReader, supported_extensions
from ..readers.formats import PDF_EXTENSIONS
from .body import parse_json
from .errors import APIError, validation_error
from .items import MediaRules, check_header, media_bytes
from .multipart import FormPart

DOC_ID_KEY = "mmst_doc_id"
"""Metadata key of every node the documents API writes: the id of the API document it belongs to."""
DOC_NAME_KEY = "mmst_doc_name"
"""Metadata key of the API document's name (as the client gave it, folders included)."""
ITEM_KEYS = (DOC_ID_KEY, DOC_NAME_KEY)
MEDIA_FIELDS = ("image", "audio", "video")
MAX_NAME = 200
"""Longest stored file name (the extension is kept)."""
MAX_ID = 1024


class DocumentItem(BaseModel):
    """One document of a JSON ``POST /v1/documents``."""

    model_config = ConfigDict(extra="forbid")

    id: Optional[str] = None
    text: Optional[str] = None
    image: Optional[str] = None
    audio: Optional[str] = None
    video: Optional[str] = None
    file: Optional[str] = None
    """Any file the index reads, as a data: URI (JSON) or the name of a form part (multipart); its
    ``name``'s extension says what it is."""
    path: Optional[str] = None
    name: Optional[str] = None
    metadata: Dict[str, Any] = {}


class ItemRefused(Exception):
    """An item that can't be indexed: the reason, and a code (``invalid_item``, ``no_index_root``, ...)."""

    def __init__(self, reason: str, code: str = "invalid_item") -> None:
        super().__init__(reason)
        self.reason, self.code = reason, code


@dataclass
class ItemSpec:
    """One item as the request gave it (``error`` set: refused before anything is read)."""

    position: int
    param: str
    id: Optional[str] = None
    name: Optional[str] = None
    metadata: dict = field(default_factory=dict)
    kind: str = "text"
    """``text``, ``image``, ``audio``, ``video``, ``file`` (kind by the name's extension) or ``path``."""
    value: Optional[str] = None
    data: Optional[bytes] = None
    text: Optional[str] = None
    error: Optional[ItemRefused] = None


@dataclass
class Staged:
    """One document ready to read: its id, name, the listed file, its version folder (uploads)."""

    id: str
    name: str
    file: FileItem
    metadata: dict
    folder: Optional[Path] = None


# ---------------------------------------------------------------- parsing


def items_from_json(payload: Any) -> List[ItemSpec]:
    """``{"documents": [...]}``: each item checked on its own (a bad one is refused, the others go on)."""
    if not isinstance(payload, dict) or set(payload) != {"documents"} or not isinstance(payload["documents"], list):
        raise APIError(422, 'the body is {"documents": [{"text"|"image"|"audio"|"video"|"file"|"path": ..., '
                            '"id", "name", "metadata"}, ...]}', code="validation_error", param="documents")
    return [_spec(position, raw) for position, raw in enumerate(payload["documents"])]


def _spec(position: int, raw: Any, files: Optional[Dict[str, FormPart]] = None) -> ItemSpec:
    param = f"documents[{position}]"
    spec = ItemSpec(position, param)
    try:
        item = DocumentItem.model_validate(raw)
    except ValidationError as exc:
        error = validation_error([dict(detail) for detail in exc.errors()])
        spec.error = ItemRefused(error.message)
        if isinstance(raw, dict):  # named as the client named it, so it can tell which one
            spec.id, spec.name = (value if isinstance(value, str) else None for value in (raw.get("id"), raw.get("name")))
        return spec
    spec.id, spec.name, spec.metadata, spec.text = item.id, item.name, item.metadata, item.text
    given = [name for name in (*MEDIA_FIELDS, "file", "path") if getattr(item, name) is not None]
    try:
        _check_names(item)
        if len(given) > 1:
            raise ItemRefused(f"one of image, audio, video, file or path per document, got {given}")
        spec.kind = given[0] if given else "text"
        if spec.kind == "text" and item.text is None:
            raise ItemRefused("nothing to index: give text, or an image, audio, video, file or path")
        if spec.kind == "path" and item.text is not None:
            raise ItemRefused("text goes with an image, audio or video (its caption or transcript), not with a path")
        if spec.kind == "file" and files is not None:
            part = files.get(item.file or "")
            if part is None:
                raise ItemRefused(f"file {item.file!r} names no part of this upload")
            spec.data, spec.name = part.data, spec.name or part.filename
        else:
            spec.value = getattr(item, spec.kind) if spec.kind != "text" else None
        check_metadata(spec.metadata)
    except ItemRefused as exc:
        spec.error = exc
    return spec


def _check_names(item: DocumentItem) -> None:
    if item.id is not None and not (0 < len(item.id) <= MAX_ID) or item.id is not None and not item.id.strip():
        raise ItemRefused(f"id must be 1 to {MAX_ID} characters, not blank")
    if item.name is not None and not item.name.strip():
        raise ItemRefused("name is blank")


def check_metadata(metadata: dict) -> None:
    """User metadata may not take the keys the index keeps for itself."""
    from ..readers import BOOKKEEPING_KEYS

    taken = sorted(set(metadata) & ({*ITEM_KEYS, *BOOKKEEPING_KEYS, "ref_doc_id", "doc_id", "document_id",
                                     "modality", "_node_content", "_node_type"}))
    if taken:
        raise ItemRefused(f"metadata keys {taken} are the index's own (file bookkeeping); rename them")


def items_from_form(parts: List[FormPart]) -> List[ItemSpec]:
    """A multipart upload: a ``documents`` field (JSON, as in a JSON body, each ``file`` naming a part),
    or else every file part is a document (with the form's ``metadata`` field, JSON, for all); a text part
    named as a caption or transcript of an uploaded image or medium (``cat.jpg.txt``, ``talk.srt``) is
    that file's words, as ``mmst index`` reads a folder."""
    fields = {part.field: part for part in parts if part.filename is None}
    files = {part.field: part for part in parts if part.filename is not None}
    unknown = sorted(set(fields) - {"documents", "metadata"})
    if unknown:
        raise APIError(422, f"form field {unknown[0]!r} is not known (misspelt?); fields: documents, metadata, and "
                            "file parts", code="validation_error", param=unknown[0])
    if "documents" in fields:
        if "metadata" in fields:
            raise APIError(422, "give metadata inside documents[], not as a form field beside it",
                           code="validation_error", param="metadata")
        listed = _json_field(fields["documents"], list)
        specs = [_spec(position, raw, files) for position, raw in enumerate(listed)]
        named = {raw.get("file") for raw in listed if isinstance(raw, dict)}
        for part in files.values():
            if part.field not in named:
                specs.append(ItemSpec(len(specs), part.field, name=part.filename,
                                      error=ItemRefused(f"the file part {part.field!r} is named by no documents[].file")))
        return specs
    metadata = _json_field(fields["metadata"], dict) if "metadata" in fields else {}
    words = _sidecar_words([part for part in files.values()])
    specs = []
    for part in files.values():
        if part.field in words.consumed:
            continue
        spec = ItemSpec(len(specs), part.field, name=part.filename, metadata=dict(metadata), kind="file",
                        data=part.data, text=words.of.get(part.field))
        try:
            check_metadata(metadata)
        except ItemRefused as exc:
            spec.error = exc
        specs.append(spec)
    return specs


@dataclass
class _Words:
    of: Dict[str, str] = field(default_factory=dict)
    consumed: set = field(default_factory=set)


def _sidecar_words(parts: List[FormPart]) -> _Words:
    """Captions (``x.jpg.txt``, ``x.txt``) and transcripts (``.txt``, ``.srt``, ``.vtt``) among the parts."""
    from ..readers.media_reader import TRANSCRIPT_SUFFIXES, subtitle_words

    words = _Words()
    by_name: Dict[Optional[str], FormPart] = {part.filename: part for part in parts if part.filename}
    for part in parts:
        name = part.filename or ""
        suffix = Path(name).suffix.lower()
        media = MEDIA_SUFFIXES_ALL if suffix in TRANSCRIPT_SUFFIXES else frozenset()
        images = supported_extensions() - PDF_EXTENSIONS if suffix == ".txt" else frozenset()
        owner = _owner(name, by_name, media | images)
        if owner is None or owner.field in words.of:
            continue
        try:
            text = part.data.decode("utf-8-sig")
        except UnicodeDecodeError:
            continue  # not text: it stays a document of its own, and the reader names the problem
        words.of[owner.field] = subtitle_words(text) if suffix in (".srt", ".vtt") else text.strip()
        words.consumed.add(part.field)
    return words


MEDIA_SUFFIXES_ALL = AUDIO_SUFFIXES | VIDEO_SUFFIXES


def _owner(name: str, by_name: Dict[Optional[str], FormPart], suffixes: frozenset) -> Optional[FormPart]:
    """The uploaded file whose sidecar ``name`` is (``a.jpg.txt`` -> ``a.jpg``; ``a.txt`` -> ``a.<ext>``)."""
    if not suffixes:
        return None
    inner = name[: -len(Path(name).suffix)]
    if Path(inner).suffix.lower() in suffixes and inner in by_name:
        return by_name[inner]
    return next((by_name[inner + ext] for ext in sorted(suffixes) if inner + ext in by_name), None)


def _json_field(part: FormPart, kind: type) -> Any:
    part.text()  # UTF-8, or a 400 naming the field
    try:
        value = parse_json(part.data)  # the one bounded, strict parser (``body.py``)
    except APIError as error:
        raise APIError(error.status, f"form field {part.field!r}: {error.message}", code=error.code,
                       param=f"{part.field}.{error.param}" if error.param else part.field) from None
    if not isinstance(value, kind):
        raise APIError(422, f"form field {part.field!r} must be a JSON {kind.__name__}", code="validation_error",
                       param=part.field)
    return value


# ---------------------------------------------------------------- staging


class Stager:
    """Puts items where the readers read them: uploads under ``files_dir``, server paths checked
    against ``index_root``. Blocking (files are written and read): call from a worker thread."""

    def __init__(self, files_dir: Optional[Path], index_root: Optional[Path], rules: MediaRules,
                 reader: ImageReader) -> None:
        self.files_dir, self.index_root, self.rules, self.reader = files_dir, index_root, rules, reader

    def stage(self, spec: ItemSpec) -> List[Staged]:
        if spec.error is not None:
            raise spec.error
        if spec.kind == "path":
            return self._server_path(spec)
        data, name = self._content(spec)
        document_id = spec.id or spec.name or f"sha256:{_digest(data, spec.text)}"
        folder = self._write(document_id, name, data, spec.text)
        listing = list_inputs([str(folder / name)], self.reader)
        if not listing.files:
            reason = listing.skipped[0][1] if listing.skipped else f"{Path(name).suffix or name!r} is not a type the index reads"
            shutil.rmtree(folder, ignore_errors=True)
            raise ItemRefused(reason)
        return [Staged(document_id, spec.name or spec.id or name, listing.files[0], spec.metadata, folder)]

    def _content(self, spec: ItemSpec) -> tuple[bytes, str]:
        """The item's bytes and the file name it is stored under (an extension the readers know)."""
        if spec.kind == "text":
            return (spec.text or "").encode("utf-8"), _with_suffix(spec.name, "text", TEXT_EXTENSIONS, ".txt")
        if spec.data is None:
            try:
                spec.data = media_bytes(spec.value or "", spec.param, self.rules)
            except APIError as exc:
                raise ItemRefused(_reason(exc, spec.param)) from None
        data = spec.data
        if spec.kind == "file":
            name = safe_name(spec.name or "")
            known = supported_extensions() | TEXT_EXTENSIONS | MEDIA_SUFFIXES_ALL
            if not name or Path(name).suffix.lower() not in known:
                raise ItemRefused("a file needs a name with an extension the index reads (report.pdf, notes.md, "
                                  f"cat.jpg, talk.mp3), got {spec.name!r}")
            if spec.text is not None and Path(name).suffix.lower() in TEXT_EXTENSIONS | PDF_EXTENSIONS:
                raise ItemRefused("text goes with an image, audio or video (its caption or transcript); a PDF or "
                                  "text file has its own words")
            return data, name
        try:
            check_header(data, spec.kind, spec.param, self.rules)
        except APIError as exc:
            raise ItemRefused(_reason(exc, spec.param)) from None
        suffixes = (supported_extensions() - PDF_EXTENSIONS if spec.kind == "image"
                    else AUDIO_SUFFIXES if spec.kind == "audio" else VIDEO_SUFFIXES)
        return data, _with_suffix(spec.name, spec.kind, suffixes, _sniffed_suffix(data, spec, suffixes))

    def _write(self, document_id: str, name: str, data: bytes, text: Optional[str]) -> Path:
        if self.files_dir is None:
            raise ItemRefused("this server keeps no uploaded files (start it with --files DIR, or serve an "
                              "embedded index)", "no_files_dir")
        words = text if text is not None and Path(name).suffix.lower() not in TEXT_EXTENSIONS else None
        folder = item_folder(self.files_dir, document_id) / _digest(data, words, name)[:24]
        if folder.exists():
            return folder  # this very version is there already
        folder.parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=".new-", dir=folder.parent))
        (building / name).write_bytes(data)
        if words is not None:  # the reader's sidecar: an image's caption, a medium's transcript
            (building / (name + ".txt")).write_text(words, encoding="utf-8")
        try:
            os.rename(building, folder)
        except OSError:  # another request wrote the same version meanwhile
            shutil.rmtree(building, ignore_errors=True)
        return folder

    def _server_path(self, spec: ItemSpec) -> List[Staged]:
        if self.index_root is None:
            raise ItemRefused("this server reads no files of its own (start it with --index-root DIR to allow paths "
                              "under DIR); send the contents instead", "no_index_root")
        root = Path(os.path.realpath(self.index_root))
        given = Path(spec.value or "")
        path = Path(os.path.abspath(given if given.is_absolute() else root / given))
        if Path(os.path.realpath(path)) != root and root not in Path(os.path.realpath(path)).parents:
            raise ItemRefused(f"{spec.value} is outside the index root ({root})", "outside_index_root")
        if not os.path.lexists(path):
            raise ItemRefused(f"no such file or folder: {spec.value}")
        listing = list_inputs([str(path)], self.reader)
        if not listing.files:
            reason = listing.skipped[0][1] if listing.skipped else "no file the index reads is there"
            raise ItemRefused(reason)
        if spec.id is not None and (len(listing.files) > 1 or path.is_dir()):
            raise ItemRefused("id names one document, and a folder holds several: leave id out (each file's id "
                              "is its path)")
        single = len(listing.files) == 1 and not path.is_dir()
        return [Staged(spec.id or str(item.path), spec.name if spec.name and single else str(item.path), item,
                       spec.metadata) for item in listing.files]


def item_folder(files_dir: Path, document_id: str) -> Path:
    """The folder of an uploaded document's versions."""
    return files_dir / stable_id("document", document_id)


def safe_name(name: str) -> str:
    """A client's file name as a plain file name: its last part, no control characters, no leading dot."""
    base = re.sub(r"[\x00-\x1f\x7f]", "", name.replace("\\", "/").rsplit("/", 1)[-1]).strip().lstrip(".")
    if len(base) > MAX_NAME:
        stem, suffix = os.path.splitext(base)
        base = stem[: MAX_NAME - len(suffix)] + suffix
    return base


def _with_suffix(name: Optional[str], default: str, suffixes: Any, fallback: str) -> str:
    base = safe_name(name or "") or default
    return base if Path(base).suffix.lower() in suffixes else base + fallback


def _sniffed_suffix(data: bytes, spec: ItemSpec, suffixes: Any) -> str:
    """The extension of media bytes: the image format, else the data: URI's declared type, else the container."""
    if spec.kind == "image":
        from io import BytesIO

        from PIL import Image

        with Image.open(BytesIO(data)) as image:
            image_format = image.format or ""
        named = [ext for ext, fmt in Image.registered_extensions().items() if fmt == image_format and ext in suffixes]
        preferred = {"JPEG": ".jpg", "TIFF": ".tif"}.get(image_format)
        return preferred if preferred in named else (sorted(named)[0] if named else ".img")
    declared = (spec.value or "").partition(";")[0].partition(",")[0][5:] if (spec.value or "").startswith("data:") else ""
    guessed = mimetypes.guess_extension(declared) if declared else None
    if guessed in suffixes:
        return guessed  # type: ignore[return-value]
    return _container_suffix(data, suffixes) or sorted(suffixes)[0]


CONTAINER_SUFFIXES = {"mov": ".mov", "mp4": ".mp4", "m4a": ".m4a", "matroska": ".mkv", "webm": ".webm",
                      "aiff": ".aiff", "wav": ".wav", "mp3": ".mp3", "flac": ".flac", "ogg": ".ogg", "avi": ".avi"}
"""FFmpeg's container names (``av.open(...).format.name``, comma-separated aliases) as file extensions."""


def _container_suffix(data: bytes, suffixes: Any) -> Optional[str]:
    """The extension of audio or video bytes whose client named no type, from FFmpeg's container name."""
    from io import BytesIO

    import av

    try:
        with av.open(BytesIO(data), mode="r") as container:
            names = container.format.name.split(",")
    except (OSError, ValueError):
        return None
    found = [CONTAINER_SUFFIXES[name] for name in names if CONTAINER_SUFFIXES.get(name) in suffixes]
    return found[0] if found else None


def _digest(data: bytes, text: Optional[str], name: str = "") -> str:
    digest = hashlib.sha256(data)
    if text is not None:
        digest.update(b"\x1ftext\x1f" + text.encode("utf-8"))
    if name:
        digest.update(b"\x1fname\x1f" + name.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _reason(error: APIError, param: str) -> str:
    prefix = f"{param}: "
    return error.message[len(prefix):] if error.message.startswith(prefix) else error.message
