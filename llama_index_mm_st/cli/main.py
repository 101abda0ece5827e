"""``mmst``: index a folder, then search it by text or by image.

    mmst index PATH... [--store DIR | --url URL] [--collection NAME] [--model ID_OR_DIR]
    mmst search "TEXT" | --image PATH [--top-k N] [--rerank MODEL] [--modality image|text]
                [--mode dense|sparse|hybrid] [--json]
    mmst info

Every failure is one line on stderr and a non-zero exit; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path
from typing import Optional, Sequence

from ..embedding import DEFAULT_MODEL, MultimodalEmbedding
from ..errors import MMSTError
from ..store import MultimodalQdrantStore
from .manifest import check_model, read_manifest, write_manifest

DEFAULT_STORE = "./mmst_index"
DEFAULT_COLLECTION = "mmst"


class CLIError(MMSTError):
    """A user-facing failure: printed as one line."""


def _store_options(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--store", default=None, help=f"embedded index directory (default {DEFAULT_STORE})")
    where.add_argument("--url", default=None, help="Qdrant server URL (API key from QDRANT_API_KEY)")
    parser.add_argument("--collection", default=DEFAULT_COLLECTION, help="collection name")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmst", description="Multimodal search over images, PDFs and text.")
    commands = parser.add_subparsers(dest="command", required=True)

    index = commands.add_parser("index", help="read, embed and store files and folders")
    index.add_argument("paths", nargs="+", help="files or folders (images, PDFs, .txt, .md)")
    index.add_argument("--model", default=None, help=f"model id or local directory (default {DEFAULT_MODEL})")
    index.add_argument("--no-progress", action="store_true", help="no progress bars")
    index.add_argument("--ray", action="store_true", help="run on Ray: local, or the cluster at RAY_ADDRESS ([ray] extra)")
    index.add_argument("--ray-actors", type=int, default=1, help="with --ray: model actors (one model each)")
    index.add_argument("--ray-gpus-per-actor", type=float, default=None, help="with --ray: GPUs per actor (default: 1 if any)")
    _store_options(index)

    search = commands.add_parser("search", help="search by text or by image")
    search.add_argument("text", nargs="?", default=None, help="query text")
    search.add_argument("--image", default=None, help="query image (path or URL)")
    search.add_argument("--top-k", type=int, default=10, help="results to show")
    search.add_argument("--rerank", default=None, help="reranker model id or directory")
    search.add_argument("--modality", choices=["image", "text"], default=None, help="only this modality")
    search.add_argument("--mode", choices=["dense", "sparse", "hybrid"], default="hybrid")
    search.add_argument("--model", default=None, help="model id (must match the one the index was built with)")
    search.add_argument("--json", action="store_true", help="print JSON")
    _store_options(search)

    info = commands.add_parser("info", help="what an index holds")
    _store_options(info)
    return parser


def open_store(args: argparse.Namespace, must_exist: bool, dim: Optional[int] = None) -> MultimodalQdrantStore:
    """The store named by --store/--url; ``dim`` creates its collection if it has none yet."""
    if args.url:
        return MultimodalQdrantStore(args.collection, url=args.url, dim=dim)
    path = args.store or DEFAULT_STORE
    if must_exist and not Path(path).exists():
        raise CLIError(f"no index at {path}: create one with 'mmst index PATH --store {path}'")
    return MultimodalQdrantStore(args.collection, path=path, dim=dim)


def model_id(model: Optional[str]) -> Optional[str]:
    """A local model directory is recorded by its absolute path, so ./m and /abs/m are the same model."""
    return os.path.abspath(model) if model is not None and os.path.isdir(model) else model


def load_embedding(model: str) -> MultimodalEmbedding:
    try:
        return MultimodalEmbedding(model)
    except OSError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CLIError(f"cannot load model {model!r}: {first_line}") from exc


def cmd_index(args: argparse.Namespace) -> int:
    if args.ray:
        from .ray_index import cmd_index_ray

        return cmd_index_ray(args)
    if args.ray_actors != 1 or args.ray_gpus_per_actor is not None:
        raise CLIError("--ray-actors and --ray-gpus-per-actor need --ray")
    from ..readers import ImageReader
    from .collect import collect
    from .index_job import format_summary, run_index

    collected = collect(args.paths, ImageReader())
    with open_store(args, must_exist=False) as store:
        manifest = read_manifest(store)
    check_model(manifest, model_id(args.model))
    model = model_id(args.model) or (manifest.model if manifest else DEFAULT_MODEL)
    embedding = load_embedding(model)
    with open_store(args, must_exist=False, dim=embedding.dimension) as store:
        write_manifest(store, model, embedding.dimension)
        summary = run_index(collected, store, embedding, progress=not args.no_progress)
        if summary.added:
            store.optimize()
    print("\n".join(format_summary(summary)))
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from ..pipeline import build_pipeline
    from .search_view import result_rows, to_json, to_table

    if args.text is None and args.image is None:
        raise CLIError('give query text or --image PATH, e.g. mmst search "a red car"')
    if args.image and not args.image.startswith(("http://", "https://")) and not os.path.exists(args.image):
        raise CLIError(f"query image not found: {args.image}")
    if args.top_k < 1:
        raise CLIError("--top-k must be at least 1")
    with open_store(args, must_exist=True) as store:
        manifest = read_manifest(store)
        if manifest is None:
            raise CLIError("this index is empty: add files with 'mmst index PATH' first")
        check_model(manifest, model_id(args.model))
        embedding = load_embedding(manifest.model)
        reranker = None
        if args.rerank:
            from ..rerank import MultimodalReranker

            try:
                reranker = MultimodalReranker(args.rerank, top_n=args.top_k)
            except OSError as exc:
                raise CLIError(f"cannot load reranker {args.rerank!r}: {exc}") from exc
        candidates = max(args.top_k, 3 * args.top_k if reranker else args.top_k)
        retriever = build_pipeline(store, embedding, reranker, top_k=candidates, mode=args.mode,
                                   modality=args.modality)
        results = retriever.search(args.text, image=args.image)[: args.top_k]
    rows = result_rows(results)
    print(to_json(rows) if args.json else to_table(rows))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .index_job import _modality_filter

    with open_store(args, must_exist=True) as store:
        manifest = read_manifest(store)
        counts = {m: store.count(_modality_filter(m)) for m in ("text", "image", "text+image")}
        backend = f"Qdrant server {args.url}" if args.url else f"Qdrant Edge at {os.path.abspath(args.store or DEFAULT_STORE)}"
        lines = [
            f"backend: {backend}",
            f"collection: {args.collection}",
            f"model: {manifest.model if manifest else '(none yet)'}",
            f"dimension: {manifest.dim if manifest else '-'}",
            f"points: {store.count()} (" + ", ".join(f"{n} {m}" for m, n in counts.items()) + ")",
        ]
    print("\n".join(lines))
    return 0


COMMANDS = {"index": cmd_index, "search": cmd_search, "info": cmd_info}


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("mmst: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except (MMSTError, OSError, ValueError, ImportError) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"mmst: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the CLI's last resort: one line, never a traceback
        if args.debug:
            traceback.print_exc()
        print(f"mmst: internal error: {type(exc).__name__}: {exc} (run with --debug for details)", file=sys.stderr)
        return 2
