"""``mmst copy``: move an index to another store or to a Qdrant server, vectors and all.

The points are copied as they are (``MultimodalQdrantStore.copy_to``), so nothing is embedded again
and no model is loaded; the recorded model comes along, so ``mmst search`` on the copy knows it.
The copy is idempotent: one that stopped half way is finished by running it again.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from .models import CLIError

if TYPE_CHECKING:  # the parser is built for every command: importing the ingestion core here costs seconds
    from ..ingest.manifest import Manifest


def add_copy_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    copy = commands.add_parser(
        "copy", help="copy an index to another store or a Qdrant server (vectors included: no re-embedding)",
        description="Copy every point of the index named by --store/--url/--collection into --to-store or "
                    "--to-url. Storage options apply to a new target collection; the layout must match.",
    )
    target = copy.add_mutually_exclusive_group(required=True)
    target.add_argument("--to-store", default=None, help="embedded index directory to copy into")
    target.add_argument("--to-url", default=None, help="Qdrant server URL to copy into (API key from QDRANT_API_KEY)")
    copy.add_argument("--to-collection", default=None, help="collection name there (default: the source's)")
    copy.add_argument("--quantization", choices=["int8", "binary"], default=None,
                      help="new target collection: compressed search vectors (originals kept for rescoring)")
    copy.add_argument("--on-disk", action="store_true", help="new target collection: original vectors on disk")
    copy.add_argument("--shard-number", type=int, default=None, help="new server collection: shards")
    copy.add_argument("--replication-factor", type=int, default=None, help="new server collection: copies of each shard")
    return copy


def _where(store: str | None, url: str | None, collection: str) -> str:
    return f"{url or os.path.abspath(store or '')} (collection {collection})"


def _check_same_model(source: Optional["Manifest"], target: Optional["Manifest"]) -> None:
    """Vectors of two models never mix in one index, even at the same dimension."""
    if source is not None and target is not None and source.model != target.model:
        raise CLIError(f"the target index was built with model {target.model!r}, this one with {source.model!r}; "
                       "their vectors are not comparable: copy into a new --to-collection or --to-store")


def cmd_copy(args: argparse.Namespace) -> int:
    from ..ingest.manifest import read_manifest
    from ..store import MultimodalQdrantStore
    from .stores import DEFAULT_STORE, open_store

    source_dir = None if args.url else os.path.abspath(args.store or DEFAULT_STORE)
    collection = args.to_collection or args.collection
    same_place = (bool(args.to_store and source_dir and os.path.abspath(args.to_store) == source_dir)
                  or bool(args.to_url and args.url and args.to_url.rstrip("/") == args.url.rstrip("/")))
    if same_place and collection == args.collection:
        raise CLIError("the target is the source itself; give another --to-store, --to-url or --to-collection")
    if (args.shard_number or args.replication_factor) and not args.to_url:
        raise CLIError("--shard-number and --replication-factor apply to a server collection (--to-url)")
    options = {
        key: value for key, value in (
            ("quantization", args.quantization), ("on_disk", args.on_disk or None),
            ("shard_number", args.shard_number), ("replication_factor", args.replication_factor),
        ) if value is not None
    }
    with open_store(args, must_exist=True) as source:
        if source.schema is None:
            raise CLIError(f"the index at {_where(args.store or DEFAULT_STORE, args.url, args.collection)} is empty")
        if args.to_url:
            target = MultimodalQdrantStore(collection, url=args.to_url, **options)
        else:
            Path(args.to_store).mkdir(parents=True, exist_ok=True)
            target = MultimodalQdrantStore(collection, path=args.to_store, **options)
        with target:
            built_by = read_manifest(source)
            _check_same_model(built_by, read_manifest(target))
            copied = source.copy_to(target)
            total = target.count()
    print(f"copied {copied} points to {_where(args.to_store, args.to_url, collection)}; it holds {total}"
          + (f" (model {built_by.model})" if built_by else ""))
    return 0
