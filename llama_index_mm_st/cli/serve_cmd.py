"""``mmst serve``: the thin runner of ``llama_index_mm_st.serve`` (extra ``[serve]``).

It settles which model to load before binding (the index's own model when one is served; a wrong
``--model`` or an unreachable hub fails in one line at once), then opens the port and loads and warms
the models in the background while ``/health`` answers 503, and serves until SIGTERM, after which the
requests in flight finish and new ones get 503.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any, Optional

from ..defaults import DEFAULT_STORE_DIR
from .models import CLIError, add_backend_flags, backend_option

API_KEY_ENV = "MMST_API_KEY"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def add_serve_parser(commands: Any) -> argparse.ArgumentParser:
    """The ``serve`` sub-command; the caller adds the store options (--store/--url/--collection)."""
    from ..serve.settings import Limits
    from ..serve.slow_clients import HEADERS_TIMEOUT_S

    defaults = Limits()
    serve = commands.add_parser(
        "serve", help="serve embeddings, rerank and search over HTTP (OpenAI, Infinity, TEI, Cohere/Jina shapes)",
        description="Serve the model (and, with --store/--url or an index in the default place, the index) "
                    "over HTTP. Needs the [serve] extra. Binds to 127.0.0.1 unless --host says otherwise.")
    serve.add_argument("--model", default=None,
                       help="embedding model id or directory (default: the index's model, else the default model)")
    serve.add_argument("--rerank", action="append", default=None, metavar="MODEL",
                       help="reranker model id or directory; repeat for a mixed index (text cross-encoder plus BLIP)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=7997, help="port (default 7997)")
    serve.add_argument("--api-key", default=None,
                       help=f"key every route but /health and /metrics requires (default: ${API_KEY_ENV}; none: open)")
    serve.add_argument("--served-model-name", default=None, help="the name clients send as 'model' (default: --model)")
    serve.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    add_backend_flags(serve)
    limits = serve.add_argument_group("limits")
    limits.add_argument("--max-queue", type=int, default=defaults.max_queue,
                        help="items waiting per model before 429 (default %(default)s)")
    limits.add_argument("--max-queue-wait", type=float, default=defaults.max_queue_wait_s, metavar="SECONDS",
                        help="longest wait in the queue before 429 (default %(default)s)")
    limits.add_argument("--max-batch-items", type=int, default=defaults.max_batch_items,
                        help="items per model batch (default %(default)s)")
    limits.add_argument("--max-batch-tokens", type=int, default=defaults.max_batch_tokens,
                        help="text tokens per batch, counted as an upper bound (default %(default)s)")
    limits.add_argument("--max-batch-pixels", type=int, default=defaults.max_batch_pixels,
                        help="image source pixels per batch (default %(default)s)")
    limits.add_argument("--max-batch-media-seconds", type=float, default=defaults.max_batch_media_seconds,
                        help="seconds of audio or video per batch (default %(default)s)")
    limits.add_argument("--max-request-items", type=int, default=defaults.max_request_items,
                        help="inputs or documents per request before 413 (default %(default)s)")
    limits.add_argument("--max-body-mb", type=float, default=defaults.max_body_bytes / 2**20,
                        help="largest request body in MiB before 413 (default %(default)s)")
    limits.add_argument("--batch-timeout", type=float, default=defaults.batch_timeout_s, metavar="SECONDS",
                        help="a batch running longer marks its worker hung: /health turns 503 (default %(default)s)")
    serve.add_argument("--allow-urls", action="store_true", help="fetch media given as http(s) URLs (off: data: URIs only)")
    serve.add_argument("--allow-private-urls", action="store_true",
                       help="with --allow-urls: also fetch from loopback, link-local and private addresses")
    index = serve.add_argument_group("the served index (POST/GET/DELETE /v1/documents)")
    index.add_argument("--create", action="store_true",
                       help="make the --store index when it does not exist (empty, to fill over HTTP)")
    index.add_argument("--read-only", action="store_true", help="serve the index for search only: no document writes")
    index.add_argument("--index-root", default=None, metavar="DIR",
                       help="documents sent as server paths are read only under DIR (without it, no server path is read)")
    index.add_argument("--files", default=None, metavar="DIR",
                       help="where uploaded documents are kept (default: beside an embedded index, "
                            "<store>/<collection>.files)")
    serve.add_argument("--drain-seconds", type=float, default=0.0,
                       help="after SIGTERM, keep answering 503 at least this long (for a load balancer to notice)")
    serve.add_argument("--headers-timeout", type=float, default=HEADERS_TIMEOUT_S, metavar="SECONDS",
                       help="close a connection that sends no complete request headers in this long (slow clients; "
                            "default %(default)s)")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")
    return serve


LIMIT_FLAGS = {
    "max_queue": "--max-queue", "max_queue_wait_s": "--max-queue-wait", "max_batch_items": "--max-batch-items",
    "max_batch_tokens": "--max-batch-tokens", "max_batch_pixels": "--max-batch-pixels",
    "max_batch_media_seconds": "--max-batch-media-seconds", "max_request_items": "--max-request-items",
    "max_body_bytes": "--max-body-mb", "batch_timeout_s": "--batch-timeout",
}


def _limits(args: argparse.Namespace) -> Any:
    from ..serve.settings import LimitError, Limits

    try:
        return Limits(max_queue=args.max_queue, max_queue_wait_s=args.max_queue_wait, max_batch_items=args.max_batch_items,
                      max_batch_tokens=args.max_batch_tokens, max_batch_pixels=args.max_batch_pixels,
                      max_batch_media_seconds=args.max_batch_media_seconds, max_request_items=args.max_request_items,
                      max_body_bytes=max(1, int(args.max_body_mb * 2**20)), batch_timeout_s=args.batch_timeout)
    except LimitError as exc:
        raise CLIError(f"{LIMIT_FLAGS.get(exc.field, exc.field)}: {exc}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    from .stores import open_store, store_exists

    if args.allow_private_urls and not args.allow_urls:
        raise CLIError("--allow-private-urls needs --allow-urls")
    if not args.headers_timeout > 0:
        raise CLIError(f"--headers-timeout must be > 0, got {args.headers_timeout:g}")
    limits = _limits(args)
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    serves_index = bool(args.url or args.store or Path(DEFAULT_STORE_DIR).exists())
    if args.index_root is not None and not Path(args.index_root).is_dir():
        raise CLIError(f"--index-root {args.index_root} is not a folder")
    if (args.create or args.index_root or args.files) and not serves_index:
        raise CLIError("--create, --index-root and --files are for a served index: give --store DIR (or --url URL)")
    if args.create and args.read_only:
        raise CLIError("--create makes an empty index to fill over HTTP; --read-only takes no documents")
    if serves_index and not store_exists(args) and not args.create:
        raise CLIError(f"no index at {args.store}: create one with 'mmst index PATH --store {args.store}', or start "
                       "an empty one to fill over HTTP with --create, or serve without --store")
    # Opened once, held while serving (an embedded store's lock names this server to anyone refused).
    store = open_store(args, must_exist=not args.create) if serves_index else None
    try:
        return _serve(args, store, limits, api_key, serves_index)
    finally:
        if store is not None:
            store.close()


def _serve(args: argparse.Namespace, store: Any, limits: Any, api_key: Optional[str], serves_index: bool) -> int:
    from ..fetch import FetchOptions
    from ..ingest.manifest import check_model, read_manifest
    from ..serve import Components, ServeSettings, create_app
    from ..serve.runner import listen
    from .models import DEFAULT_MODEL, load_embedding, load_reranker, model_name, resolve_model

    manifest = read_manifest(store) if store is not None and store.schema is not None else None
    if serves_index and manifest is None and args.read_only:
        raise CLIError("this index is empty: add files with 'mmst index PATH' first, or serve it without --read-only "
                       "and add documents over HTTP")
    requested = model_name(args.model) if args.model else None
    check_model(manifest, requested)
    source = resolve_model(requested or (manifest.model if manifest else DEFAULT_MODEL))  # fails fast offline
    model_options = {"device": args.device, **backend_option(args)}

    def load() -> Components:
        embedding = load_embedding(source, **model_options)
        reranker = (load_reranker(args.rerank, top_n=limits.max_top_k, on_unsupported="keep", **model_options)
                    if args.rerank else None)
        return Components(embedding, reranker, store, close_store=False, model_name=source.name)  # cmd_serve closes it

    fetch = FetchOptions(allow_urls=args.allow_urls, allow_private_urls=args.allow_private_urls)
    settings = ServeSettings(api_key=api_key, limits=limits, fetch=fetch, model_id=args.served_model_name,
                             read_only=args.read_only,
                             index_root=Path(args.index_root).resolve() if args.index_root else None,
                             files_dir=Path(args.files).resolve() if args.files else None)
    sock = listen(args.host, args.port)  # a port in use fails here, in one line, before anything starts
    try:
        return _run(args, sock, create_app(load, settings), store, api_key, source.name, serves_index)
    finally:
        sock.close()  # uvicorn closes it when it stops; closing again is harmless


def _run(args: argparse.Namespace, sock: Any, app: Any, store: Any, api_key: Optional[str], model: str,
         serves_index: bool) -> int:
    from ..serve import run

    _configure_logging(args.log_level)
    if args.host not in LOCAL_HOSTS and api_key is None:
        print(f"mmst serve: warning: listening on {args.host} with no API key (set --api-key or ${API_KEY_ENV})",
              file=sys.stderr)
    what = model + (f" and the index ({args.url or args.store or DEFAULT_STORE_DIR})" if serves_index else "")
    port = sock.getsockname()[1]  # the port asked for, or the one --port 0 got
    host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{port}"
    print(f"mmst serve: {url}, loading {what}", file=sys.stderr)
    if store is not None and store.local_path is not None and not args.read_only:
        from ..locks import record_serving

        record_serving(store.local_path, url)  # whoever is refused this store is told to send documents here
    if run(app, args.host, port, drain_s=args.drain_seconds, log_level=args.log_level, sock=sock,
           headers_timeout_s=args.headers_timeout):
        raise CLIError(f"the server could not load its models: {app.state.server.failure}")
    return 0


def _configure_logging(level: str) -> None:
    logger = logging.getLogger("llama_index_mm_st.serve")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s mmst serve %(levelname)s %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
