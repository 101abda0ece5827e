"""``mmst index PATH... --server URL``: send files to a running ``mmst serve`` that holds the index.

The files are walked here by the very walker ``mmst index`` uses (``ingest.list_inputs``: the same
types, exclusions, links and skipped entries), and each is sent with its words (an image's caption
sidecar, a medium's transcript: the readers' own sidecar rules) to ``POST /v1/documents``, where the
server reads, embeds and writes it as ``mmst index`` would. A document's id is the file's absolute
path here, so a second run answers "unchanged" for what did not change and replaces what did, and the
documents of files gone from the folders named are deleted (``--keep-missing`` keeps them); a file the
server turned away because its queue was full is sent again after the server's ``Retry-After``.
No model is loaded here, and no store is opened: the server is the index's one writer.
"""

from __future__ import annotations

import argparse
import base64
import mimetypes
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional
from urllib.parse import quote

from .models import CLIError

API_KEY_ENV = "MMST_API_KEY"
BATCH_BYTES = 16 * 2**20
"""Raw bytes per request (base64 makes the body a third larger; the server's default limit is 64 MiB)."""
BATCH_FILES = 64
REQUESTS_IN_FLIGHT = 2
"""Requests sent at once: one is read and embedded while the next is on its way."""
MAX_ROUNDS = 20
"""Times a document turned away by a full queue is sent again before it counts as refused."""


@dataclass
class Outgoing:
    """One file to send: its JSON document, its size, and where it came from."""

    path: str
    document: dict
    size: int


@dataclass
class Tally:
    added: List[dict] = field(default_factory=list)
    replaced: List[dict] = field(default_factory=list)
    unchanged: List[dict] = field(default_factory=list)
    refused: List[dict] = field(default_factory=list)
    problems: List[tuple[str, str]] = field(default_factory=list)
    removed: List[str] = field(default_factory=list)

    def record(self, entry: dict) -> None:
        getattr(self, entry["status"]).append(entry)
        for problem in entry.get("problems", []):
            self.problems.append((problem["item"], problem["reason"]))


def cmd_index_remote(args: argparse.Namespace) -> int:
    from ..ingest.listing import list_inputs
    from ..readers import ImageReader
    from ..remote.http import Endpoint, RetryPolicy

    if args.store or args.url or args.ray or args.sparse_model or args.model:
        given = [flag for flag, value in (("--store", args.store), ("--url", args.url), ("--ray", args.ray),
                                          ("--sparse-model", args.sparse_model), ("--model", args.model)) if value]
        raise CLIError(f"--server sends the files to a running mmst serve, which holds the index and its model: "
                       f"leave out {', '.join(given)}")
    missing = [path for path in args.paths if not os.path.exists(path)]
    if missing:
        raise CLIError(f"no such file or folder: {', '.join(missing)}")
    endpoint = Endpoint(args.server, args.api_key or os.environ.get(API_KEY_ENV) or None, timeout=600.0,
                        retry=RetryPolicy(max_retries=8))
    listing = list_inputs(list(args.paths), ImageReader())
    tally = Tally(problems=list(listing.skipped))
    outgoing = []
    for item in listing.files:
        sent = outgoing_file(item, args.paths, tally)
        if sent is not None:
            outgoing.append(sent)
    progress = _Progress(len(outgoing), enabled=not args.no_progress)
    try:
        _send_all(endpoint, outgoing, tally, progress)
        if not getattr(args, "keep_missing", False):
            tally.removed = prune_remote(endpoint, list(args.paths))
        info = endpoint.request("GET", "/v1/index")
    finally:
        progress.close()
        endpoint.close()
    print("\n".join(summary_lines(tally, info, listing.ignored_types)))
    problems = [f"  {item}: {reason}" for item, reason in tally.problems]
    problems += [f"  {entry.get('name') or entry.get('id')}: {entry['reason']}" for entry in tally.refused]
    if problems:
        print(f"not indexed or indexed in part: {len(problems)}", file=sys.stderr)
        print("\n".join(problems), file=sys.stderr)
    if listing.not_followed:
        print(f"not followed: {len(listing.not_followed)} path(s):", file=sys.stderr)
        print("\n".join(f"  {p}: {why}" for p, why in listing.not_followed), file=sys.stderr)
    from .index_cmd import STRICT_EXIT

    return STRICT_EXIT if args.strict and (tally.refused or tally.problems) else 0


def outgoing_file(item: Any, roots: List[str], tally: Tally) -> Optional[Outgoing]:
    """A listed file as a document of ``POST /v1/documents`` (None, with the problem noted, if unreadable)."""
    path = Path(item.path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        from ..files import file_error_reason

        tally.problems.append((str(path), file_error_reason(exc)))
        return None
    absolute = os.path.abspath(path)
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    document = {"id": absolute, "name": display_name(absolute, roots),
                "file": f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}"}
    words = sidecar_words(item, tally)
    if words:
        document["text"] = words
    return Outgoing(absolute, document, len(data))


def display_name(absolute: str, roots: List[str]) -> str:
    """The path as the user named it: relative to the folder given, or the file's name."""
    for root in roots:
        base = os.path.abspath(root)
        if os.path.isdir(base) and absolute.startswith(base.rstrip(os.sep) + os.sep):
            return os.path.join(os.path.basename(base.rstrip(os.sep)), os.path.relpath(absolute, base))
    return os.path.basename(absolute)


def sidecar_words(item: Any, tally: Tally) -> Optional[str]:
    """An image's caption or a medium's transcript, read by the readers' own sidecar rules."""
    from ..errors import CaptionFileError
    from ..files import read_sidecar_text, undecodable_text
    from ..readers.media_reader import find_transcript, subtitle_words
    from ..readers.metadata import caption_for

    path = Path(item.path)
    try:
        if item.kind == "image" and path.suffix.lower() != ".pdf":
            return caption_for(path, item.walked.siblings) or None
        if item.kind == "media":
            sidecar = find_transcript(path, item.walked.siblings)
            if sidecar is None:
                return None
            text = read_sidecar_text(sidecar)
            return (text if sidecar.suffix.lower() == ".txt" else subtitle_words(text)).strip() or None
    except CaptionFileError as exc:
        tally.problems.append((exc.item, exc.reason))
    except UnicodeDecodeError as exc:
        tally.problems.append((str(path), f"{undecodable_text(exc)}; sent without its words"))
    except OSError as exc:
        tally.problems.append((str(path), f"{exc.strerror or exc}; sent without its words"))
    return None


def batches(outgoing: List[Outgoing]) -> List[List[Outgoing]]:
    """Requests of at most ``BATCH_FILES`` files and about ``BATCH_BYTES`` (a larger file goes alone)."""
    out: List[List[Outgoing]] = []
    current: List[Outgoing] = []
    size = 0
    for item in outgoing:
        if current and (len(current) >= BATCH_FILES or size + item.size > BATCH_BYTES):
            out.append(current)
            current, size = [], 0
        current.append(item)
        size += item.size
    if current:
        out.append(current)
    return out


def _send_all(endpoint: Any, outgoing: List[Outgoing], tally: Tally, progress: "_Progress") -> None:
    pending = outgoing
    for _ in range(MAX_ROUNDS):
        if not pending:
            return
        retry: List[Outgoing] = []
        wait = 0.0

        def send(batch: List[Outgoing]) -> List[tuple[Outgoing, dict]]:
            answer = endpoint.request("POST", "/v1/documents", {"documents": [o.document for o in batch]})
            return [(batch[entry["index"]], entry) for entry in answer["documents"]]

        with ThreadPoolExecutor(REQUESTS_IN_FLIGHT) as pool:
            for results in pool.map(send, batches(pending)):
                for item, entry in results:
                    if entry["status"] == "refused" and "retry_after" in entry:
                        retry.append(item)
                        wait = max(wait, float(entry["retry_after"]))
                        continue
                    tally.record(entry)
                    progress.update(1)
        pending = retry
        if pending:
            time.sleep(min(wait, 30.0))
    for item in pending:
        tally.record({"status": "refused", "id": item.path, "name": item.document["name"],
                      "reason": "the server's queue stayed full; run the command again"})


def prune_remote(endpoint: Any, paths: List[str]) -> List[str]:
    """Delete the server's documents of files gone from the folders named (their ids are the paths this
    command sent them under), as ``mmst index`` follows the files; the ids removed."""
    folders = [os.path.abspath(path).rstrip(os.sep) + os.sep for path in paths if os.path.isdir(path)]
    if not folders:
        return []
    gone: List[str] = []
    after: Optional[str] = None
    while True:
        query = "/v1/documents?limit=1000" + (f"&after={quote(after, safe='')}" if after else "")
        page = endpoint.request("GET", query)
        gone += [entry["id"] for entry in page["data"]
                 if any(entry["id"].startswith(folder) for folder in folders) and not os.path.lexists(entry["id"])]
        if not page["has_more"]:
            break
        after = page["next"]
    if gone:
        endpoint.request("POST", "/v1/documents/delete", {"ids": gone})
    return gone


def summary_lines(tally: Tally, info: dict, ignored: Any) -> List[str]:
    def files(entries: List[dict]) -> str:
        return f"{len(entries)} file{'' if len(entries) == 1 else 's'}"

    points = sum(entry.get("points", 0) for entry in tally.added)
    lines = [
        f"added: {points} point{'' if points == 1 else 's'} (from {files(tally.added)})" if tally.added
        else "added: nothing new",
        f"replaced (changed): {files(tally.replaced)}"
        + (": " + ", ".join(sorted(str(e["name"]) for e in tally.replaced)) if tally.replaced else ""),
        f"unchanged (already indexed): {files(tally.unchanged)}",
    ]
    if tally.removed:
        lines.append(f"removed: {len(tally.removed)} file{'' if len(tally.removed) == 1 else 's'} no longer there")
    lines.append(f"in the index: {info.get('points', 0)} points, {info.get('documents')} documents (served by the server)")
    if tally.refused:
        lines.append(f"refused by the server: {files(tally.refused)}")
    if ignored:
        kinds = sorted(ignored.items(), key=lambda kv: (-kv[1], kv[0]))
        lines.append("ignored (type not indexed): " + ", ".join(f"{count} {suffix}" for suffix, count in kinds))
    return lines


class _Progress:
    """A bar over files sent (``--no-progress``: none)."""

    def __init__(self, total: int, enabled: bool) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, desc="Sending", unit="file", disable=not enabled or None)

    def update(self, count: int) -> None:
        self._bar.update(count)

    def close(self) -> None:
        self._bar.close()
