"""``mmst``: index a folder, then search it by text or by example (an image, an audio or a video clip).

    mmst index PATH... [--store DIR | --url URL] [--collection NAME] [--model ID_OR_DIR] [--backend B] [--strict]
               [--sparse-model ID_OR_DIR [--no-bm25]] [--keep-missing]
    mmst search "TEXT" | --image PATH | --audio PATH | --video PATH [--top-k N] [--rerank MODEL]...
                [--rerank-unsupported keep|raise] [--modality image|text|audio|video] [--mode dense|sparse|hybrid] [--json]
                [--mmr [LAMBDA]] [--max-per-document N] [--fusion relevance|rrf|dbsf] [--min-relevance R]
                [--rrf-k K] [--weight text=1,image=2]
                [--backend auto|torch|onnx] [--filter KEY=VALUE]...
    mmst ls [PATH...] [--json]
    mmst rm PATH...
    mmst info [--recall]
    mmst eval QRELS [--mode dense sparse hybrid] [--rerank MODEL]... [--k K] [--json]
    mmst calibrate QRELS [--rerank MODEL]... [--depth N] [--json]
    mmst copy --to-store DIR | --to-url URL [--to-collection NAME] [--quantization int8|binary] [--on-disk]

Every failure is one line on stderr and a non-zero exit; ``--debug`` shows the traceback. Every command
takes ``--no-progress`` (no progress bars at all, model loading included).
This module imports no model code at the top: ``mmst --help`` and ``mmst info`` never load torch,
transformers or sentence-transformers (tests/cli/test_imports.py checks it); each command imports
what it needs when it runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Optional, Sequence

from ..defaults import DEFAULT_COLLECTION
from ..errors import MMSTError
from .index_cmd import STRICT_EXIT, add_index_arguments, cmd_index
from .models import CLIError, add_backend_flags, model_backend_line
from .stores import DEFAULT_STORE, open_store

__all__ = ["CLIError", "DEFAULT_COLLECTION", "DEFAULT_STORE", "STRICT_EXIT", "build_parser", "main"]

MODE_HELP = ("hybrid (default): meaning (dense text and image vectors) plus exact words (BM25), fused by RRF; "
             "dense: meaning only; sparse: exact words only (BM25), needs query text")
QUERY_EPILOG = ("Text and --image together: the image drives the meaning (dense) search, the text drives the "
                "exact-word (BM25) match and the rerankers; with --mode dense the text is not used.")


def _store_options(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--store", default=None, help=f"embedded index directory (default {DEFAULT_STORE})")
    where.add_argument("--url", default=None, help="Qdrant server URL (API key from QDRANT_API_KEY)")
    parser.add_argument("--collection", default=DEFAULT_COLLECTION, help="collection name")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (model loading included)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmst", description="Multimodal search over images, PDFs and text.")
    commands = parser.add_subparsers(dest="command", required=True)

    index = commands.add_parser("index", help="read, embed and store files and folders")
    add_index_arguments(index)
    _store_options(index)

    search = commands.add_parser("search", help="search by text or by image", epilog=QUERY_EPILOG)
    search.add_argument("text", nargs="?", default=None, help="query text")
    example = search.add_mutually_exclusive_group()
    example.add_argument("--image", default=None, help="query image (path or URL); see below for text plus --image")
    example.add_argument("--audio", default=None, help="query audio clip (path or URL): search by example")
    example.add_argument("--video", default=None, help="query video clip (path or URL): search by example")
    search.add_argument("--top-k", type=int, default=10, help="results to show")
    search.add_argument("--allow-urls", action="store_true", help="let --image be an http(s) URL to fetch")
    search.add_argument("--allow-private-urls", action="store_true",
                        help="with --allow-urls: also fetch from loopback, link-local and private addresses (intranet)")
    search.add_argument("--rerank", action="append", default=None, metavar="MODEL",
                        help="reranker model id or directory; repeat it for a mixed index (a text cross-encoder "
                             "plus BLIP): each result goes to the first model that reads it, and all are ordered by "
                             "relevance (each model's score mapped to one 0-1 scale; mmst calibrate fits it)")
    search.add_argument("--rerank-unsupported", choices=["keep", "raise"], default="keep",
                        help="a result no reranker reads: keep it at its retrieval rank (default) or fail")
    search.add_argument("--modality", choices=["image", "text", "audio", "video"], default=None,
                        help="only this modality")
    search.add_argument("--mode", choices=["dense", "sparse", "hybrid"], default="hybrid", help=MODE_HELP)
    search.add_argument("--model", default=None, help="model id (must match the one the index was built with)")
    search.add_argument("--json", action="store_true", help="print JSON (each row has its score_kind)")
    search.add_argument("--evidence", action="store_true",
                        help="show where each result matched: regions of images and pages, moments of audio and "
                             "video, passages of text (JSON rows carry \"evidence\")")
    search.add_argument("--crops", default=None, metavar="DIR",
                        help="with --evidence (implied): write each region as an image and each moment as a clip "
                             "into DIR, and name them")
    add_backend_flags(search)
    from .retrieval_flags import add_retrieval_flags

    add_retrieval_flags(search)
    from .filter_flags import add_filter_flag

    add_filter_flag(search)
    _store_options(search)

    info = commands.add_parser("info", help="what an index holds")
    info.add_argument("--recall", action="store_true",
                      help="also estimate recall@10 of the approximate search against exact search, per vector")
    _store_options(info)

    from .calibrate_cmd import add_calibrate_parser
    from .catalog_cmd import add_catalog_parsers
    from .copy_job import add_copy_parser
    from .eval_cmd import add_eval_parser
    from .serve_cmd import add_serve_parser

    for catalog in add_catalog_parsers(commands):
        _store_options(catalog)
    _store_options(add_copy_parser(commands))
    _store_options(add_serve_parser(commands))
    _store_options(add_eval_parser(commands))
    _store_options(add_calibrate_parser(commands))
    return parser


def cmd_search(args: argparse.Namespace) -> int:
    from .search_cmd import cmd_search as run_search

    return run_search(args)


def cmd_info(args: argparse.Namespace) -> int:
    from ..ingest.manifest import read_manifest

    with open_store(args, must_exist=True) as store:
        manifest = read_manifest(store)
        counts = store.count_by_modality()
        backend = f"Qdrant server {args.url}" if args.url else f"Qdrant Edge at {os.path.abspath(args.store or DEFAULT_STORE)}"
        lines = [
            f"backend: {backend}",
            f"collection: {args.collection}",
            f"model: {manifest.model if manifest else '(none yet)'}",
            f"dimension: {manifest.dim if manifest else '-'}",
            *([model_backend_line(manifest.model)] if manifest else []),
            "vectors: " + ("late interaction (one vector per token or patch, MaxSim) plus a pooled vector"
                           if store.schema is not None and store.schema.late_interaction else "one per modality"),
            # The four text/image kinds always, audio and video when the index holds any.
            f"points: {store.count()} ("
            + ", ".join(f"{n} {m}" for m, n in counts.items() if n or m not in ("audio", "video")) + ")",
        ]
        from .info_view import quality_lines

        lines += quality_lines(store, args.recall)
    print("\n".join(lines))
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .calibrate_cmd import cmd_calibrate as run_calibrate

    return run_calibrate(args)


def cmd_copy(args: argparse.Namespace) -> int:
    from .copy_job import cmd_copy as run_copy

    return run_copy(args)


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve_cmd import cmd_serve as run_serve

    return run_serve(args)


def cmd_eval(args: argparse.Namespace) -> int:
    from .eval_cmd import cmd_eval as run_eval

    return run_eval(args)


def cmd_ls(args: argparse.Namespace) -> int:
    from .catalog_cmd import cmd_ls as run_ls

    return run_ls(args)


def cmd_rm(args: argparse.Namespace) -> int:
    from .catalog_cmd import cmd_rm as run_rm

    return run_rm(args)


COMMANDS = {"index": cmd_index, "search": cmd_search, "info": cmd_info, "copy": cmd_copy, "serve": cmd_serve,
            "eval": cmd_eval, "ls": cmd_ls, "rm": cmd_rm, "calibrate": cmd_calibrate}


def _server_errors() -> tuple[type[BaseException], ...]:
    """qdrant-client's errors for a server that refuses, times out or answers with an error status.
    Looked up only when something failed, and only if qdrant-client was loaded (it is heavy to import)."""
    if "qdrant_client" not in sys.modules:
        return ()
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    return (ResponseHandlingException, UnexpectedResponse)


def _server_message(exc: BaseException, url: Optional[str]) -> str:
    cause = exc.__cause__ or exc.__context__ or exc
    status = getattr(exc, "status_code", None)
    what = f"answered HTTP {status}" if status is not None else f"could not be reached ({cause})"
    return f"the Qdrant server at {url} {what}; check --url and that the server is running"


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.no_progress:
        from .progress import silence_progress

        silence_progress()
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("mmst: interrupted; run the same command again to resume", file=sys.stderr)
        if argv is None:  # the mmst program itself: give the prompt back now (stores are closed; tearing
            sys.stdout.flush()  # down an interpreter with torch loaded takes seconds); a caller gets 130
            sys.stderr.flush()
            os._exit(130)
        return 130
    except (MMSTError, OSError, ValueError, ImportError) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"mmst: error: {exc}", file=sys.stderr)
        return 1
    except _server_errors() as exc:
        if args.debug:
            traceback.print_exc()
        server = getattr(args, "url", None) or getattr(args, "to_url", None)  # mmst copy: the source's, else the target's
        print(f"mmst: error: {_server_message(exc, server)}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the CLI's last resort: one line, never a traceback
        if args.debug:
            traceback.print_exc()
        print(f"mmst: internal error: {type(exc).__name__}: {exc} (run with --debug for details)", file=sys.stderr)
        return 2
