"""``mmst ls`` and ``mmst rm``: what an index holds, by file, and deleting files from it.

Both read the catalogue the ingestion job keeps (``ingest.catalog``: documents grouped by the file they
name) and load no model: ``ls`` opens the store to read, ``rm`` takes its write lock like ``mmst index``.
A file is deleted whole (each of its documents by one engine operation), so a kill leaves no half file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .stores import open_store


def add_catalog_parsers(commands: argparse._SubParsersAction) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    listing = commands.add_parser("ls", help="list the indexed files: path, kind, points, when indexed")
    listing.add_argument("paths", nargs="*", help="only files at or under these paths")
    listing.add_argument("--json", action="store_true", help="print JSON rows (path, kind, points, documents, indexed_at)")
    removing = commands.add_parser("rm", help="delete files (or every file under a folder) from the index")
    removing.add_argument("paths", nargs="+", help="indexed files or folders; they need not exist any more")
    return listing, removing


def cmd_ls(args: argparse.Namespace) -> int:
    from ..ingest import indexed_files

    with open_store(args, must_exist=True) as store:
        files = indexed_files(store, args.paths)
    if args.json:
        print(json.dumps([f.to_dict() for f in files], indent=1))
        return 0
    if not files:
        print("nothing indexed" + (" at or under " + ", ".join(args.paths) if args.paths else ""))
        return 0
    rows = [(f.label, f.kind, str(f.points), _when(f.indexed_at)) for f in files]
    widths = [max(len(row[i]) for row in [("PATH", "KIND", "POINTS", "INDEXED"), *rows]) for i in range(3)]
    for path, kind, points, when in [("PATH", "KIND", "POINTS", "INDEXED"), *rows]:
        print(f"{path:<{widths[0]}}  {kind:<{widths[1]}}  {points:>{widths[2]}}  {when}")
    total = sum(f.points for f in files)
    print(f"{len(files)} file{'' if len(files) == 1 else 's'}, {total} point{'' if total == 1 else 's'}")
    return 0


def _when(stamp: object) -> str:
    """``2026-12-02T10:15:03Z`` as ``2026-12-02 10:15:03 UTC``; ``-`` for points written outside a job."""
    return str(stamp).replace("T", " ").replace("Z", " UTC") if stamp else "-"


def cmd_rm(args: argparse.Namespace) -> int:
    from ..ingest import remove_files

    with open_store(args, must_exist=True) as store:  # an embedded store is locked for this process
        removal = remove_files(store, args.paths)
    names = ", ".join(os.path.basename(f.label) for f in removal.removed[:10])
    more = f" and {len(removal.removed) - 10} more" if len(removal.removed) > 10 else ""
    count = len(removal.removed)
    print(f"removed: {count} file{'' if count == 1 else 's'} ({removal.points} point{'' if removal.points == 1 else 's'})"
          + (f": {names}{more}" if count else ""))
    for path in removal.not_indexed:
        print(f"mmst: not in the index: {path}", file=sys.stderr)
    return 1 if removal.not_indexed else 0
