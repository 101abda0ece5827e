"""``mmst``: index a folder, then search it by text or by example (an image, an audio or a video clip).

    mmst index PATH... [--store DIR | --url URL] [--collection NAME] [--model ID_OR_DIR] [--backend B] [--strict]
    mmst search "TEXT" | --image PATH | --audio PATH | --video PATH [--top-k N] [--rerank MODEL]...
                [--rerank-unsupported keep|raise] [--modality image|text|audio|video] [--mode dense|sparse|hybrid] [--json]
                [--backend auto|torch|onnx]
    mmst info
    mmst copy --to-store DIR | --to-url URL [--to-collection NAME] [--quantization int8|binary] [--on-disk]

Every failure is one line on stderr and a non-zero exit; ``--debug`` shows the traceback.
This module imports no model code at the top: ``mmst --help`` and ``mmst info`` never load torch,
transformers or sentence-transformers (tests/cli/test_imports.py checks it); each command imports
what it needs when it runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from ..defaults import DEFAULT_COLLECTION, DEFAULT_STORE_DIR
from ..errors import MMSTError, UnsupportedModalityError
from .models import DEFAULT_MODEL, CLIError, load_embedding, load_reranker, model_backend_line, model_name, resolve_model

if TYPE_CHECKING:
    from ..store import MultimodalQdrantStore
    from .index_job import IndexSummary
    from .manifest import Manifest

DEFAULT_STORE = DEFAULT_STORE_DIR
STRICT_EXIT = 3
RERANK_CANDIDATES_PER_RESULT = 3
"""With a reranker, retrieve this many candidates per result shown, so it has a real choice to make."""

__all__ = ["CLIError", "DEFAULT_COLLECTION", "DEFAULT_STORE", "build_parser", "main"]

MODE_HELP = ("hybrid (default): meaning (dense text and image vectors) plus exact words (BM25), fused by RRF; "
             "dense: meaning only; sparse: exact words only (BM25), needs query text")
QUERY_EPILOG = ("Text and --image together: the image drives the meaning (dense) search, the text drives the "
                "exact-word (BM25) match and the rerankers; with --mode dense the text is not used.")


BACKEND_HELP = ("the models' forward pass: auto (default: the fastest exact path measured on this CPU, torch on a "
                "GPU), torch, or onnx (ONNX Runtime, extra [onnx]; exported once, cached)")


def backend_option(args: argparse.Namespace) -> dict:
    """``--backend`` as model options; empty when not given, so the library default applies."""
    return {"backend": args.backend} if getattr(args, "backend", None) else {}


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
    index.add_argument("paths", nargs="+", help="files or folders (images, PDFs, .txt, .md, audio, video)")
    index.add_argument("--model", default=None,
                       help=f"hub model id or local model directory (default {DEFAULT_MODEL}); offline, use a "
                            "local directory or HF_HUB_OFFLINE=1 with a filled cache")
    index.add_argument("--backend", choices=["auto", "torch", "onnx"], default=None, help=BACKEND_HELP)
    index.add_argument("--no-progress", action="store_true", help="no progress bars (model loading included)")
    index.add_argument("--strict", action="store_true",
                       help=f"exit with status {STRICT_EXIT} when any file was skipped (unreadable or broken)")
    index.add_argument("--ray", action="store_true", help="run on Ray: local, or the cluster at RAY_ADDRESS ([ray] extra)")
    index.add_argument("--ray-actors", type=int, default=1, help="with --ray: model actors (one model each)")
    index.add_argument("--ray-gpus-per-actor", type=float, default=None, help="with --ray: GPUs per actor (default: 1 if any)")
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
                             "plus BLIP): each result goes to the first model that reads it, rankings merge by RRF")
    search.add_argument("--rerank-unsupported", choices=["keep", "raise"], default="keep",
                        help="a result no reranker reads: keep it at its retrieval rank (default) or fail")
    search.add_argument("--modality", choices=["image", "text", "audio", "video"], default=None,
                        help="only this modality")
    search.add_argument("--mode", choices=["dense", "sparse", "hybrid"], default="hybrid", help=MODE_HELP)
    search.add_argument("--model", default=None, help="model id (must match the one the index was built with)")
    search.add_argument("--json", action="store_true", help="print JSON (each row has its score_kind)")
    search.add_argument("--backend", choices=["auto", "torch", "onnx"], default=None, help=BACKEND_HELP)
    _store_options(search)

    info = commands.add_parser("info", help="what an index holds")
    _store_options(info)

    from .copy_job import add_copy_parser

    _store_options(add_copy_parser(commands))
    return parser


def store_exists(args: argparse.Namespace) -> bool:
    return bool(args.url) or Path(args.store or DEFAULT_STORE).exists()


def open_store(args: argparse.Namespace, must_exist: bool, dim: Optional[int] = None,
               late_interaction: Optional[bool] = None,
               dense_vectors: Optional[Sequence[str]] = None) -> "MultimodalQdrantStore":
    """The store named by --store/--url; ``dim`` creates its collection if it has none yet, with
    multivectors when ``late_interaction`` (the model is a ColPali-family retriever) and a dense
    vector for each of ``dense_vectors`` (None: all four; see ``new_index_vectors``)."""
    from ..store import MultimodalQdrantStore

    if args.url:
        with warnings.catch_warnings(record=True) as caught:  # qdrant-client warns before failing to connect
            warnings.simplefilter("always")
            store = MultimodalQdrantStore(args.collection, url=args.url, dim=dim, late_interaction=late_interaction,
                                          dense_vectors=dense_vectors)
        for warning in caught:  # connected: pass its warnings on
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        return store
    path = args.store or DEFAULT_STORE
    if must_exist and not Path(path).exists():
        raise CLIError(f"no index at {path}: create one with 'mmst index PATH --store {path}'")
    return MultimodalQdrantStore(args.collection, path=path, dim=dim, late_interaction=late_interaction,
                                 dense_vectors=dense_vectors)


def read_index(args: argparse.Namespace) -> tuple[Optional["Manifest"], bool]:
    """The index's manifest and whether its collection exists yet. Reading must not create a store."""
    from .manifest import read_manifest

    if not store_exists(args):
        return None, False
    with open_store(args, must_exist=True) as store:
        return read_manifest(store), store.schema is not None


def new_index_vectors(embedding: object, built: bool) -> Optional[list[str]]:
    """The dense vectors to create: for a new index, text and each other modality the model embeds
    (each vector costs memory and disk for every point); None for an index that exists, which keeps
    the vectors it has (perhaps all four, from before)."""
    if built:
        return None
    return [m for m in ("text", "image", "audio", "video") if m == "text" or embedding.supports(m)]  # type: ignore[attr-defined]


def cmd_index(args: argparse.Namespace) -> int:
    if args.ray:
        from .ray_index import cmd_index_ray

        return cmd_index_ray(args)
    if args.ray_actors != 1 or args.ray_gpus_per_actor is not None:
        raise CLIError("--ray-actors and --ray-gpus-per-actor need --ray")
    from .manifest import check_model, write_manifest

    progress = not args.no_progress
    missing = [path for path in args.paths if not os.path.exists(path)]
    if missing:
        raise CLIError(f"no such file or folder: {', '.join(missing)}")
    manifest, built = read_index(args)
    requested = model_name(args.model) if args.model else None
    check_model(manifest, requested)
    source = resolve_model(requested or (manifest.model if manifest else DEFAULT_MODEL))  # fails fast offline

    from ..readers import ImageReader
    from .collect import collect
    from .index_job import run_index
    from .progress import Stage, quiet_libraries

    collected = collect(args.paths, ImageReader())
    with quiet_libraries(), Stage("Loading model", enabled=progress):
        embedding = load_embedding(source, **backend_option(args))
    with open_store(args, must_exist=False, dim=embedding.dimension, late_interaction=embedding.late_interaction,
                    dense_vectors=new_index_vectors(embedding, built)) as store:
        summary = run_index(
            collected, store, embedding, progress=progress,
            before_first_add=lambda: write_manifest(store, source.name, embedding.dimension),
        )
        if summary.added or summary.replaced:
            store.optimize()
    return report_index(summary, args.strict)


def report_index(summary: "IndexSummary", strict: bool) -> int:
    """Print an index run's summary (stdout) and its problems (stderr); the exit status."""
    from .index_job import format_problems, format_summary

    print("\n".join(format_summary(summary)))
    problems = format_problems(summary)
    if problems:
        print("\n".join(problems), file=sys.stderr)
    return STRICT_EXIT if strict and summary.skipped else 0


def _check_query(args: argparse.Namespace) -> None:
    if args.text is not None and not args.text.strip():
        raise CLIError('the query text is empty (only whitespace): give words, e.g. mmst search "a red car", '
                       "or --image PATH")
    flag, example = _example(args)
    if args.text is None and example is None:
        raise CLIError('give query text or --image/--audio/--video PATH, e.g. mmst search "a red car"')
    if args.mode == "sparse" and example:
        noun = {"image": "an image", "audio": "an audio clip", "video": "a video"}[flag]
        raise CLIError(f"--mode sparse matches exact words and {noun} has none: leave out --{flag}, "
                       f"or use --mode hybrid or dense to search by {flag}")
    from ..fetch import is_file_url, is_url

    if example and is_file_url(example):
        raise CLIError(f"--{flag} {example}: give a file:// {flag} as a plain path instead")
    remote = example is not None and is_url(example)
    if remote and not args.allow_urls:
        raise CLIError(f"--{flag} {example} is a URL: add --allow-urls to fetch it")
    if example and not remote and not os.path.exists(example):
        raise CLIError(f"query {flag} not found: {example}")
    if args.top_k < 1:
        raise CLIError("--top-k must be at least 1")


def _example(args: argparse.Namespace) -> tuple[str, Optional[str]]:
    """Which search-by-example flag was given (--image, --audio or --video; at most one) and its value."""
    for flag in ("image", "audio", "video"):
        value = getattr(args, flag, None)
        if value is not None:
            return flag, value
    return "image", None


def _check_words(text: str, store: "MultimodalQdrantStore") -> None:
    """``--mode sparse`` needs a word BM25 can match (stop words and punctuation alone give none)."""
    if not len(store.sparse_query_vector(text).indices):
        raise CLIError(f"--mode sparse matches exact words, and {text!r} has none it can search for (only "
                       "stop words or punctuation); use other words, or --mode hybrid or dense")


def cmd_search(args: argparse.Namespace) -> int:
    from ..pipeline import build_pipeline
    from .manifest import check_model, read_manifest
    from .progress import quiet_libraries
    from ..hits import score_kind, search_hits
    from .search_view import to_json, to_table

    _check_query(args)
    with open_store(args, must_exist=True) as store:
        manifest = read_manifest(store)
        if manifest is None:
            raise CLIError("this index is empty: add files with 'mmst index PATH' first")
        check_model(manifest, model_name(args.model) if args.model else None)
        if args.mode == "sparse":
            _check_words(args.text, store)
        reranker = None
        with quiet_libraries():  # the answer goes to stdout; no loading bars on stderr for a search
            embedding = load_embedding(resolve_model(manifest.model), allow_urls=args.allow_urls,
                                       allow_private_urls=args.allow_private_urls, **backend_option(args))
            if args.rerank:
                reranker = load_reranker(args.rerank, top_n=args.top_k, on_unsupported=args.rerank_unsupported,
                                         **backend_option(args))
        candidates = RERANK_CANDIDATES_PER_RESULT * args.top_k if reranker else args.top_k
        retriever = build_pipeline(store, embedding, reranker, top_k=candidates, mode=args.mode,
                                   modality=args.modality)
        flag, example = _example(args)
        if example is not None and flag != "image" and not embedding.supports(flag):
            raise CLIError(f"--{flag}: the index's model ({manifest.model}) cannot read {flag}; it reads "
                           + ", ".join(m for m in ("text", "image", "audio", "video") if embedding.supports(m)))
        try:
            results = retriever.search(args.text, **({flag: example} if example is not None else {}))[: args.top_k]
        except UnsupportedModalityError as exc:  # only raised with --rerank-unsupported raise
            raise CLIError("--rerank-unsupported raise: some results are of a kind no --rerank model reads (an image "
                           "with only a text cross-encoder, say); add a --rerank model that reads them, or use "
                           "--rerank-unsupported keep (--debug names the results)") from exc
    late = store.schema is not None and store.schema.late_interaction
    kind = score_kind(args.mode, len(args.rerank or ()), late)
    rows = [hit.to_dict() for hit in search_hits(results, kind)]
    print(to_json(rows) if args.json else to_table(rows, kind, args.mode, late))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .manifest import read_manifest

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
    print("\n".join(lines))
    return 0


def cmd_copy(args: argparse.Namespace) -> int:
    from .copy_job import cmd_copy as run_copy

    return run_copy(args)


COMMANDS = {"index": cmd_index, "search": cmd_search, "info": cmd_info, "copy": cmd_copy}


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
