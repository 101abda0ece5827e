"""The store named by ``--store``/``--url``/``--collection``: how every command opens it."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from ..defaults import DEFAULT_STORE_DIR
from .models import CLIError

if TYPE_CHECKING:
    from ..ingest.manifest import Manifest
    from ..store import MultimodalQdrantStore

DEFAULT_STORE = DEFAULT_STORE_DIR


def store_exists(args: argparse.Namespace) -> bool:
    return bool(args.url) or Path(args.store or DEFAULT_STORE).exists()


def open_store(args: argparse.Namespace, must_exist: bool, **options: object) -> "MultimodalQdrantStore":
    """The store named by --store/--url (an Edge store is locked for this process from here on).
    ``must_exist``: a missing embedded store is an error instead of a new one, and so is one whose
    creation was interrupted (``unfinished``: the message says how to finish it). ``options``: store fields
    given on the command line (``mmst index --sparse-model``); left out, a store keeps its own."""
    from ..store import MultimodalQdrantStore

    if args.url:
        with warnings.catch_warnings(record=True) as caught:  # qdrant-client warns before failing to connect
            warnings.simplefilter("always")
            store = MultimodalQdrantStore(args.collection, url=args.url, **options)
        for warning in caught:  # connected: pass its warnings on
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        return store
    path = args.store or DEFAULT_STORE
    if must_exist and not Path(path).exists():
        raise CLIError(f"no index at {path}: create one with 'mmst index PATH --store {path}'")
    store = MultimodalQdrantStore(args.collection, path=path, **options)
    if must_exist and store.unfinished:  # a reader (search, info, eval, serve, copy's source) says why, not "empty"
        message = store.unfinished
        store.close()
        raise CLIError(message)
    return store


def indexed_manifest(store: "MultimodalQdrantStore") -> "Manifest":
    """The index's manifest (which model made it), for the commands that read an index: search, eval,
    calibrate. An index nothing was written to yet is an error."""
    from ..ingest.manifest import read_manifest

    manifest = read_manifest(store)
    if manifest is None:
        raise CLIError("this index is empty: add files with 'mmst index PATH' first")
    return manifest
